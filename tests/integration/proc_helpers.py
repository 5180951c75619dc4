"""Helpers shared by the exec/terminal/hooks/fds/notify suites.

`create` must not be run with captured pipes: the container's init inherits the runtime's stdio,
so a pipe would stay open (and `communicate` would wait) for the container's whole life.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from testlib import Result, Runtime


def create(rt: Runtime, bundle: Path, cid: str, *extra: str, env: dict[str, str] | None = None,
           pass_fds: tuple[int, ...] = (), argv: list[str] | None = None) -> Result:
    """`create` with stdio on files; the init's output ends up in the returned `out`/`err`."""
    return detached(rt, argv or rt.argv("create", "--bundle", str(bundle), *extra, cid), env=env,
                    pass_fds=pass_fds)


def detached(rt: Runtime, argv: list[str], env: dict[str, str] | None = None,
             pass_fds: tuple[int, ...] = ()) -> Result:
    """A call that leaves a process behind with its stdio (create, exec -d): stdio on files."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.run(argv,
                           stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                           pass_fds=pass_fds, timeout=60)
        out.seek(0)
        err.seek(0)
        return Result(p.returncode, out.read().decode(), err.read().decode())


def wait_for(pred, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll `pred` until true; fail naming `what` (a liveness bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def ns_links(pid: int) -> dict[str, str]:
    d = f"/proc/{pid}/ns"
    return {n: os.readlink(f"{d}/{n}") for n in os.listdir(d)}


def status_field(pid: int, key: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    raise KeyError(key)
