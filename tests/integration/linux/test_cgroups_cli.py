"""pause, resume, update, ps and events through the real pyrunc command on busybox bundles.

Checked from outside: cgroup files, /proc/<pid>/stat, state.json, and the JSON the verbs print.
Every container lives under a parent cgroup `pyrunc-test-cg-<random>`, removed at the end.
"""

from __future__ import annotations

import json
import os
import subprocess  # noqa: TID251  (tests start real processes)
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from proc_helpers import proc_state
from testlib import Bundle, Runtime, cgroup_mounts

pytestmark = pytest.mark.requires("root", "busybox", "cgroup-v1")


@pytest.fixture
def started(runtime: Runtime, make_bundle: Callable[..., Bundle],
            parent: str) -> Callable[..., tuple[str, Bundle]]:
    """Create and start a container running `args` with `resources`; returns (id, bundle)."""

    def _start(*args: str, resources: dict[str, Any] | None = None) -> tuple[str, Bundle]:
        cid = "cg-" + uuid.uuid4().hex[:10]
        b = make_bundle(*args)
        b.linux["cgroupsPath"] = f"/{parent}/{cid}"
        b.linux["resources"].update(resources or {})
        b.write()
        # The init keeps create's stdio: files, not pipes, or the output never reaches EOF.
        with open(b.path / "out", "w") as out:
            p = subprocess.run(runtime.argv("create", "--bundle", str(b.path), cid),
                               stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60)
        assert p.returncode == 0, (b.path / "out").read_text()
        runtime.run("start", cid, check=True, timeout=30)
        return cid, b

    return _start


def cgfile(parent: str, cid: str, controller: str, name: str) -> str:
    return Path(f"/sys/fs/cgroup/{controller}/{parent}/{cid}/{name}").read_text().strip()


def test_pause_resume(runtime: Runtime, started: Callable[..., tuple[str, Bundle]],
                      parent: str) -> None:
    cid, _ = started("sleep", "600")
    pid = int(runtime.state(cid)["pid"])  # type: ignore[call-overload]
    r = runtime.run("resume", cid)
    assert r.rc != 0 and "container not paused" in r.err
    runtime.run("pause", cid, check=True)
    assert runtime.state(cid)["status"] == "paused"
    assert cgfile(parent, cid, "freezer", "freezer.state") == "FROZEN"
    assert proc_state(pid) == "D"
    r = runtime.run("pause", cid)
    assert r.rc != 0 and "container not running" in r.err
    runtime.run("resume", cid, check=True)
    assert runtime.state(cid)["status"] == "running"
    assert cgfile(parent, cid, "freezer", "freezer.state") == "THAWED"


def test_update_flags_and_persistence(runtime: Runtime, started: Callable[..., tuple[str, Bundle]],
                                      parent: str) -> None:
    cid, _ = started("sleep", "600", resources={"memory": {"limit": 64 << 20}})
    runtime.run("update", "--memory", "128m", "--memory-swap", "256M", "--cpu-shares", "300",
                "--pids-limit", "42", "--cpu-quota", "20000", "--cpu-period", "100000", cid,
                check=True)
    assert cgfile(parent, cid, "memory", "memory.limit_in_bytes") == str(128 << 20)
    assert cgfile(parent, cid, "memory", "memory.memsw.limit_in_bytes") == str(256 << 20)
    assert cgfile(parent, cid, "cpu", "cpu.shares") == "300"
    assert cgfile(parent, cid, "cpu", "cpu.cfs_quota_us") == "20000"
    assert cgfile(parent, cid, "pids", "pids.max") == "42"
    saved = json.loads((runtime.root / cid / "state.json").read_text())
    res = saved["config"]["linux"]["resources"]
    assert res["memory"]["limit"] == 128 << 20 and res["pids"]["limit"] == 42
    assert res["devices"]  # the device list is kept


