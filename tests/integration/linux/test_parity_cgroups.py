"""Parity with runc 1.1.5 on cgroup v1 resources, `update`, and frozen cgroups, through the CLI.

Checked from outside: the container's cgroup files under a private parent `p14-cg-<random>`
(removed, thawed first, at the end). Containers get runc's default namespaces: nothing is
inherited from the host.
"""

from __future__ import annotations

import errno
import os
import subprocess  # noqa: TID251  (tests start real processes)
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from testlib import Bundle, Runtime, cgroup_mounts, remove_cgroup_tree

pytestmark = pytest.mark.requires("root", "busybox", "cgroup-v1")

V1 = "/sys/fs/cgroup"


@pytest.fixture
def parent() -> Iterator[str]:
    name = "p14-cg-" + uuid.uuid4().hex[:8]
    yield name
    freezer = Path(V1, "freezer", name)
    if freezer.is_dir():
        for state in freezer.rglob("freezer.state"):
            state.write_text("THAWED")  # a frozen task cannot die
    for mount in cgroup_mounts():
        remove_cgroup_tree(os.path.join(mount, name))


def new_id() -> str:
    return "p14-" + uuid.uuid4().hex[:10]


def cgfile(parent: str, cid: str, controller: str, name: str) -> str:
    return Path(V1, controller, parent, cid, name).read_text().strip()


def create(rt: Runtime, b: Bundle, cid: str, timeout: float = 60) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    # The init keeps create's stdio: a file, not a pipe.
    with open(b.path / "out", "w") as out:
        return subprocess.run(rt.argv("create", "--bundle", str(b.path), cid),
                              stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=timeout)


@pytest.fixture
def started(runtime: Runtime, make_bundle: Callable[..., Bundle],
            parent: str) -> Callable[..., str]:
    """Create and start `sleep 600` with `resources` under the private parent; returns the id."""

    def _start(resources: dict[str, Any] | None = None) -> str:
        cid = new_id()
        b = make_bundle("sleep", "600")
        b.linux["cgroupsPath"] = f"/{parent}/{cid}"
        b.linux["resources"].update(resources or {})
        b.write()
        p = create(runtime, b, cid)
        assert p.returncode == 0, (b.path / "out").read_text()
        runtime.run("start", cid, check=True, timeout=30)
        return cid

    return _start


# ---- 5. kernelTCP ---------------------------------------------------------------------------

def test_kernel_tcp_limit_is_applied(runtime: Runtime, started: Callable[..., str],
                                     parent: str) -> None:
    if not Path(V1, "memory", "memory.kmem.tcp.limit_in_bytes").exists():
        pytest.skip("this kernel has no memory.kmem.tcp.limit_in_bytes")
    cid = started({"memory": {"limit": 256 << 20, "kernelTCP": 10 << 20}})
    assert cgfile(parent, cid, "memory", "memory.kmem.tcp.limit_in_bytes") == str(10 << 20)
    r = runtime.run("update", "--kernel-memory-tcp", "20M", cid)
    assert r.rc == 0, r.err
    assert cgfile(parent, cid, "memory", "memory.kmem.tcp.limit_in_bytes") == str(20 << 20)
    assert "kernelTCP" not in r.err  # applied, not "ignored"


# ---- 6. update ------------------------------------------------------------------------------

def test_update_several_flags_at_once_with_cpu_share(runtime: Runtime,
                                                     started: Callable[..., str],
                                                     parent: str) -> None:
    cid = started({"cpu": {"shares": 512}})
    r = runtime.run("update", "--cpu-share", "300", "--memory", "100M", "--memory-swap", "200M",
                    "--pids-limit", "50", "--cpu-quota", "50000", "--cpu-period", "100000", cid)
    assert (r.rc, r.err) == (0, ""), r.err
    assert cgfile(parent, cid, "cpu", "cpu.shares") == "300"
    assert cgfile(parent, cid, "cpu", "cpu.cfs_quota_us") == "50000"
    assert cgfile(parent, cid, "cpu", "cpu.cfs_period_us") == "100000"
    assert cgfile(parent, cid, "memory", "memory.limit_in_bytes") == str(100 << 20)
    assert cgfile(parent, cid, "memory", "memory.memsw.limit_in_bytes") == str(200 << 20)
    assert cgfile(parent, cid, "pids", "pids.max") == "50"


def test_cpu_quota_unlimited_in_config_and_update(runtime: Runtime,
                                                  started: Callable[..., str],
                                                  parent: str) -> None:
    cid = started({"cpu": {"quota": -1, "period": 100000}})
    assert cgfile(parent, cid, "cpu", "cpu.cfs_quota_us") == "-1"
    runtime.run("update", "--cpu-quota", "20000", cid, check=True)
    assert cgfile(parent, cid, "cpu", "cpu.cfs_quota_us") == "20000"
    runtime.run("update", "--cpu-quota", "-1", cid, check=True)
    assert cgfile(parent, cid, "cpu", "cpu.cfs_quota_us") == "-1"
    runtime.run("update", "-r", "-", cid, check=True, input='{"cpu": {"quota": 30000}}')
    runtime.run("update", "-r", "-", cid, check=True, input='{"cpu": {"quota": -1}}')
    assert cgfile(parent, cid, "cpu", "cpu.cfs_quota_us") == "-1"


