"""The shim daemon: the loop, the ttrpc server with the task service, the event publisher, and
its lifetime (it exits PYRUNC_SHIM_IDLE seconds after its last task is gone)."""

from __future__ import annotations

import _socket

from pyrunc import log
from pyrunc._typing import MYPY
from pyrunc.shim.events import Publisher
from pyrunc.shim.loop import Loop
from pyrunc.shim.server import Server
from pyrunc.shim.task import SERVICE, TaskService
from pyrunc.sys import linux
from pyrunc.sys import oslite as os

if MYPY:
    from collections.abc import Callable

DEFAULT_IDLE = 60.0
# After the idle time: how long the socket still answers once the info file is gone, for a
# `start` that read the file just before (bin/containerd-shim-pyrunc-v2); containerd connects
# within milliseconds of that `start`'s answer.
GRACE = 5.0
INFO = "shim.info"


def _idle_seconds() -> float:
    try:
        return max(0.0, float(os.getenv("PYRUNC_SHIM_IDLE") or DEFAULT_IDLE))
    except ValueError:
        return DEFAULT_IDLE


class Lifetime:
    """Exit once idle: no task, and no new connection, for `idle` seconds.

    A `start` finds this shim in one of two ways: the launcher's sh reads the info file (the
    address, and this process's pid and start time); Python's `start` connects to the socket.
    So the exit goes in two steps: the info file is removed first, then, GRACE seconds later
    with still no connection, the socket; a connection in between (a `start` of either kind,
    then containerd) cancels the exit. A `start` after the socket is gone binds a new shim."""

    def __init__(self, loop: Loop, path: str, idle: float) -> None:
        self.loop, self.path, self.idle = loop, path, idle
        self.busy: Callable[[], bool] = lambda: False
        self.ino = 0  # the socket file's inode
        self.info_path, self.info = "", ""
        self.timer: int | None = None
        self.leaving = False
        self.arm()

    def publish(self, info_path: str, info: str) -> None:
        self.info_path, self.info = info_path, info
        _write_atomic(info_path, info)

    def unpublish(self) -> None:
        """Remove the info file if it is still ours (another containerd's shim for a namespace
        of the same name may have replaced it)."""
        try:
            with open(self.info_path) as f:
                if f.read() == self.info:
                    os.unlink(self.info_path)
        except OSError:
            pass

    def arm(self) -> None:
        if self.timer is not None:
            self.loop.cancel(self.timer)
        if self.leaving:  # a connection during the grace period: stay
            self.leaving = False
            if self.info_path:
                _write_atomic(self.info_path, self.info)
        self.timer = self.loop.call_later(self.idle, self.check)

    def check(self) -> None:
        self.timer = None
        if self.busy():
            return  # the last task's Shutdown arms the timer again
        if not self.leaving:
            self.leaving = True
            self.unpublish()
            self.timer = self.loop.call_later(GRACE, self.check)
            return
        _unlink_if_ours(self.path, self.ino)
        self.loop.stopped = True


def _write_atomic(path: str, text: str) -> None:
    os.write_replace(path, text, path + ".tmp")


def info_text(containerd_address: str, address: str) -> str:
    """The info file, one line that sh's `read` splits: containerd's address (the socket's key,
    with the namespace), the socket's address, and this process's pid and start time (field 22
    of /proc/<pid>/stat: a pid reused by another process has another start time)."""
    with open("/proc/self/stat") as f:
        start_time = f.read().rpartition(")")[2].split()[19]
    return f"{containerd_address} {address} {os.getpid()} {start_time}\n"


def _unlink_if_ours(path: str, ino: int) -> None:
    """Unlink the socket file if it is still the one this shim bound (its inode at bind time;
    a socket fd's own fstat is sockfs's, not the file's)."""
    try:
        if os.stat(path).st_ino == ino:
            os.unlink(path)
    except OSError:
        pass


def _tidy(root: str) -> None:
    """On a clean exit: an empty log and the namespace's state directory, if nothing is left."""
    log_path = os.path.join(root, "shim.log")
    try:
        if os.stat(log_path).st_size == 0:
            os.unlink(log_path)
        os.rmdir(root)
    except OSError:
        pass


def serve(sock: _socket.socket, path: str, ino: int, root: str, namespace: str,
          events_address: str, debug: bool = False, containerd_address: str = "") -> None:
    # Into the log file by path, never through fd 2: while a container is created or exec'd,
    # fds 0-2 are the container's stdio (pyrunc.shim.stdio.with_stdio).
    log.configure(os.path.join(root, "shim.log"), "text", debug)
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    loop = Loop()
    life = Lifetime(loop, path, _idle_seconds())
    server = Server(loop, sock, on_accept=life.arm)
    life.ino = ino
    publisher = Publisher(loop, events_address, namespace)
    service = TaskService(loop, root, namespace, publisher, on_empty=life.arm)
    life.busy = lambda: bool(service.tasks)
    server.register(SERVICE, service.handlers())
    loop.watch_children(service.reap)
    if containerd_address and len(containerd_address.split()) == 1:
        life.publish(os.path.join(root, INFO), info_text(containerd_address, "unix://" + path))
    log.debug(f"shim {os.getpid()} serving {namespace} at {path}")
    loop.run()
    if life.info_path:
        life.unpublish()
    publisher.drain()
    _tidy(root)
