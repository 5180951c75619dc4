"""`kill <id> [SIGNAL]` and `kill --all`: through a pidfd, so a recycled pid is never signalled."""

import _signal  # the C module: signal.py wraps it in enums (+4 ms)

from pyrunc import MYPY, container
from pyrunc.container import state
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.errors import InvalidState, PyruncError


def _digits(t: str) -> bool:
    return t.isascii() and t.isdigit() and len(t) < 6


def parse_signal(text: str) -> int:
    """`9`, `KILL`, `SIGKILL`, `sigkill`, and the real-time names `RTMIN+3`, `SIGRTMAX-1`."""
    t = text.strip().upper()
    if _digits(t):
        n = int(t)
        if 0 < n < _signal.NSIG:
            return n
        raise _bad_signal(f"invalid signal: {text}")
    if not t.startswith("SIG"):
        t = "SIG" + t
    lo, hi = _signal.SIGRTMIN, _signal.SIGRTMAX
    n = -1
    if t.startswith("SIGRTMIN+") and _digits(t[9:]):
        n = lo + int(t[9:])
    elif t.startswith("SIGRTMAX-") and _digits(t[9:]):
        n = hi - int(t[9:])
    elif t in ("SIGRTMIN", "SIGRTMAX"):
        n = lo if t == "SIGRTMIN" else hi
    elif t.isalnum() and not t.startswith("SIGRT") and isinstance(getattr(_signal, t, None), int):
        return int(getattr(_signal, t))  # _signal's names (SIGKILL, SIGIOT, ...): no table to build
    if lo <= n <= hi:
        return n
    raise _bad_signal(f"unknown signal {text!r}")


def _bad_signal(message: str) -> "PyruncError":
    from pyrunc.errors import PyruncError  # (see pyrunc.errors: loaded only when failing)

    return PyruncError(message)


def kill(root: str, cid: str, sig: int, all_processes: bool = False) -> None:
    c = container.load(root, cid)
    with c.locked():
        status = c.status()
        if all_processes and c.data.get("cgroup"):
            # As runc: every process left in the container's cgroup, whatever the init's status
            # (without a pid namespace a stopped container's children can outlive its init).
            c.cgroup_teardown().signal_all(sig)
            return
        state.check_transition(status, "kill", cid)
        signal_init(c, sig)


def signal_init(c: container.Container, sig: int) -> None:
    try:
        fd = os.pidfd_open(c.pid)
    except ProcessLookupError as exc:
        raise _not_running() from exc
    try:
        if not c.alive():
            raise _not_running()
        _signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError as exc:
        raise _not_running() from exc
    finally:
        os.close(fd)


def _not_running() -> "InvalidState":
    from pyrunc.errors import InvalidState

    return InvalidState("container not running")
