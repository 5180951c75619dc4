"""The cgroup Manager on the real host, driven directly (no container): files, effects, teardown.

Each test works under a parent cgroup `pyrunc-test-cg-<random>` in every hierarchy and removes it.
The host is cgroup v1 hybrid: the v1 controllers do the limiting; the cgroup2 mount has no
controllers, so the v2 tests cover what it does offer (joining, cgroup.freeze, cgroup.kill and the
eBPF device filter) on a cgroup2-only layout of that mount.
"""

from __future__ import annotations

import os
import signal
import subprocess  # noqa: TID251  (tests start real processes)
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from proc_helpers import proc_state

from pyrunc.errors import CgroupError
from pyrunc.linux import cgroups
from pyrunc.linux.cgroups.layout import Layout, detect

pytestmark = pytest.mark.requires("root", "cgroup-v1")

Spawn = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start a process already inside `manager`'s cgroups (joined before exec)."""
    procs: list[subprocess.Popen[str]] = []

    def _spawn(manager: cgroups.Manager, *argv: str, **kw: Any) -> subprocess.Popen[str]:
        p = subprocess.Popen(list(argv), preexec_fn=lambda: manager.apply(os.getpid()),
                             text=True, **kw)
        procs.append(p)
        return p

    yield _spawn
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def manager(parent: str, resources: dict[str, Any] | None = None, **linux: Any) -> cgroups.Manager:
    cid = "cg-" + uuid.uuid4().hex[:6]
    return cgroups.new_manager(cid, {"cgroupsPath": f"/{parent}/{cid}",
                                     "resources": resources or {}, **linux})


def cat(m: cgroups.Manager, controller: str, file: str) -> str:
    with open(os.path.join(m.paths()[controller], file)) as f:
        return f.read().strip()