def test_update_from_stdin_docker_zeros(runtime: Runtime,
                                        started: Callable[..., tuple[str, Bundle]],
                                        parent: str) -> None:
    cid, _ = started("sleep", "600", resources={"memory": {"limit": 64 << 20},
                                                "cpu": {"shares": 512}})
    doc = {"memory": {"limit": 0, "reservation": 0, "swap": 0}, "cpu": {"shares": 0, "quota": 0,
           "cpus": "0"}, "blockIO": {"weight": 0}, "pids": {"limit": 0}}
    runtime.run("update", "-r", "-", cid, input=json.dumps(doc), check=True)
    assert cgfile(parent, cid, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert cgfile(parent, cid, "cpu", "cpu.shares") == "512"
    assert cgfile(parent, cid, "cpuset", "cpuset.cpus") == "0"
    r = runtime.run("update", "-r", "-", cid, input="{not json")
    assert r.rc != 0 and "resources" in r.err


def test_update_error_names_file_and_value(runtime: Runtime,
                                           started: Callable[..., tuple[str, Bundle]]) -> None:
    cid, _ = started("sleep", "600")
    r = runtime.run("update", "--cpuset-cpus", "63", cid)
    assert r.rc != 0 and 'failed to write "63": write ' in r.err and "cpuset.cpus" in r.err


def test_ps_json_and_table(runtime: Runtime, started: Callable[..., tuple[str, Bundle]]) -> None:
    cid, _ = started("sh", "-c", "sleep 600 & exec sleep 601")
    pid = int(runtime.state(cid)["pid"])  # type: ignore[call-overload]
    pids = json.loads(runtime.run("ps", "--format", "json", cid, check=True).out)
    assert pid in pids and len(pids) == 2
    table = runtime.run("ps", cid, check=True).out.splitlines()
    assert table[0].split()[1] == "PID" and len(table) == 3
    assert {int(line.split()[1]) for line in table[1:]} == set(pids)


def test_events_stats(runtime: Runtime, started: Callable[..., tuple[str, Bundle]]) -> None:
    cid, _ = started("sleep", "600", resources={"memory": {"limit": 64 << 20},
                                                "pids": {"limit": 10}})
    out = runtime.run("events", "--stats", cid, check=True).out
    event = json.loads(out)
    assert (event["type"], event["id"]) == ("stats", cid)
    assert event["data"]["memory"]["usage"]["limit"] == 64 << 20
    assert event["data"]["pids"] == {"current": 1, "limit": 10}
    assert "percpu" in event["data"]["cpu"]["usage"]


def test_events_reports_oom_and_ends_with_the_container(
        runtime: Runtime, started: Callable[..., tuple[str, Bundle]]) -> None:
    cid, b = started("sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; tail /dev/zero",
                     resources={"memory": {"limit": 16 << 20, "swap": 16 << 20}})
    p = subprocess.Popen(runtime.argv("events", "--interval", "1s", cid), stdout=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout is not None
        assert json.loads(p.stdout.readline())["type"] == "stats"  # the loop is running
        (b.rootfs / "tmp" / "go").touch()
        kinds = [json.loads(line)["type"] for line in p.stdout]
        assert "oom" in kinds
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_delete_removes_cgroups(runtime: Runtime, started: Callable[..., tuple[str, Bundle]],
                                parent: str) -> None:
    cid, _ = started("sh", "-c", "sleep 600 & exec sleep 601")
    runtime.run("delete", "--force", cid, check=True)
    for mount in cgroup_mounts():
        assert not os.path.exists(os.path.join(mount, parent, cid))


def test_delete_removes_sub_cgroups_the_workload_made(
        runtime: Runtime, started: Callable[..., tuple[str, Bundle]], parent: str) -> None:
    """A workload may make cgroups below its own (systemd in a container does); delete --force
    removes them, deepest first, along with the container's, in every hierarchy."""
    cid, _ = started("sleep", "600")
    pid = int(runtime.state(cid)["pid"])  # type: ignore[call-overload]
    made = []
    for controller in ("memory", "pids", "unified"):
        deep = Path(f"/sys/fs/cgroup/{controller}/{parent}/{cid}/a/b")
        deep.mkdir(parents=True)
        made.append(deep)
    procs = Path(f"/sys/fs/cgroup/pids/{parent}/{cid}/a/b/cgroup.procs")
    procs.write_text(str(pid))  # the init itself moves down a level
    runtime.run("delete", "--force", cid, check=True, timeout=30)
    for deep in made:
        assert not deep.parent.parent.exists(), deep.parent.parent
    assert not os.path.exists(f"/proc/{pid}") or proc_state(pid) == "Z"  # killed (maybe unreaped)
