"""`-t`: receive the container's pty master over a console socket and proxy it.

The runtime connects to the socket passed as `--console-socket` and sends the master as
SCM_RIGHTS. sun_path is limited to 108 bytes, so the socket lives in a short temp directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import selectors
import shutil
import socket
import sys
import tempfile
import termios
import tty
from types import TracebackType

from pyctr.errors import ContainerError


class ConsoleSocket:
    def __init__(self, _cdir: object = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="pyctr-")
        self.path = os.path.join(self.dir, "console.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)

    def __enter__(self) -> ConsoleSocket:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def receive(self, timeout: float = 30) -> int:
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        if not fds:
            raise ContainerError("the runtime sent no console")
        return fds[0]


def _copy_winsize(master: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(sys.stdout.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)


def proxy(master: int, pid: int, interactive: bool) -> None:
    """Copy stdin -> master and master -> stdout until the container side closes."""
    stdin_tty = interactive and os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty else None
    _copy_winsize(master)
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ)
    if interactive:
        sel.register(0, selectors.EVENT_READ)
    try:
        if stdin_tty:
            tty.setraw(0)
        _loop(sel, master)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)


def _loop(sel: selectors.BaseSelector, master: int) -> None:
    while True:
        for key, _ in sel.select():
            if key.fd == master:
                try:
                    data = os.read(master, 65536)
                except OSError as exc:
                    if exc.errno == errno.EIO:  # every slave fd closed: the process is gone
                        return
                    raise
                if not data:
                    return
                os.write(1, data)
            else:
                data = os.read(0, 65536)
                if not data:
                    sel.unregister(0)
                    os.write(master, b"\x04")
                    continue
                os.write(master, data)
