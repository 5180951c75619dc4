"""The pure cgroup layer: layout parsing, resources -> files for v1 and v2, the device allow-list and
its eBPF program (run by a small Python interpreter of the instructions it uses), update flags.

No cgroup v2 controller is available on the test host (its cgroup2 mount has none enabled), so the
v2 controller files (memory.max, cpu.weight, io.weight, ...) are checked here, through rendering.
"""

from __future__ import annotations

import io
import json

import pytest

from pyrunc.errors import CgroupError, SpecError
from pyrunc.linux import cgroups
from pyrunc.linux.cgroups import devices, layout, plan

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
SELF = "4:memory:/user/me\n1:cpu,cpuacct:/\n0::/init.scope\n"


def files(entries: list[plan.Entry]) -> dict[str, str]:
    return {e.file: e.value for e in entries}


def test_layout_hybrid_and_own_paths() -> None:
    lay = layout.build(HYBRID_MOUNTINFO, SELF)
    assert lay.mode == "hybrid"
    assert lay.v1["cpuacct"] == lay.v1["cpu"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert lay.v1["name=systemd"] == "/sys/fs/cgroup/systemd"
    assert lay.unified == "/sys/fs/cgroup/unified"
    assert lay.own_path("memory") == "/user/me" and lay.own_path("") == "/init.scope"


def test_layout_v2_only() -> None:
    lay = layout.build("30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "0::/a\n")
    assert (lay.mode, lay.v1, lay.unified) == ("v2", {}, "/sys/fs/cgroup")


def test_paths_absolute_relative_default() -> None:
    lay = layout.build(HYBRID_MOUNTINFO, SELF)
    m = cgroups.manager_for(lay, "c1", {})
    assert m.paths()["memory"] == "/sys/fs/cgroup/memory/pyrunc/c1"
    m = cgroups.manager_for(lay, "c1", {"cgroupsPath": "box/c1"})
    assert m.paths()["memory"] == "/sys/fs/cgroup/memory/user/me/box/c1"
    assert m.paths()[""] == "/sys/fs/cgroup/unified/init.scope/box/c1"
    with pytest.raises(CgroupError, match="cgroupsPath"):
        cgroups.manager_for(lay, "c1", {"cgroupsPath": "/a/../../etc"})


def test_missing_controller_only_when_asked() -> None:
    lay = layout.build(HYBRID_MOUNTINFO, SELF)
    cgroups.manager_for(lay, "c1", {"resources": {"memory": {"limit": 1 << 20}}})
    with pytest.raises(CgroupError, match=r"linux.resources.pids.limit: the pids cgroup"):
        cgroups.manager_for(lay, "c1", {"resources": {"pids": {"limit": 10}}})
    with pytest.raises(CgroupError, match="network.classID: the net_cls"):
        cgroups.manager_for(lay, "c1", {"resources": {"network": {"classID": 7}}})


def test_systemd_driver_without_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "SYSTEMD_RUNNING", "/nonexistent/systemd")
    with pytest.raises(CgroupError, match="systemd is not running"):
        cgroups.new_manager("c1", {"cgroupsPath": "system.slice:pyrunc:c1"}, systemd=True)


def test_v1_memory_cpu_pids() -> None:
    res = {"memory": {"limit": 1 << 20, "reservation": 1 << 19, "swap": 2 << 20,
                      "swappiness": 10, "disableOOMKiller": True, "kernel": 1 << 20},
           "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0-1", "mems": "0",
                   "realtimeRuntime": 950, "burst": 1000, "idle": 1},
           "pids": {"limit": -1}}
    f = files(plan.render_v1(res))
    assert f["memory.limit_in_bytes"] == str(1 << 20)
    assert f["memory.memsw.limit_in_bytes"] == str(2 << 20)
    assert f["memory.soft_limit_in_bytes"] == str(1 << 19)
    assert (f["memory.swappiness"], f["memory.oom_control"]) == ("10", "1")
    assert "memory.kmem.limit_in_bytes" not in f
    assert (f["cpu.shares"], f["cpu.cfs_quota_us"], f["cpu.cfs_period_us"]) == ("512", "20000",
                                                                                 "100000")
    assert (f["cpu.rt_runtime_us"], f["cpu.cfs_burst_us"], f["cpu.idle"]) == ("950", "1000", "1")
    assert (f["cpuset.cpus"], f["cpuset.mems"]) == ("0-1", "0")
    assert f["pids.max"] == "max"
    assert plan.warnings(res) == [
        "linux.resources.memory.kernel is not supported by the kernel any more and is ignored"]


