"""The runtime's own log: runc's `--log FILE --log-format text|json`, without the logging module.

containerd shows the last `"level":"error"` line of the file and parses `time` as RFC 3339; conmon
reads the whole file as one JSON object, so a failing call writes exactly one error line. Without
`--log`, text goes to stderr; stdout is never written (it is the container's during create/exec).
"""

from __future__ import annotations

import sys
import time

from pyrunc import oslite as os

_state: dict[str, object] = {"path": None, "json": False, "debug": False}


def rfc3339(ns: int | None = None) -> str:
    """UTC time with nanoseconds, as runc writes `created` and log times."""
    ns = time.time_ns() if ns is None else ns
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


def configure(path: str | None, fmt: str = "text", debug: bool = False) -> None:
    _state.update(path=path, json=(fmt == "json"), debug=debug)


def _line(level: str, msg: str) -> str:
    if _state["json"]:
        from json import dumps  # only reached when a line is written

        return dumps({"level": level, "msg": msg, "time": rfc3339()}) + "\n"
    return f'time="{rfc3339()}" level={level} msg="{msg}"\n'


def write(level: str, msg: str) -> None:
    path = _state["path"]
    if not path:
        sys.stderr.write(f"{level}: {msg}\n")
        return
    try:
        fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return
    try:
        os.write(fd, _line(level, msg).encode())
    finally:
        os.close(fd)


def debug(msg: str) -> None:
    if _state["debug"]:
        write("debug", msg)


def warning(msg: str) -> None:
    write("warning", msg)


def error(msg: str) -> None:
    """The one error report of a failed call: a line on stderr, and one in --log when given."""
    msg = msg.replace("\r", "\\r").replace("\n", "\\n")  # one line, whatever a config held
    sys.stderr.write(msg + "\n")
    if _state["path"]:
        write("error", msg)