def test_failed_update_is_worded_as_runc_and_set_back(runtime: Runtime,
                                                      started: Callable[..., str],
                                                      parent: str) -> None:
    cid = started({"memory": {"limit": 100 << 20, "swap": 200 << 20}, "pids": {"limit": 40}})
    # memory above memory+swap: the kernel refuses (runc: the same message, exit 1)
    r = runtime.run("update", "--pids-limit", "77", "--memory", "300M", cid)
    path = Path(V1, "memory", parent, cid, "memory.limit_in_bytes")
    assert (r.rc, r.out) == (1, "")
    assert r.err == f'failed to write "{300 << 20}": write {path}: invalid argument\n'
    # what was written before the refusal is set back, so state and cgroups agree
    assert cgfile(parent, cid, "pids", "pids.max") == "40"
    assert cgfile(parent, cid, "memory", "memory.limit_in_bytes") == str(100 << 20)


def test_cfs_period_and_quota_in_the_order_the_kernel_accepts(
        runtime: Runtime, started: Callable[..., str], parent: str) -> None:
    # Half a CPU for the parent: v1 refuses a child whose quota/period exceeds it.
    Path(V1, "cpu", parent).mkdir()
    Path(V1, "cpu", parent, "cpu.cfs_quota_us").write_text("50000")
    cid = started({"cpu": {"quota": 50000, "period": 100000}})
    # The new period against the current quota would be a full CPU: quota must go first.
    r = runtime.run("update", "--cpu-period", "50000", "--cpu-quota", "25000", cid)
    assert (r.rc, r.err) == (0, ""), r.err
    assert cgfile(parent, cid, "cpu", "cpu.cfs_period_us") == "50000"
    assert cgfile(parent, cid, "cpu", "cpu.cfs_quota_us") == "25000"


# ---- 8. real-time ---------------------------------------------------------------------------

def _rt_parent(parent: str, runtime_us: int) -> None:
    """Give the private parent a real-time budget (runtime_us per second), or skip."""
    cpu = Path(V1, "cpu")
    if not (cpu / "cpu.rt_runtime_us").exists():
        pytest.skip("no CONFIG_RT_GROUP_SCHED (cpu.rt_runtime_us)")
    (cpu / parent).mkdir()
    try:
        (cpu / parent / "cpu.rt_runtime_us").write_text(str(runtime_us))
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EBUSY):
            pytest.skip(f"the root cgroup has no {runtime_us} us of real-time budget left")
        raise


def test_rt_period_and_runtime_in_the_order_the_kernel_accepts(
        runtime: Runtime, started: Callable[..., str], parent: str) -> None:
    _rt_parent(parent, 100000)  # 10% of each second
    cid = started({"cpu": {"realtimePeriod": 100000, "realtimeRuntime": 10000}})
    assert cgfile(parent, cid, "cpu", "cpu.rt_period_us") == "100000"
    assert cgfile(parent, cid, "cpu", "cpu.rt_runtime_us") == "10000"
    # 50000 against the current runtime 10000 would be 20%: the runtime must go first.
    r = runtime.run("update", "--cpu-rt-period", "50000", "--cpu-rt-runtime", "5000", cid)
    assert (r.rc, r.err) == (0, ""), r.err
    assert cgfile(parent, cid, "cpu", "cpu.rt_period_us") == "50000"
    assert cgfile(parent, cid, "cpu", "cpu.rt_runtime_us") == "5000"


def test_rt_runtime_beyond_the_parent_budget_is_refused_clearly(
        runtime: Runtime, started: Callable[..., str], parent: str) -> None:
    _rt_parent(parent, 100000)
    if not 0 <= int(Path(V1, "cpu", "cpu.rt_runtime_us").read_text()) < 990000:
        pytest.skip("this host lets real-time tasks have 99% of the CPU")
    cid = started({"cpu": {"realtimePeriod": 100000, "realtimeRuntime": 10000}})
    # 99% is more than the host gives any cgroup (kernel.sched_rt_runtime_us: 95%): the parent
    # cannot be grown to make room (pyrunc grows a parent that is short, see test_parity_realtime)
    r = runtime.run("update", "--cpu-rt-runtime", "99000", cid)
    path = Path(V1, "cpu", parent, "cpu.rt_runtime_us")
    assert r.rc == 1
    assert r.err.startswith(f'failed to write "990000": write {path}: invalid argument'), r.err
    host = Path(V1, "cpu", "cpu.rt_runtime_us").read_text().strip()
    assert "realtimeRuntime" in r.err and f"cpu.rt_runtime_us {host} " in r.err, r.err
    assert cgfile(parent, cid, "cpu", "cpu.rt_runtime_us") == "10000"
    assert Path(V1, "cpu", parent, "cpu.rt_runtime_us").read_text().strip() == "100000"


# ---- 7. frozen cgroups ----------------------------------------------------------------------

def test_create_into_a_frozen_cgroup_is_refused(runtime: Runtime,
                                                make_bundle: Callable[..., Bundle],
                                                parent: str) -> None:
    cid = new_id()
    frozen = Path(V1, "freezer", parent, cid)
    frozen.mkdir(parents=True)
    (frozen / "freezer.state").write_text("FROZEN")
    b = make_bundle("true")
    b.linux["cgroupsPath"] = f"/{parent}/{cid}"
    b.write()
    try:
        p = create(runtime, b, cid, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("create into a frozen cgroup hung")
    err = (b.path / "out").read_text()
    assert p.returncode == 1
    assert err.startswith("container's cgroup unexpectedly frozen"), err
    assert err.count("\n") == 1, err
    assert runtime.run("state", cid).rc == 1
    assert not (runtime.root / cid).exists()
    # the cgroup was not ours: left as it was, still frozen, nothing in it
    assert (frozen / "freezer.state").read_text().strip() == "FROZEN"
    assert (frozen / "cgroup.procs").read_text() == ""
