"""Helpers of the reliability tests: sizes from the environment, leak checks, the report.

Sizes come from the environment so that one file serves both runs:

    PYRUNC_STRESS_N   containers in the load test (bounded default 40; `make stress` default 200)
    PYRUNC_FAULT_N    SIGKILLs at random points of `create` (bounded 20; stress 100)
    PYRUNC_FUZZ_N     hypothesis examples per fuzz test (bounded 150; stress 2000)

Every test uses container ids starting with its own `rl-<hex>-` prefix and its own `--root`, and
`Leaks` looks only for what such containers can leave (state dirs, cgroups, mounts of our bundles,
processes, our own fds): other engineers' containers come and go on the same host.
"""

from __future__ import annotations

import glob
import os
import subprocess  # noqa: TID251 — tests drive the CLI
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CGROUP_GLOB = "/sys/fs/cgroup/*/pyrunc/{prefix}*"


def env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ[name]))
    except (KeyError, ValueError):
        return default


def sizes(stress: bool) -> dict[str, int]:
    """The sizes of a run: the bounded CI form, or the `make stress` form."""
    if stress:
        return {"containers": env_int("PYRUNC_STRESS_N", 200),
                "faults": env_int("PYRUNC_FAULT_N", 100), "fuzz": env_int("PYRUNC_FUZZ_N", 2000)}
    return {"containers": env_int("PYRUNC_STRESS_N", 40), "faults": env_int("PYRUNC_FAULT_N", 20),
            "fuzz": env_int("PYRUNC_FUZZ_N", 150)}


# ---- calling pyrunc ------------------------------------------------------------------------------

@dataclass
class Result:
    rc: int
    out: str
    err: str


def call(rt: Any, *args: str, timeout: float = 120, input: bytes | None = None) -> Result:
    """`rt.run` without pipes: a container started by `create` inherits the runtime's stdout and
    stderr (runc's non-tty mode), so reading pipes to EOF would wait for the container to exit.
    Files have no EOF to wait for."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.run(rt.argv(*args), stdout=out, stderr=err, timeout=timeout,
                           stdin=subprocess.DEVNULL if input is None else None, input=input)
        out.seek(0)
        err.seek(0)
        return Result(p.returncode, out.read().decode(errors="replace"),
                      err.read().decode(errors="replace"))


# ---- the report ------------------------------------------------------------------------------------

@dataclass
class Figures:
    containers: int = 0
    operations: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    fuzz_cases: int = 0
    fuzz_outcomes: dict[str, int] = field(default_factory=dict)
    faults: int = 0
    notes: list[str] = field(default_factory=list)

    def conclude(self, failures: list[str], leaks: Leaks) -> None:
        """Record what went wrong and what the run left behind: both must be nothing."""
        self.failures = failures
        self.leaks = leaks.check()
        assert self.failures == [], self.failures
        assert self.leaks == [], self.leaks


REPORT: dict[str, Figures] = {}


Test = Callable[[Any, Any, str, Figures], None]


def bounded_and_full(driver: Callable[[Any, Any, str, Figures, int], None],
                     size: Callable[[bool], int]) -> tuple[Test, Test]:
    """A scenario's two tests, both `driver(rt, make_bundle, prefix, figures, size(full))`: the
    bounded one (full False) every run makes, and the long one marked `stress` (full True).
    Assign them to the module's test_<name> and test_<name>_full."""
    def bounded(rt: Any, make_bundle: Any, prefix: str, figures: Figures) -> None:
        driver(rt, make_bundle, prefix, figures, size(False))

    def full(rt: Any, make_bundle: Any, prefix: str, figures: Figures) -> None:
        driver(rt, make_bundle, prefix, figures, size(True))

    requires = pytest.mark.requires("root", "busybox")
    return requires(bounded), pytest.mark.stress(requires(full))


# ---- runtime, ids, leaks ---------------------------------------------------------------------------

def scrub(r: Any, prefix: str) -> None:
    """Remove whatever our containers left, so one failing test does not poison the host."""
    if r.root.is_dir():
        for entry in r.root.iterdir():
            call(r, "delete", "--force", entry.name, timeout=60)
    for _ in range(100):  # a bounded retry: killed processes leave their cgroups a bit later
        for pid in container_pids(prefix):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        left = sorted(glob.glob(CGROUP_GLOB.format(prefix=prefix)), key=len, reverse=True)
        for path in left:
            try:
                os.rmdir(path)
            except OSError:
                pass
        if not left:
            return
        time.sleep(0.05)


def container_pids(prefix: str) -> list[int]:
    """Processes in a cgroup of ours, or whose command line names one of our ids."""
    pids = []
    needle = f"/pyrunc/{prefix}"
    for d in glob.glob("/proc/[0-9]*"):
        pid = int(d[6:])
        if pid == os.getpid():
            continue
        try:
            with open(f"{d}/stat", "rb") as f:
                zombie = f.read().rpartition(b")")[2].split()[0] in (b"Z", b"X")
            with open(f"{d}/cgroup") as f:
                cg = f.read()
            with open(f"{d}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except (OSError, IndexError):
            continue
        # A zombie is an init pid 1 has not reaped yet (create exits, its init is reparented).
        if not zombie and (needle in cg or prefix in cmd):
            pids.append(pid)
    return pids


def own_fds() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(f"{fd}->{os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            pass
    return out


@dataclass
class Leaks:
    """A snapshot of what our containers could leave; `.check()` lists what is new."""

    rt: Any
    prefix: str
    dirs: list[Path]
    fds: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.fds = own_fds()

    def check(self) -> list[str]:
        found = []
        if self.rt.root.is_dir():
            found += [f"state dir {e}" for e in self.rt.root.iterdir()]
        found += [f"cgroup {p}" for p in glob.glob(CGROUP_GLOB.format(prefix=self.prefix))]
        with open("/proc/self/mountinfo") as f:
            found += [f"mount {line.strip()}" for line in f
                      if any(str(d) in line for d in self.dirs)]
        found += [f"process {pid} {_cmdline(pid)}" for pid in container_pids(self.prefix)]
        # our own fds: subprocess pipes and pidfds must all be closed again
        found += [f"fd {fd}" for fd in own_fds() - self.fds if "/proc/" not in fd]
        return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def clean_failure(r: Any) -> str | None:
    """Why a failed call is not the clean failure we want (rc 1, one clear line), or None."""
    if r.rc != 1:
        return f"exit status {r.rc} (want 0 or 1)"
    if "Traceback" in r.err or "Traceback" in r.out:
        return "a Python traceback:\n" + r.err[-2000:]
    # split on \n only: str.splitlines() would also split inside a message quoting a \f or \x1c
    lines = [line for line in r.err.split("\n") if line.strip()]
    if len(lines) != 1:
        return f"{len(lines)} lines on stderr (want one clear message): {r.err[-600:]!r}"
    return None
