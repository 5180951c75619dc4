"""sd_notify for containers (podman --sdnotify=container): READY=1 from the workload, to the host.

As runc does: when the runtime's environment has NOTIFY_SOCKET at `create`, the directory
<state dir>/notify is bind-mounted at /run/notify in the container and the workload gets
NOTIFY_SOCKET=/run/notify/notify.sock. The socket itself is bound by `start` (a datagram socket
only receives while someone holds it open), which releases the init, then waits for a datagram with
a READY=1 line and sends "READY=1" and "MAINPID=<host pid of the init>" to the host's NOTIFY_SOCKET
(the one in `start`'s environment) before returning. The wait ends early if the init exits, and is
bounded by TIMEOUT: a workload that never notifies gets a warning, not a hung `start`.

    create:  mkdir <state>/notify; mount plan += bind <state>/notify -> /run/notify;
             env += NOTIFY_SOCKET=/run/notify/notify.sock
    start:   bind <state>/notify/notify.sock; release the init; recv until READY=1; send to host
"""

from __future__ import annotations

import time

from pyrunc._typing import MYPY
from pyrunc.sys import oslite as os

if MYPY:
    import socket

    from pyrunc.linux.rootfs import MountOp

DIR = "notify"
CONTAINER_DIR = "/run/notify"
CONTAINER_SOCKET = CONTAINER_DIR + "/notify.sock"
TIMEOUT = 300.0


def wanted() -> bool:
    return bool(os.getenv("NOTIFY_SOCKET"))


def prepare(state_dir: str, ops: list[MountOp]) -> str:
    """At create: make the host directory, add its bind mount to `ops`; returns the env entry."""
    from pyrunc.linux import rootfs

    host_dir = os.path.join(state_dir, DIR)
    os.makedirs(host_dir, mode=0o755, exist_ok=True)
    op = rootfs.parse_options(["rbind", "nosuid", "nodev", "noexec"], "NOTIFY_SOCKET")
    op.source, op.destination, op.fstype = host_dir, CONTAINER_DIR, "bind"
    ops.append(op)
    return "NOTIFY_SOCKET=" + CONTAINER_SOCKET


def listen(state_dir: str) -> socket.socket | None:
    """At start, before releasing the init: the socket the workload sends to, or None."""
    host_dir = os.path.join(state_dir, DIR)
    if not os.getenv("NOTIFY_SOCKET") or not os.path.isdir(host_dir):
        return None
    import socket  # only when NOTIFY_SOCKET is in use: socket costs ~8 ms of every start

    path = os.path.join(host_dir, "notify.sock")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.bind(path)
    # The workload may run as any user.
    os.chmod(path, 0o777)
    return sock


def _ready(data: bytes) -> bool:
    return b"READY=1" in data.split(b"\n")


def _drain(sock: socket.socket) -> bool:
    """Read every queued datagram; True if one said READY=1."""
    import socket

    ready = False
    while True:
        try:
            ready |= _ready(sock.recv(65536, socket.MSG_DONTWAIT))
        except BlockingIOError:
            return ready


def wait_and_forward(sock: socket.socket, pid: int, timeout: float = TIMEOUT) -> bool:
    """Wait for READY=1 (or the init's exit, or `timeout`); forward it. True if forwarded."""
    import select

    from pyrunc import log

    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        sock.close()
        return False
    deadline = time.monotonic() + timeout
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        while (left := deadline - time.monotonic()) > 0:
            events = dict(poller.poll(int(left * 1000) + 1))
            if _drain(sock):
                _send_host(pid)
                return True
            if pidfd in events:
                return False
        log.warning(f"NOTIFY_SOCKET: no READY=1 from the container within {timeout:g}s")
        return False
    finally:
        os.close(pidfd)
        sock.close()


def _send_host(pid: int) -> None:
    import socket

    target = os.getenv("NOTIFY_SOCKET") or ""
    if target.startswith("@"):
        target = "\0" + target[1:]  # an abstract socket, as sd_notify(3) spells it
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as out:
        out.connect(target)
        out.send(f"READY=1\nMAINPID={pid}\n".encode())