def test_create_join_files_destroy(parent: str, spawn: Spawn) -> None:
    m = manager(parent, {"memory": {"limit": 64 << 20, "reservation": 32 << 20},
                         "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
                         "pids": {"limit": 50}})
    m.create()
    p = spawn(m, "sleep", "60")
    with open(f"/proc/{p.pid}/cgroup") as f:
        own = f.read()
    for ctrl in ("memory", "cpu", "pids", "freezer", "devices", "name=systemd"):
        assert f"{ctrl}:/{parent}/" in own
    assert f"0::/{parent}/" in own  # the cgroup2 dir of the hybrid host is joined too
    assert cat(m, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert cat(m, "memory", "memory.soft_limit_in_bytes") == str(32 << 20)
    assert (cat(m, "cpu", "cpu.shares"), cat(m, "cpu", "cpu.cfs_quota_us")) == ("512", "50000")
    assert (cat(m, "cpuset", "cpuset.cpus"), cat(m, "pids", "pids.max")) == ("0", "50")
    assert m.pids() == [p.pid]
    m.kill_all()
    p.wait()
    m.destroy()
    assert not any(os.path.exists(d) for d in m.paths().values())
    m.destroy()  # idempotent


def test_memory_hog_is_oom_killed(parent: str, spawn: Spawn) -> None:
    m = manager(parent, {"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    m.create()
    assert m.oom_count() == 0
    p = spawn(m, sys.executable, "-I", "-S", "-c", "b = b'x' * (256 << 20); print('survived')",
              stdout=subprocess.PIPE)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL and "survived" not in out
    assert m.oom_count() >= 1
    assert "oom_kill 0" not in cat(m, "memory", "memory.oom_control")
    assert int(cat(m, "memory", "memory.max_usage_in_bytes")) > 16 << 20


FORKER = """
import os, time
failed = 0
for _ in range(10):
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
    except OSError:
        failed += 1
print(failed, flush=True)
time.sleep(60)
"""


def test_fork_bomb_stops_at_pids_max(parent: str, spawn: Spawn) -> None:
    m = manager(parent, {"pids": {"limit": 5}})
    m.create()
    p = spawn(m, sys.executable, "-I", "-S", "-c", FORKER, stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline() == "6\n"  # 1 + 4 children, 6 refused
    assert len(m.pids()) == 5 and cat(m, "pids", "pids.current") == "5"
    assert cat(m, "pids", "pids.events") == "max 6"
    m.kill_all()
    assert m.pids() == []


def test_freeze_thaw(parent: str, spawn: Spawn) -> None:
    m = manager(parent)
    m.create()
    p = spawn(m, "sleep", "60")
    assert not m.frozen()
    m.freeze()
    assert m.frozen() and cat(m, "freezer", "freezer.state") == "FROZEN"
    assert proc_state(p.pid) == "D"  # the v1 freezer parks tasks uninterruptibly
    m.thaw()
    assert not m.frozen()
    # the thawed task is woken asynchronously: on a loaded machine it can still show D briefly
    deadline = time.monotonic() + 5
    while proc_state(p.pid) == "D" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc_state(p.pid) in ("R", "S")


def test_set_updates_files_in_either_order(parent: str, spawn: Spawn) -> None:
    m = manager(parent, {"memory": {"limit": 64 << 20, "swap": 64 << 20}})
    m.create()
    spawn(m, "sleep", "60")
    # Raising both needs memsw first, lowering both needs the limit first.
    for size in (128 << 20, 16 << 20):
        m.set({"memory": {"limit": size, "swap": size}, "cpu": {"shares": 300}})
        assert cat(m, "memory", "memory.limit_in_bytes") == str(size)
        assert cat(m, "memory", "memory.memsw.limit_in_bytes") == str(size)
    assert cat(m, "cpu", "cpu.shares") == "300"
    m.set({"pids": {"limit": -1}})
    assert cat(m, "pids", "pids.max") == "max"


def test_kill_all_with_grandchildren_and_frozen(parent: str, spawn: Spawn) -> None:
    m = manager(parent)
    m.create()
    p = spawn(m, "sh", "-c", "sleep 60 & sleep 60 & (sleep 60 &); echo up; wait",
              stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline() == "up\n"
    assert len(m.pids()) >= 4
    m.freeze()
    m.kill_all()
    assert m.pids() == []
    assert p.wait(timeout=10) == -signal.SIGKILL


def test_destroy_removes_sub_cgroups(parent: str) -> None:
    m = manager(parent)
    m.create()
    os.mkdir(os.path.join(m.paths()["memory"], "child"))
    m.destroy()
    assert not os.path.exists(m.paths()["memory"])


def test_device_list_v1(parent: str, spawn: Spawn) -> None:
    m = manager(parent, {"devices": [{"allow": False, "access": "rwm"}]})
    m.create()
    assert "c 1:3 rwm" in cat(m, "devices", "devices.list").splitlines()
    p = spawn(m, "sh", "-c", "true > /dev/null && echo null-ok; true > /dev/kmsg || echo kmsg-denied",
              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=30)
    assert out.split() == ["null-ok", "kmsg-denied"] and "not permitted" in err


def test_write_error_names_file_and_value_and_rolls_back(parent: str) -> None:
    m = manager(parent, {"cpu": {"cpus": "63"}})
    with pytest.raises(CgroupError, match=r"writing '63' to /sys/fs/cgroup/cpuset/.*/cpuset.cpus"):
        m.create()
    assert not any(os.path.exists(d) for d in m.paths().values())


def test_stats_shape(parent: str, spawn: Spawn) -> None:
    m = manager(parent, {"memory": {"limit": 64 << 20}, "pids": {"limit": 10}})
    m.create()
    p = spawn(m, "sh", "-c", "sleep 60 & echo up; wait", stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline() == "up\n"
    data = m.stats()
    assert set(data) == {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert data["pids"] == {"current": 2, "limit": 10}
    assert data["memory"]["usage"]["limit"] == 64 << 20
    assert len(data["cpu"]["usage"]["percpu"]) == os.cpu_count()


# ---- cgroup2 (the hybrid host's unified mount, used as if it were a v2-only host) ----------------

def v2_manager(parent: str, linux: dict[str, Any]) -> cgroups.Manager:
    unified = detect().unified
    if not unified:
        pytest.skip("needs a cgroup2 mount")
    lay = Layout(mode="v2", unified=unified, own={"": "/"})
    return cgroups.manager_for(lay, "cg-v2", {"cgroupsPath": f"/{parent}/cg-v2", **linux})


@pytest.mark.requires("cgroup-v2")
def test_v2_device_filter_freeze_kill(parent: str, spawn: Spawn) -> None:
    m = v2_manager(parent, {"resources": {"devices": [{"allow": False, "access": "rwm"}]}})
    m.create()
    assert list(m.paths()) == [""]
    p = spawn(m, "sh", "-c", "true > /dev/null && echo null-ok; true > /dev/kmsg || echo kmsg-denied; "
              "exec sleep 60", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert p.stdout is not None
    assert [p.stdout.readline(), p.stdout.readline()] == ["null-ok\n", "kmsg-denied\n"]
    assert m.pids() == [p.pid]
    m.freeze()
    assert m.frozen() and "frozen 1" in cat(m, "", "cgroup.events")
    m.thaw()
    assert not m.frozen()
    m.kill_all()
    assert p.wait(timeout=10) == -signal.SIGKILL
    m.destroy()
    assert not os.path.exists(m.paths()[""])


@pytest.mark.requires("cgroup-v2")
def test_v2_missing_controller_is_an_error(parent: str) -> None:
    if "memory" in (detect().unified and Layout("v2", unified=detect().unified).controllers_v2()):
        pytest.skip("the cgroup2 mount has a memory controller here")
    with pytest.raises(CgroupError, match="linux.resources.memory.limit: the memory controller"):
        v2_manager(parent, {"resources": {"memory": {"limit": 1 << 20}}})
