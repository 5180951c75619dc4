"""`events`: a container's resource statistics and OOM notifications as JSON lines, like runc.

`--stats` prints one `{"type":"stats","id":...,"data":{...}}` and returns. Otherwise a stats line is
printed every `interval` seconds and an `{"type":"oom","id":...}` line whenever the cgroup's OOM
kill count grows, until the container stops. The OOM count is polled (at most every 0.2 s) rather
than waited on with an eventfd, which keeps the loop single-threaded and the same on v1 and v2.
"""

from __future__ import annotations

import re
import time

from pyrunc._typing import MYPY, TextIO
from pyrunc.errors import ContainerNotFound, InvalidState, SpecError
from pyrunc.sys import jsonfast

if MYPY:
    from typing import Literal, NotRequired, TypedDict

    from pyrunc.linux.cgroups.manager import Manager
    from pyrunc.linux.cgroups.stats import Stats

    class Event(TypedDict):
        """One line of output: runc's events.Event."""

        type: Literal["stats", "oom"]
        id: str
        data: NotRequired[Stats]

_OOM_POLL = 0.2
_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)")


def parse_interval(text: str) -> float:
    """A Go duration ("5s", "100ms", "1m30s") in seconds, as runc's --interval takes it."""
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION.match(text, pos)
        if not match:
            raise SpecError(f"--interval: invalid duration {text!r}")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text:
        raise SpecError("--interval: invalid duration ''")
    return total


def _emit(out: TextIO, kind: Literal["stats", "oom"], cid: str, data: Stats | None = None) -> None:
    event: Event = {"type": kind, "id": cid}
    if data is not None:
        event["data"] = data
    out.write(jsonfast.dumps(event) + "\n")
    out.flush()


def events(root: str, cid: str, *, stats: bool, interval: float, out: TextIO) -> int:
    from pyrunc.container import Container

    c = Container.load(root, cid)
    if c.status() == "stopped":
        raise InvalidState(f"container with id {cid} is not running")
    manager: Manager = c.cgroup()
    if stats:
        _emit(out, "stats", cid, manager.stats())
        return 0
    if interval <= 0:
        raise InvalidState("duration interval must be greater than 0")
    ooms = manager.oom_count()
    next_stats = time.monotonic()
    while True:
        # OOM first: the kill that stops the container must still be reported.
        count = manager.oom_count()
        if count > ooms:
            _emit(out, "oom", cid)
        ooms = max(ooms, count)
        if not _running(root, cid):
            return 0
        if time.monotonic() >= next_stats:
            _emit(out, "stats", cid, manager.stats())
            next_stats += interval
        time.sleep(max(0.0, min(_OOM_POLL, next_stats - time.monotonic())))


def _running(root: str, cid: str) -> bool:
    from pyrunc.container import Container

    try:
        return Container.load(root, cid).status() != "stopped"
    except ContainerNotFound:
        return False
