"""A process's stdio from the paths containerd gives: FIFOs (ctr, CRI), `file://` logs, or none.

Without a terminal, the process writes straight into the stdout and stderr FIFOs: the shim opens
them O_RDWR (never blocks, and counts as a writer until the process has them) and closes its own
copy once the process exists, so the reader sees EOF when the last process holding them exits;
the shim copies nothing. stdin goes through a pipe the shim feeds from the stdin FIFO, so that
containerd's CloseIO can end it with EOF whatever the FIFO's writer does.

With a terminal, the process gets the pty (pyrunc's console); the shim copies stdin FIFO -> pty
master and master -> stdout FIFO, and closes the stdout FIFO when the master reads EIO (every peer
closed: the process and its children are gone), which is the EOF `ctr` waits for.
"""

from __future__ import annotations

import _socket
import posix

from pyrunc._typing import MYPY
from pyrunc.shim.loop import IN, OUT, Loop
from pyrunc.shim.ttrpc import INVALID_ARGUMENT, UNKNOWN, RpcError
from pyrunc.sys import oslite as os

if MYPY:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")

_CHUNK = 65536


def _path(uri: str) -> str:
    if uri.startswith("file://"):
        return uri[len("file://"):]
    if "://" in uri:
        raise RpcError(INVALID_ARGUMENT, f"stdio {uri!r}: only FIFO paths and file:// are supported")
    return uri


def open_output(uri: str) -> int:
    """An fd for the process's stdout or stderr (/dev/null when containerd gave no path)."""
    if not uri:
        return os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
    path = _path(uri)
    try:
        if uri.startswith("file://"):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise RpcError(INVALID_ARGUMENT, f"stdio {path}: {exc.strerror}") from exc


def open_input(uri: str) -> int:
    """The stdin FIFO, read side, non-blocking (no writer yet is fine: EOF only after one)."""
    path = _path(uri)
    try:
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise RpcError(INVALID_ARGUMENT, f"stdin {path}: {exc.strerror}") from exc


class Pump:
    """Copies src to dst through the loop, never blocking it; `done` runs once src ends."""

    def __init__(self, loop: Loop, src: int, dst: int, *, close_src: bool = True,
                 close_dst: bool = True, done: Callable[[], None] | None = None) -> None:
        self.loop, self.src, self.dst = loop, src, dst
        self.close_src, self.close_dst, self.done = close_src, close_dst, done
        self.pending = b""
        self.finished = False
        posix.set_blocking(src, False)
        posix.set_blocking(dst, False)
        loop.add(src, IN, self._on_src)

    def _on_src(self, _events: int) -> None:
        try:
            data = os.read(self.src, _CHUNK)
        except BlockingIOError:
            return
        except OSError:  # EIO: a pty master whose peers are all closed
            data = b""
        if not data:
            self.finish()
            return
        self._write(data)

    def _write(self, data: bytes) -> None:
        try:
            n = os.write(self.dst, data)
        except BlockingIOError:
            n = 0
        except OSError:  # the reader went away: drop the output, as a closed terminal would
            return
        if n < len(data):
            self.pending = data[n:]
            self.loop.remove(self.src)
            self.loop.add(self.dst, OUT, self._on_dst)

    def _on_dst(self, _events: int) -> None:
        data, self.pending = self.pending, b""
        self.loop.remove(self.dst)
        if not self.finished:
            self.loop.add(self.src, IN, self._on_src)
        self._write(data)

    def drain(self) -> None:
        """Copy what src holds now, then finish (CloseIO)."""
        if self.finished:
            return
        while True:
            try:
                data = os.read(self.src, _CHUNK)
            except OSError:
                break
            if not data:
                break
            self._write(data)
            if self.pending:
                break
        self.finish()

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.loop.remove(self.src)
        self.loop.remove(self.dst)
        if self.pending:  # a last chunk the reader did not take: one more try, then give up
            try:
                os.write(self.dst, self.pending)
            except OSError:
                pass
        if self.close_src:
            os.close(self.src)
        if self.close_dst:
            os.close(self.dst)
        if self.done is not None:
            self.done()


def child_fds(stdin: str, stdout: str, stderr: str, terminal: bool,
              owner: tuple[int, int] | None = None) -> tuple[list[int], list[int]]:
    """The fds the process gets as 0, 1, 2, and the shim's ends: [stdin FIFO, stdin pipe's
    write end] without a terminal, [stdin FIFO or -1, stdout FIFO] with one; then, with an
    owner (the io_uid/io_gid options), pairs [pipe's read end, FIFO] the shim copies.

    With an owner, as runc's shim, the process's stdio are pipes owned by (uid, gid), so that a
    process of a user namespace can reopen them (/dev/stdout, /proc/self/fd/1)."""
    opened: list[int] = []
    try:
        if terminal:
            null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            opened.append(null)
            fin = open_input(stdin) if stdin else -1
            opened.append(fin)
            opened.append(open_output(stdout))
            return [null, os.dup(null), os.dup(null)], [fin, opened[-1]]
        if stdin:
            fin = open_input(stdin)
            opened.append(fin)
            r, w = _pipe(owner)
            opened += [r, w]
            child_in, shim_side = r, [fin, w]
        else:
            child_in = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            opened.append(child_in)
            shim_side = [-1, -1]
        outs = []
        for uri in (stdout, stderr):
            fd = open_output(uri)
            opened.append(fd)
            if owner is not None and uri:
                r, w = _pipe(owner)
                opened += [r, w]
                shim_side += [r, fd]
                fd = w
            outs.append(fd)
        return [child_in, *outs], shim_side
    except BaseException:
        close_all(opened)
        raise


def _pipe(owner: tuple[int, int] | None) -> tuple[int, int]:
    r, w = os.pipe2(os.O_CLOEXEC)
    if owner is not None:
        try:
            for fd in (r, w):
                os.fchown(fd, *owner)
        except OSError as exc:
            close_all([r, w])
            raise RpcError(INVALID_ARGUMENT, f"options.io_uid/io_gid {owner[0]}:{owner[1]}: "
                           f"chown of the stdio pipe: {exc.strerror}") from exc
    return r, w


def close_all(fds: list[int]) -> None:
    for fd in fds:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def with_stdio(fds: list[int], fn: Callable[[], T]) -> T:
    """Run fn (which forks the container's process) with fds as our 0, 1, 2, then put ours back."""
    saved = [os.dup(i) for i in range(3)]
    try:
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
        return fn()
    finally:
        for i, fd in enumerate(saved):
            os.dup2(fd, i)
            os.close(fd)


def console_listener(seq: int) -> tuple[_socket.socket, str]:
    """A console socket for an exec'd process's terminal, in the abstract namespace (nothing
    to clean up); pyrunc's exec connects to it before it forks."""
    path = f"\0pyrunc-shim/{os.getpid()}/{seq}"
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    sock.bind(path)
    sock.listen(1)
    return sock, path


def accept_master(listener: _socket.socket) -> int:
    from pyrunc.sys import sockets

    listener.settimeout(10)
    fd, _ = listener._accept()  # type: ignore[attr-defined]
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
    try:
        _, fds = sockets.recv_fds(conn, 64, 1)
    finally:
        conn.close()
    if not fds:
        raise RpcError(UNKNOWN, "the exec'd process did not send its terminal")
    return fds[0]
