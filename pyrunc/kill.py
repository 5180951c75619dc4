"""`kill <id> [SIGNAL]` and `kill --all`: through a pidfd, so a recycled pid is never signalled."""

from __future__ import annotations

import os
import signal

from pyrunc import container, linux, state
from pyrunc.errors import InvalidState, PyruncError


def parse_signal(text: str) -> int:
    """`9`, `KILL`, `SIGKILL`, `sigkill`, and the real-time names `RTMIN+3`."""
    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 < n < signal.NSIG:
            return n
        raise PyruncError(f"invalid signal: {text}")
    if not t.startswith("SIG"):
        t = "SIG" + t
    if t.startswith("SIGRTMIN+") and t[9:].isdigit():
        return int(signal.SIGRTMIN) + int(t[9:])
    if t.startswith("SIGRTMAX-") and t[9:].isdigit():
        return int(signal.SIGRTMAX) - int(t[9:])
    sig = getattr(signal.Signals, t, None) if t in signal.Signals.__members__ else None
    if sig is None:
        raise PyruncError(f"unknown signal {text!r}")
    return int(sig)


def kill(root: str, cid: str, sig: int, all_processes: bool = False) -> None:
    c = container.load(root, cid)
    with c.locked():
        status = c.status()
        state.check_transition(status, "kill", cid)
        if all_processes and c.data.get("cgroup"):
            c.cgroup().signal_all(sig)
            return
        signal_init(c, sig)


def signal_init(c: container.Container, sig: int) -> None:
    try:
        fd = os.pidfd_open(c.pid)
    except ProcessLookupError as exc:
        raise InvalidState("container not running") from exc
    try:
        if not c.alive():
            raise InvalidState("container not running")
        linux.pidfd_send_signal(fd, sig)
    except ProcessLookupError as exc:
        raise InvalidState("container not running") from exc
    finally:
        os.close(fd)
