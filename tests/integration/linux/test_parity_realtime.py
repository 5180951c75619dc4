"""Real-time scheduling on cgroup v1 with real-time group scheduling (CONFIG_RT_GROUP_SCHED).

A container asking for `linux.resources.cpu.realtimeRuntime` under new parent cgroups gets it
(pyrunc grows the parents' budgets top-down, see pyrunc/linux/cgroups/rt.py), its
`process.scheduler` SCHED_FIFO/SCHED_RR then applies, and `delete` gives the parents' budgets
back. Checked from outside: the cgroup files under a private parent `par-rt-<random>`, and the
init's policy from sched_getscheduler(2).
"""

from __future__ import annotations

import os
import subprocess  # noqa: TID251  (tests start real processes)
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from testlib import Bundle, Runtime, cgroup_mounts, remove_cgroup_tree

pytestmark = pytest.mark.requires("root", "busybox", "cgroup-v1")

CPU = Path("/sys/fs/cgroup/cpu")
SCHED_RESET_ON_FORK = 0x40000000


@pytest.fixture
def parent() -> Iterator[str]:
    if not (CPU / "cpu.rt_runtime_us").exists():
        pytest.skip("no real-time group scheduling here (cpu.rt_runtime_us)")
    name = "par-rt-" + uuid.uuid4().hex[:8]
    yield name
    for top, _dirs, _files in os.walk(CPU / name, topdown=False):
        try:  # budgets first, so the root gets them back at once
            Path(top, "cpu.rt_runtime_us").write_text("0")
        except OSError:
            pass
    for mount in cgroup_mounts():
        remove_cgroup_tree(os.path.join(mount, name))


def rt_runtime(*parts: str) -> int:
    return int(Path(CPU, *parts, "cpu.rt_runtime_us").read_text())


@pytest.fixture
def start(runtime: Runtime, make_bundle: Callable[..., Bundle]) -> Callable[..., tuple[str, int]]:
    """Create and start `sleep 600` in cgroup `path` with `cpu` resources and `scheduler`."""

    def _start(path: str, cpu: dict[str, Any], scheduler: dict[str, Any] | None = None,
               ) -> tuple[str, int]:
        cid = "par-" + uuid.uuid4().hex[:10]
        b = make_bundle("sleep", "600")
        b.linux["cgroupsPath"] = f"/{path}/{cid}"
        b.linux["resources"]["cpu"] = cpu
        if scheduler:
            b.process["scheduler"] = scheduler
        b.write()
        with open(b.path / "out", "w") as out:
            p = subprocess.run(runtime.argv("create", "--bundle", str(b.path), cid),
                               stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60)
        assert p.returncode == 0, (b.path / "out").read_text()
        runtime.run("start", cid, check=True)
        return cid, int(runtime.state(cid)["pid"])  # type: ignore[call-overload]

    return _start


def test_realtime_runtime_under_new_parents_and_sched_fifo(
        runtime: Runtime, start: Callable[..., tuple[str, int]], parent: str) -> None:
    fifo = {"policy": "SCHED_FIFO", "priority": 10, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
    cid, pid = start(f"{parent}/pod", {"realtimePeriod": 100000, "realtimeRuntime": 10000}, fifo)
    assert os.sched_getscheduler(pid) == os.SCHED_FIFO | SCHED_RESET_ON_FORK
    assert os.sched_getparam(pid).sched_priority == 10
    assert rt_runtime(parent, "pod", cid) == 10000
    assert rt_runtime(parent, "pod") == rt_runtime(parent) == 100000  # 10% per second
    # A sibling: the parents grow by what it needs, its SCHED_RR applies.
    rr = {"policy": "SCHED_RR", "priority": 5}
    cid2, pid2 = start(f"{parent}/pod", {"realtimePeriod": 50000, "realtimeRuntime": 10000}, rr)
    assert os.sched_getscheduler(pid2) == os.SCHED_RR
    assert rt_runtime(parent, "pod") == rt_runtime(parent) == 300000  # 10% + 20%
    # update asks for more: the parents grow again
    r = runtime.run("update", "--cpu-rt-runtime", "30000", cid)
    assert (r.rc, r.err) == (0, ""), r.err
    assert rt_runtime(parent, "pod", cid) == 30000
    assert rt_runtime(parent, "pod") == rt_runtime(parent) == 500000
    # delete gives back what each container added, keeping what the other still needs
    runtime.run("delete", "--force", cid, check=True)
    assert rt_runtime(parent, "pod") == rt_runtime(parent) == 200000
    runtime.run("delete", "--force", cid2, check=True)
    assert rt_runtime(parent, "pod") == rt_runtime(parent) == 0


def test_realtime_runtime_beyond_the_hosts_limit_is_refused_and_nothing_kept(
        runtime: Runtime, make_bundle: Callable[..., Bundle], parent: str) -> None:
    cid = "par-" + uuid.uuid4().hex[:10]
    b = make_bundle("true")
    b.linux["cgroupsPath"] = f"/{parent}/pod/{cid}"
    b.linux["resources"]["cpu"] = {"realtimePeriod": 100000, "realtimeRuntime": 99000}  # > 95%
    b.write()
    r = runtime.run("create", "--bundle", str(b.path), cid)
    assert r.rc == 1
    assert "realtimeRuntime" in r.err and "Invalid argument" in r.err, r.err
    assert r.err.count("\n") == 1, r.err
    assert runtime.run("state", cid).rc == 1
    assert not (CPU / parent).exists()  # the parents create made are removed too


def test_realtime_policy_without_a_budget_names_the_field(
        runtime: Runtime, make_bundle: Callable[..., Bundle], parent: str) -> None:
    cid = "par-" + uuid.uuid4().hex[:10]
    b = make_bundle("true")
    b.linux["cgroupsPath"] = f"/{parent}/{cid}"
    b.process["scheduler"] = {"policy": "SCHED_RR", "priority": 1}
    b.write()
    with open(b.path / "out", "w") as out:
        p = subprocess.run(runtime.argv("run", "--bundle", str(b.path), cid),
                           stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60)
    err = (b.path / "out").read_text()
    assert p.returncode == 1
    assert "process.scheduler" in err and "linux.resources.cpu.realtimeRuntime" in err, err