def test_zero_means_unset_but_pids_zero_is_a_limit() -> None:
    res = {"memory": {"limit": 0, "reservation": 0}, "cpu": {"shares": 0, "quota": 0},
           "blockIO": {"weight": 0}, "pids": {"limit": 0}}
    assert files(plan.render_v1(res)) == {"pids.max": "0"}
    assert files(plan.render_v2(res)) == {"pids.max": "0"}


def test_v1_unlimited_memory_unlimits_swap() -> None:
    f = files(plan.render_v1({"memory": {"limit": -1}}))
    assert f == {"memory.limit_in_bytes": "-1", "memory.memsw.limit_in_bytes": "-1"}


def test_v1_blkio_and_hugetlb() -> None:
    res = {"blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 500}],
                       "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                       "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}]},
           "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}]}
    f = files(plan.render_v1(res, bfq=True))
    assert f["blkio.bfq.weight"] == "300" and f["blkio.bfq.weight_device"] == "8:0 500"
    assert f["blkio.throttle.read_bps_device"] == "8:0 600"
    assert f["blkio.throttle.write_iops_device"] == "8:16 300"
    assert f["hugetlb.2MB.limit_in_bytes"] == str(1 << 21)
    assert files(plan.render_v1(res))["blkio.weight"] == "300"


