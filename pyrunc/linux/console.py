"""The container's terminal: a pty made inside the container, its master sent to --console-socket.

As runc does: the init opens the container's own /dev/ptmx (its devpts instance), gets the peer with
TIOCGPTPEER rather than by a path the container controls (CVE-2025-52565), sends the master over
the console socket (one message, payload "/dev/ptmx", the fd as SCM_RIGHTS), binds the peer over
/dev/console and makes it the controlling terminal and stdio.
"""

from __future__ import annotations

import fcntl
import struct
import termios

from pyrunc._typing import MYPY
from pyrunc.errors import ConsoleError
from pyrunc.sys import linux, sockets
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.spec.types import ConsoleSize

TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441


def connect(path: str) -> int:
    """In the parent, before fork: the connected console socket (its fd goes to the init)."""
    try:
        return sockets.connect(path).detach()
    except OSError as exc:
        raise ConsoleError(f"--console-socket {path}: {exc.strerror}") from exc


def pair() -> tuple[sockets.Socket, int]:
    """A private console socket for a runtime that keeps the master itself (`run`, `exec` in the
    foreground): our end, and the fd the init sends the master over."""
    ours, theirs = sockets.pair(sockets.SOCK_STREAM)
    return ours, theirs.detach()


def recv_master(sock: sockets.Socket) -> int:
    _, fds = sockets.recv_fds(sock, 64, 1)
    sock.close()
    if not fds:
        raise ConsoleError("the container did not send its terminal")
    return fds[0]


def set_size(fd: int, size: ConsoleSize | None) -> None:
    if size:
        fcntl.ioctl(fd, termios.TIOCSWINSZ,
                    struct.pack("HHHH", int(size.get("height", 0)), int(size.get("width", 0)), 0, 0))


def open_pty() -> tuple[int, int]:
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    peer = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    return master, peer


def _bind_console(peer: int) -> None:
    from pyrunc.linux import rootfs

    root = os.open("/", linux.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        target = rootfs.make_target(root, "/dev/console", True)
        try:
            linux.mount(rootfs.fdpath(peer), rootfs.fdpath(target), None, linux.MS_BIND)
        finally:
            os.close(target)
    finally:
        os.close(root)


def setup_init(sock_fd: int, size: ConsoleSize | None, bind_console: bool = True) -> None:
    """After pivot_root (or setns for exec): make the pty, hand out the master, adopt the peer."""
    if sock_fd < 0:
        raise ConsoleError("process.terminal is true but no --console-socket was given")
    try:
        master, peer = open_pty()
        set_size(peer, size)
        if bind_console:
            _bind_console(peer)
        sock = sockets.Socket(fileno=sock_fd)
        sockets.send_fds(sock, b"/dev/ptmx", [master])
        sock.close()
        os.close(master)
        os.setsid()
        fcntl.ioctl(peer, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(peer, fd)
        if peer > 2:
            os.close(peer)
    except OSError as exc:
        raise ConsoleError(f"setting up the console: {exc.strerror}") from exc
