"""A container's log in docker's json-file format: one file per container, rotated.

    <root>/containers/<id>/<id>-json.log      current
    <root>/containers/<id>/<id>-json.log.1    previous ones, up to max_files - 1 of them

Each line is `{"log": ..., "stream": "stdout"|"stderr", "time": ...}`. As docker's driver with
`max-size` and `max-file`, the current file is renamed to `.1` (and older ones shifted, the
oldest dropped) once the next entry would take it past max_size; so the log never exceeds about
max_size * max_files bytes. Foreground runs are logged as well as detached ones.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from pathlib import Path

DEFAULT_MAX_SIZE = 10 << 20
DEFAULT_MAX_FILES = 3


def log_path(cdir: Path, cid: str) -> Path:
    return cdir / f"{cid}-json.log"


def entry(stream: str, text: bytes) -> bytes:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (json.dumps({"log": text.decode(errors="replace"), "stream": stream,
                        "time": stamp}) + "\n").encode()


def files(path: Path) -> list[Path]:
    """The log's files, oldest first."""
    rotated = sorted((p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
                     key=lambda p: int(p.suffix[1:]), reverse=True)
    return [*rotated, path]


class JsonLog:
    def __init__(self, path: Path, max_size: int = DEFAULT_MAX_SIZE,
                 max_files: int = DEFAULT_MAX_FILES) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def write(self, stream: str, text: bytes) -> None:
        data = entry(stream, text)
        if self.max_size > 0 and self.size and self.size + len(data) > self.max_size:
            self._rotate()
        os.write(self.fd, data)
        self.size += len(data)

    def _rotate(self) -> None:
        os.close(self.fd)
        if self.max_files == 1:
            self.path.unlink(missing_ok=True)
        else:
            for n in range(self.max_files - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                with contextlib.suppress(FileNotFoundError):
                    if n == self.max_files - 1:
                        older.unlink()
                    else:
                        older.rename(self.path.with_name(f"{self.path.name}.{n + 1}"))
            self.path.rename(self.path.with_name(self.path.name + ".1"))
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = 0

    def close(self) -> None:
        os.close(self.fd)


def parse_opts(opts: list[str]) -> tuple[int, int]:
    """`--log-opt max-size=10m --log-opt max-file=3` -> (max_size, max_files)."""
    from pyctr.driver.bundle import parse_size
    from pyctr.errors import ContainerError

    size, count = DEFAULT_MAX_SIZE, DEFAULT_MAX_FILES
    for opt in opts:
        key, sep, value = opt.partition("=")
        if key == "max-size" and sep:
            size = -1 if value == "-1" else parse_size(value)
        elif key == "max-file" and sep and value.isdigit() and int(value) > 0:
            count = int(value)
        else:
            raise ContainerError(f"invalid --log-opt {opt!r} (max-size=SIZE, max-file=N)")
    return size, count
