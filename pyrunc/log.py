"""The runtime's own log: runc's `--log FILE --log-format text|json`, without the logging module.

containerd shows the last `"level":"error"` line of the file and parses `time` as RFC 3339; conmon
reads the whole file as one JSON object, so a failing call writes exactly one error line. Without
`--log`, warnings and debug lines go to stderr in the same format (logrus text, as runc writes them,
or JSON); stdout is never written (it is the container's during create/exec). An unknown format or
a log file that cannot be opened is refused at start, with runc's wording.
"""

from __future__ import annotations

import sys
import time

from pyrunc.errors import PyruncError
from pyrunc.sys import oslite as os

FORMATS = ("text", "json")
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_state: dict[str, object] = {"path": None, "json": False, "debug": False}


def rfc3339(ns: int | None = None) -> str:
    """UTC time with nanoseconds, as runc writes `created` and log times."""
    ns = time.time_ns() if ns is None else ns
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


def configure(path: str | None, fmt: str = "text", debug: bool = False) -> None:
    """Check the format and that the file can be opened (created), then use them for every line."""
    if fmt not in FORMATS:
        raise PyruncError(f"invalid log-format: {fmt}")
    if path:
        try:
            os.close(os.open(path, _FLAGS, 0o644))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise PyruncError(f"open {path}: {reason[:1].lower()}{reason[1:]}") from exc
    _state.update(path=path, json=(fmt == "json"), debug=debug)


def _quote(msg: str) -> str:
    return '"' + msg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _line(level: str, msg: str) -> str:
    if _state["json"]:
        from json import dumps  # only reached when a line is written

        return dumps({"level": level, "msg": msg, "time": rfc3339()}, separators=(",", ":")) + "\n"
    return f"time={_quote(rfc3339())} level={level} msg={_quote(msg)}\n"


def write(level: str, msg: str) -> None:
    msg = msg.replace("\r", "\\r").replace("\n", "\\n")  # one line, whatever a config held
    path = _state["path"]
    if not path:
        sys.stderr.write(_line(level, msg))
        return
    try:
        fd = os.open(str(path), _FLAGS, 0o644)
    except OSError:
        return
    try:
        os.write(fd, _line(level, msg).encode())
    finally:
        os.close(fd)


def enabled() -> bool:
    """--debug was given: callers test this before building an expensive message."""
    return bool(_state["debug"])


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