@pytest.mark.parametrize(("res", "message"), [
    ({"memory": {"limit": "1g"}}, "linux.resources.memory.limit: expected an integer"),
    ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness: 101 is out of range"),
    ({"cpu": {"cpus": "a-b"}}, "linux.resources.cpu.cpus"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}},
     r"throttleReadBpsDevice\[0\].rate"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, r"hugepageLimits\[0\].pageSize"),
])
def test_invalid_values_name_the_field(res: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        plan.render_v1(res)


def test_v2_conversions() -> None:
    """cgroup v2 controller files (none of which this host's cgroup2 mount offers)."""
    res = {"memory": {"limit": 100 << 20, "swap": 300 << 20, "reservation": 50 << 20},
           "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "1"},
           "pids": {"limit": 64}, "blockIO": {"weight": 500},
           "hugepageLimits": [{"pageSize": "1GB", "limit": 1 << 30}],
           "unified": {"memory.high": "max", "cpu.weight": "77"}}
    entries = plan.render_v2(res)
    f = files(entries)
    assert f["memory.max"] == str(100 << 20) and f["memory.swap.max"] == str(200 << 20)
    assert f["memory.low"] == str(50 << 20)
    assert f["cpu.max"] == "50000 100000" and f["cpuset.cpus"] == "1" and f["pids.max"] == "64"
    assert f["io.weight"] == str(1 + (500 - 10) * 9999 // 990)
    assert f["hugetlb.1GB.max"] == str(1 << 30) and f["memory.high"] == "max"
    assert [e.value for e in entries if e.file == "cpu.weight"] == ["39", "77"]  # unified wins
    assert plan.v2_controllers(entries) == {"memory", "cpu", "cpuset", "pids", "io", "hugetlb"}
    assert files(plan.render_v2({"blockIO": {"weight": 500}}, bfq=True)) == {"io.bfq.weight": "500"}


@pytest.mark.parametrize(("shares", "weight"), [(0, 0), (2, 1), (1024, 39), (262144, 10000)])
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert plan.shares_to_weight(shares) == weight


def test_v2_memory_and_cpu_edge_cases() -> None:
    assert files(plan.render_v2({"memory": {"limit": -1}})) == {"memory.max": "max",
                                                                 "memory.swap.max": "max"}
    assert files(plan.render_v2({"cpu": {"quota": -1}}))["cpu.max"] == "max"
    assert files(plan.render_v2({"cpu": {"period": 50000}}))["cpu.max"] == "max 50000"
    with pytest.raises(SpecError, match="memory.swap"):
        plan.render_v2({"memory": {"limit": 200, "swap": 100}})
    with pytest.raises(CgroupError, match="realtimeRuntime"):
        plan.render_v2({"cpu": {"realtimeRuntime": 1}})


def test_unified_on_v1() -> None:
    assert files(plan.render_v1({"unified": {"pids.max": "10"}})) == {"pids.max": "10"}
    with pytest.raises(CgroupError, match="unified.memory.high"):
        plan.render_v1({"unified": {"memory.high": "10"}})


# ---- devices ------------------------------------------------------------------------------------

DENY_ALL = {"resources": {"devices": [{"allow": False, "access": "rwm"},
                                      {"allow": True, "type": "c", "major": 10, "minor": 229,
                                       "access": "rw"},
                                      {"allow": False, "type": "c", "major": 1, "minor": 9,
                                       "access": "w"}]},
            "devices": [{"type": "b", "path": "/dev/loop9", "major": 7, "minor": 9}]}


def test_device_rules_v1_order() -> None:
    lines = devices.render_v1(devices.rules(DENY_ALL))
    assert lines[:3] == [("devices.deny", "a"), ("devices.deny", "a *:* rwm"),
                         ("devices.allow", "c 10:229 rw")]
    assert ("devices.allow", "c 1:3 rwm") in lines and ("devices.allow", "c 136:* rwm") in lines
    assert lines[-1] == ("devices.allow", "b 7:9 rwm")


@pytest.mark.parametrize(("dev", "access", "allowed"), [
    (("c", 1, 3), "rw", True),       # /dev/null, default
    (("c", 1, 11), "w", False),      # /dev/kmsg, denied by the first rule
    (("c", 10, 229), "rw", True),    # /dev/fuse, allowed rw
    (("c", 10, 229), "m", True),     # mknod of any char device is a default
    (("b", 8, 0), "r", False),
    (("b", 8, 0), "m", True),
    (("b", 7, 9), "rw", True),       # linux.devices entry
    (("c", 1, 9), "r", True),        # urandom read: default allows, later deny is write only
    (("c", 136, 4), "rw", True),     # pts
])
def test_device_program_verdicts(dev: tuple[str, int, int], access: str, allowed: bool) -> None:
    rule_list = devices.rules(DENY_ALL)
    prog = devices.program(rule_list)
    assert devices.evaluate(prog, *dev, access) is allowed
    assert len(devices.encode(prog)) == 8 * len(prog)


def test_device_program_later_deny_wins() -> None:
    rule_list = [devices.parse_rule({"allow": True, "access": "rwm"}, "x"),
                 devices.parse_rule({"allow": False, "type": "c", "major": 1, "minor": 3,
                                     "access": "w"}, "y")]
    prog = devices.program(rule_list)
    assert devices.evaluate(prog, "c", 1, 3, "r") is True
    assert devices.evaluate(prog, "c", 1, 3, "rw") is False
    assert devices.evaluate(prog, "b", 8, 0, "rwm") is True


def test_device_rule_validation() -> None:
    with pytest.raises(SpecError, match=r"linux.resources.devices\[0\].access"):
        devices.rules({"resources": {"devices": [{"allow": True, "access": "rx"}]}})
    with pytest.raises(SpecError, match=r"devices\[0\].allow"):
        devices.rules({"resources": {"devices": [{"access": "r"}]}})


def test_state_round_trip() -> None:
    lay = layout.build(HYBRID_MOUNTINFO, SELF)
    m = cgroups.manager_for(lay, "c1", {"resources": {"memory": {"limit": 4096}}, **DENY_ALL})
    saved = json.loads(json.dumps(m.to_state()))
    m2 = cgroups.from_state(saved)
    assert m2.paths() == m.paths() and m2.rules == m.rules and m2.resources == m.resources
    with pytest.raises(CgroupError, match="malformed"):
        cgroups.from_state({"mode": "v1"})


# ---- update flags -------------------------------------------------------------------------------

def test_update_flags() -> None:
    from pyrunc.ops.update import resources_from_flags

    res = resources_from_flags({"memory": "512m", "memory-swap": "-1", "memory-reservation": "1g",
                                "kernel-memory": "5M", "cpu-shares": "256", "cpu-quota": "-1",
                                "cpu-period": "100000", "cpuset-cpus": "0", "pids-limit": "7",
                                "blkio-weight": "500", "cpu-rt-runtime": "10"})
    assert res["memory"] == {"limit": 512 << 20, "swap": -1, "reservation": 1 << 30,
                             "kernel": 5 << 20}
    assert res["cpu"] == {"shares": 256, "quota": -1, "period": 100000, "cpus": "0",
                          "realtimeRuntime": 10}
    assert res["pids"] == {"limit": 7} and res["blockIO"] == {"weight": 500}
    with pytest.raises(SpecError, match="--memory"):
        resources_from_flags({"memory": "12q"})


def test_load_resources_docker_zeros_mean_unset() -> None:
    from pyrunc.ops.update import load_resources

    doc = {"memory": {"limit": 0, "reservation": 0, "swap": 0}, "cpu": {"shares": 512, "quota": 0},
           "blockIO": {"weight": 0}, "pids": {"limit": 0}}
    assert load_resources("-", io.StringIO(json.dumps(doc))) == {"cpu": {"shares": 512}}
    with pytest.raises(SpecError, match="resources"):
        load_resources("-", io.StringIO("{nope"))
