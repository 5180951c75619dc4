"""Helpers shared by the exec/terminal/hooks/fds/notify suites.

`create` must not be run with captured pipes: the container's init inherits the runtime's stdio,
so a pipe would stay open (and `communicate` would wait) for the container's whole life.
"""

from __future__ import annotations

import glob
import json
import os
import re
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


def create_captured(rt, bundle, cid, *extra, tmp=None, cwd=None):  # type: ignore[no-untyped-def]
    """`create` with the container's stdio on files (a pipe would stay open as long as the init)."""
    tmp = Path(tmp or bundle.path)
    with open(tmp / "out", "w") as out, open(tmp / "err", "w") as err:
        p = subprocess.run(rt.argv("create", "-b", str(bundle.path), *extra, cid), cwd=cwd,
                           stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=60)
    return p.returncode, (tmp / "out").read_text(), (tmp / "err").read_text()


def run_in(rt, bundle, cid):  # type: ignore[no-untyped-def]
    r = rt.run("run", "-b", str(bundle.path), cid)
    assert r.rc == 0, r
    return r.out


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\Z")


def mounts_of(*words):
    """Host mounts whose mountinfo line names one of `words` (others' tests mount things too)."""
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if any(w in line for w in words)]


def processes_mentioning(text):
    found = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(f"{d}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(d)
        except OSError:
            pass
    return found


def fails_cleanly(rt, bundle, cid, *expect, verb="run", tmp=None):
    """Run `verb` twice (plain, then --log json); check the error report and the leftovers."""
    r = rt.run(verb, "-b", str(bundle.path), cid, timeout=30)
    assert r.rc == 1, r
    assert r.out == ""
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    for word in expect:
        assert word in lines[0], (word, lines[0])
    log = bundle.path / "log.json"
    r2 = rt.run("--log", str(log), "--log-format", "json", verb, "-b", str(bundle.path), cid,
                root=True, timeout=30)
    assert r2.rc == 1
    entries = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(entries) == 1, entries
    assert set(entries[0]) == {"level", "msg", "time"}
    assert entries[0]["level"] == "error"
    assert RFC3339.match(entries[0]["time"])
    for word in expect:
        assert word in entries[0]["msg"]
    # nothing left behind
    assert not (rt.root / cid).exists()
    assert rt.run("state", cid).rc == 1
    assert glob.glob(f"/sys/fs/cgroup/*/pyrunc/{cid}") == []
    assert glob.glob(f"/sys/fs/cgroup/pyrunc/{cid}") == []
    assert mounts_of(str(bundle.path), cid) == []
    assert processes_mentioning(cid) == []
    return lines[0]
