"""Signals reach the right process: an init whose pid was recycled is `stopped`, never signalled.

A recycled pid is hard to force, so the test recycles it by hand: state.json's `pid` is pointed at
another live process the test started, keeping the saved `pid_start` (the init's start time). pyrunc
must see that the start time does not match, report the container stopped, and leave that process
alone through `kill`, `kill --all` and `delete`.
"""

from __future__ import annotations

import json
import subprocess  # noqa: TID251 — tests drive the CLI
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest


def call(rt: Any, *args: str) -> Any:
    """rt.run without pipes: the container init inherits the runtime's stdout and stderr."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.run(rt.argv(*args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=err, timeout=60)
        err.seek(0)
        return p.returncode, err.read().decode(errors="replace")


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen(["sleep", "1000"])
    yield p
    p.kill()
    p.wait()


def _recycle(rt: Any, cid: str, pid: int) -> dict[str, Any]:
    path = rt.root / cid / "state.json"
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, "pid": pid}))
    return saved  # type: ignore[no-any-return]


@pytest.mark.requires("root", "busybox")
@pytest.mark.parametrize("started", [False, True])
def test_recycled_pid_is_stopped_and_never_signalled(runtime: Any, make_bundle: Any, cid: str,
                                                     bystander: Any, started: bool) -> None:
    bundle = make_bundle("sleep", "100")
    assert call(runtime, "create", "--bundle", str(bundle.path), cid)[0] == 0
    if started:
        assert call(runtime, "start", cid)[0] == 0
    saved = _recycle(runtime, cid, bystander.pid)
    assert saved["pid_start"], "pyrunc keeps the init's start time as pid_start"

    st = runtime.state(cid)
    assert (st["status"], st["pid"]) == ("stopped", 0)
    for args in (("kill", cid, "KILL"), ("kill", cid, "TERM"), ("kill", "--all", cid, "KILL")):
        rc, err = call(runtime, *args)
        assert rc in (0, 1) and "Traceback" not in err, err
        assert bystander.poll() is None, f"{args} signalled a process that is not the container's"
    rc, err = call(runtime, "delete", cid)
    assert rc == 0, err
    assert bystander.poll() is None, "delete signalled a process that is not the container's"
    assert _proc_state(saved["pid"]) in (None, "Z", "X"), "delete left the real init running"


def _proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return None


@pytest.mark.requires("root", "busybox")
def test_kill_reaches_the_live_init(runtime: Any, make_bundle: Any, cid: str) -> None:
    """The control case: with the pid not recycled, the same `kill` does stop the container."""
    bundle = make_bundle("sleep", "100")
    assert call(runtime, "run", "--detach", "--bundle", str(bundle.path), cid)[0] == 0
    assert runtime.state(cid)["status"] == "running"
    assert call(runtime, "kill", cid, "KILL")[0] == 0
    for _ in range(2000):
        if runtime.state(cid)["status"] == "stopped":
            break
    assert runtime.state(cid)["status"] == "stopped"
    assert call(runtime, "delete", cid)[0] == 0
