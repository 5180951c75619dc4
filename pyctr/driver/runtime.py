"""Driving an OCI runtime (pyrunc, runc, crun) through its command line only.

`--root` keeps each runtime's state under pyctr's own root, one directory per runtime binary,
so runc and pyrunc never read each other's state files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess  # noqa: TID251 - pyctr drives runtimes as separate programs
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pyctr.errors import ContainerError, start_failure

File = int | IO[Any] | None


def find_runtime(explicit: str | None = None) -> str:
    """--runtime, else `pyrunc` next to our interpreter or on PATH, else `runc`."""
    if explicit:
        found = shutil.which(explicit)
        if not found:
            raise ContainerError(f"runtime {explicit!r} not found")
        return os.path.abspath(found)
    beside = Path(sys.executable).parent / "pyrunc"
    if beside.exists():
        return str(beside)
    for name in ("pyrunc", "runc"):
        found = shutil.which(name)
        if found:
            return found
    raise ContainerError("no OCI runtime found (install runc or pass --runtime)")


@dataclass
class Runtime:
    binary: str
    root: Path

    @classmethod
    def under(cls, binary: str, store_root: Path) -> Runtime:
        return cls(binary, store_root / "runtime" / Path(binary).name)

    def argv(self, *args: str, log: Path | None = None) -> list[str]:
        logging = ["--log", str(log), "--log-format", "json"] if log else []
        return [self.binary, "--root", str(self.root), *logging, *args]

    def call(self, *args: str, stdin: File = subprocess.DEVNULL, stdout: File = None,
             stderr: File = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        capture = stderr is None
        proc = subprocess.run(self.argv(*args), stdin=stdin,
                              stdout=stdout if stdout is not None else subprocess.PIPE,
                              stderr=subprocess.PIPE if capture else stderr)
        if check and proc.returncode != 0:
            err = (proc.stderr or b"").decode(errors="replace").strip() if capture else ""
            raise ContainerError(f"{Path(self.binary).name} {args[0]} failed: {err or proc.returncode}")
        return proc

    def create(self, cid: str, bundle: Path, pid_file: Path, stdin: File, stdout: File,
               stderr: File, console_socket: str | None = None) -> None:
        extra = ["--console-socket", console_socket] if console_socket else []
        proc = subprocess.run(self.argv("create", "--bundle", str(bundle), "--pid-file",
                                        str(pid_file), *extra, cid, log=bundle / "runtime.log"),
                              stdin=stdin, stdout=stdout, stderr=stderr)
        if proc.returncode != 0:
            raise start_failure(f"{Path(self.binary).name} create failed (exit {proc.returncode})"
                                + _last_error(bundle / "runtime.log"))

    def start(self, cid: str) -> None:
        proc = self.call("start", cid, check=False)
        if proc.returncode != 0:
            err = (proc.stderr or b"").decode(errors="replace").strip()
            raise start_failure(f"{Path(self.binary).name} start failed: {err or proc.returncode}")

    def kill(self, cid: str, signal: str | int, all_processes: bool = False) -> bool:
        args = ["kill", *(["--all"] if all_processes else []), cid, str(signal)]
        return self.call(*args, check=False).returncode == 0

    def delete(self, cid: str, force: bool = False) -> None:
        self.call("delete", *(["--force"] if force else []), cid, check=False)

    def state(self, cid: str) -> dict[str, Any] | None:
        proc = self.call("state", cid, check=False)
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    def exec(self, cid: str, process_file: Path, detach: bool = False,
             console_socket: str | None = None) -> int:
        extra = ["--console-socket", console_socket] if console_socket else []
        extra += ["--detach"] if detach else []
        return subprocess.call(self.argv("exec", "--process", str(process_file), *extra, cid))


def _last_error(log: Path) -> str:
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") == "error":
            return f": {entry.get('msg')}"
    return ""
