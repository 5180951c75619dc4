"""`kill <id> [SIGNAL]` and `kill --all`: through a pidfd, so a recycled pid is never signalled."""

from __future__ import annotations

import _signal  # the C module: signal.py wraps it in enums (+4 ms)

from pyrunc import container
from pyrunc.container import state
from pyrunc.errors import InvalidState, PyruncError
from pyrunc.sys import oslite as os

_NAMES: dict[str, int] = {n: getattr(_signal, n) for n in dir(_signal)
                          if n.startswith("SIG") and not n.startswith(("SIG_", "SIGRT"))}


def _digits(t: str) -> bool:
    return t.isascii() and t.isdigit() and len(t) < 6


def parse_signal(text: str) -> int:
    """`9`, `KILL`, `SIGKILL`, `sigkill`, and the real-time names `RTMIN+3`, `SIGRTMAX-1`."""
    t = text.strip().upper()
    if _digits(t):
        n = int(t)
        if 0 < n < _signal.NSIG:
            return n
        raise PyruncError(f"invalid signal: {text}")
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
    elif t in _NAMES:
        return _NAMES[t]
    if lo <= n <= hi:
        return n
    raise PyruncError(f"unknown signal {text!r}")


def kill(root: str, cid: str, sig: int, all_processes: bool = False) -> None:
    c = container.load(root, cid)
    with c.locked():
        status = c.status()
        if all_processes and c.data.get("cgroup"):
            # As runc: every process left in the container's cgroup, whatever the init's status
            # (without a pid namespace a stopped container's children can outlive its init).
            c.cgroup().signal_all(sig)
            return
        state.check_transition(status, "kill", cid)
        signal_init(c, sig)


def signal_init(c: container.Container, sig: int) -> None:
    try:
        fd = os.pidfd_open(c.pid)
    except ProcessLookupError as exc:
        raise InvalidState("container not running") from exc
    try:
        if not c.alive():
            raise InvalidState("container not running")
        _signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError as exc:
        raise InvalidState("container not running") from exc
    finally:
        os.close(fd)
