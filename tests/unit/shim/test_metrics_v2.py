"""The Stats call's io.containerd.cgroups.v2.Metrics, made from a directory of cgroup2 files.

This host is cgroup v1 hybrid: its cgroup2 mount offers only hugetlb, so no cgroup here has the
memory, pids, io or rdma files of a v2 container. These tests therefore read a plain directory
written with the files and formats of a cgroup2 directory (kernel 6.x: cpu.stat, memory.stat, ...),
which checks every figure's path from file to field; tests/integration/shim/test_shim_metrics_v2.py
reads a real cgroup2 directory for what this host's mount does offer (cpu.stat).

The expected values of FILES were checked once against containerd/cgroups' own v2 Manager.Stat()
(Debian's golang-github-containerd-cgroups-dev 1.0.4, built with Go 1.23): same message, byte for
byte, up to the order of the hugetlb entries (Go's map order).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_wire import pb  # noqa: F401  (the protoc-generated classes, a module fixture)

from pyrunc.linux import cgroups
from pyrunc.linux.cgroups import stats
from pyrunc.linux.cgroups.layout import Layout
from pyrunc.shim import messages as m
from pyrunc.shim import metrics, wire

U64_MAX = (1 << 64) - 1
FILES = {
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
    "cpu.stat": "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n"
                "core_sched.force_idle_usec 0\nnr_periods 10\nnr_throttled 3\nthrottled_usec 4567\n"
                "nr_bursts 0\nburst_usec 0\n",
    "memory.stat": "anon 1000\nfile 2000\nkernel 3000\nkernel_stack 16384\npagetables 4096\n"
                   "sock 5\nshmem 6\nfile_mapped 7\nfile_dirty 8\nfile_writeback 9\nanon_thp 10\n"
                   "inactive_anon 11\nactive_anon 12\ninactive_file 13\nactive_file 14\n"
                   "unevictable 15\nslab_reclaimable 16\nslab_unreclaimable 17\nslab 33\n"
                   "workingset_refault_anon 1\nworkingset_refault_file 2\n"
                   "workingset_activate_anon 3\nworkingset_nodereclaim 22\npgfault 18\n"
                   "pgmajfault 19\npgrefill 23\npgscan 24\npgsteal 25\npgactivate 26\n"
                   "pgdeactivate 27\npglazyfree 28\npglazyfreed 29\nthp_fault_alloc 30\n"
                   "thp_collapse_alloc 31\n",
    "memory.current": "8192\n", "memory.max": "max\n", "memory.peak": "9000\n",
    "memory.swap.current": "4096\n", "memory.swap.max": "1048576\n",
    "memory.events": "low 1\nhigh 2\nmax 3\noom 4\noom_kill 5\noom_group_kill 0\n",
    "pids.current": "3\n", "pids.max": "max\n",
    "io.stat": "8:0 rbytes=512 wbytes=1024 rios=2 wios=4 dbytes=0 dios=0\n"
               "253:1 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
    "hugetlb.2MB.current": "2097152\n", "hugetlb.2MB.max": "max\n", "hugetlb.2MB.events": "max 1\n",
    "hugetlb.2MB.rsvd.current": "0\n", "hugetlb.2MB.rsvd.max": "max\n",
    "hugetlb.1GB.current": "0\n", "hugetlb.1GB.max": "0\n", "hugetlb.1GB.events": "max 0\n",
    "rdma.current": "mlx4_0 hca_handle=2 hca_object=2000\n",
    "rdma.max": "mlx4_0 hca_handle=2 hca_object=max\n",
}
# wire.decode of the Metrics of FILES (fields at 0 are absent, as proto3 leaves them off the wire)
EXPECTED = {
    "pids": {"current": 3, "limit": U64_MAX},
    "cpu": {"usage_usec": 1234567, "user_usec": 1000000, "system_usec": 234567,
            "nr_periods": 10, "nr_throttled": 3, "throttled_usec": 4567},
    # memory.stat's keys by name: workingset_refault and _activate, split into _anon and _file
    # since Linux 5.9, are not in it and stay 0, as in containerd/cgroups' Stat()
    "memory": {"anon": 1000, "file": 2000, "kernel_stack": 16384, "slab": 33, "sock": 5,
               "shmem": 6, "file_mapped": 7, "file_dirty": 8, "file_writeback": 9, "anon_thp": 10,
               "inactive_anon": 11, "active_anon": 12, "inactive_file": 13, "active_file": 14,
               "unevictable": 15, "slab_reclaimable": 16, "slab_unreclaimable": 17, "pgfault": 18,
               "pgmajfault": 19, "workingset_nodereclaim": 22, "pgrefill": 23, "pgscan": 24,
               "pgsteal": 25, "pgactivate": 26, "pgdeactivate": 27, "pglazyfree": 28,
               "pglazyfreed": 29, "thp_fault_alloc": 30, "thp_collapse_alloc": 31,
               "usage": 8192, "usage_limit": U64_MAX, "swap_usage": 4096, "swap_limit": 1048576},
    "rdma": {"current": [{"device": "mlx4_0", "hca_handles": 2, "hca_objects": 2000}],
             "limit": [{"device": "mlx4_0", "hca_handles": 2, "hca_objects": (1 << 32) - 1}]},
    "io": {"usage": [{"major": 8, "rbytes": 512, "wbytes": 1024, "rios": 2, "wios": 4},
                     {"major": 253, "minor": 1, "rbytes": 4096, "rios": 1}]},
    "hugetlb": [{"pagesize": "1GB"}, {"current": 2 << 20, "max": U64_MAX, "pagesize": "2MB"}],
    "memory_events": {"low": 1, "high": 2, "max": 3, "oom": 4, "oom_kill": 5},
}


def cgroup2_dir(path: Path, files: dict[str, str] = FILES) -> Path:
    """A directory shaped like a v2 container's cgroup (see the module's docstring)."""
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_metrics_from_a_cgroup2_directory(tmp_path: Path) -> None:
    data = wire.encode(m.METRICS_V2, metrics.from_v2(stats.read_v2(str(cgroup2_dir(tmp_path)))))
    assert wire.decode(m.METRICS_V2, data) == EXPECTED


def test_containerd_reads_the_same_figures(tmp_path: Path,
                                           pb: dict[str, type]) -> None:  # noqa: F811
    """What containerd's generated code (here protoc's Python classes) decodes from our bytes."""
    data = wire.encode(m.METRICS_V2, metrics.from_v2(stats.read_v2(str(cgroup2_dir(tmp_path)))))
    got = pb["io.containerd.cgroups.v2.Metrics"].FromString(data)  # type: ignore[attr-defined]
    assert (got.cpu.usage_usec, got.cpu.throttled_usec) == (1234567, 4567)
    assert (got.memory.usage, got.memory.usage_limit, got.memory.swap_limit) == (
        8192, U64_MAX, 1048576)
    assert (got.memory.anon, got.memory.thp_collapse_alloc) == (1000, 31)
    assert (got.pids.current, got.pids.limit) == (3, U64_MAX)
    assert [(e.major, e.minor, e.rbytes, e.wios) for e in got.io.usage] == [
        (8, 0, 512, 4), (253, 1, 4096, 0)]
    assert [(h.pagesize, h.current, h.max) for h in got.hugetlb] == [
        ("1GB", 0, 0), ("2MB", 2 << 20, U64_MAX)]
    assert got.memory_events.oom_kill == 5
    assert got.rdma.limit[0].hca_objects == (1 << 32) - 1


def test_events_stats_reads_the_same_files(tmp_path: Path) -> None:
    """`events --stats` on v2 (runc's shape) comes from the same read_v2 as the Metrics."""
    data = stats.collect({"": str(cgroup2_dir(tmp_path))}, v2=True)
    assert data["cpu"] == {"usage": {"total": 1234567000, "kernel": 234567000, "user": 1000000000},
                           "throttling": {"periods": 10, "throttled_periods": 3,
                                          "throttled_time": 4567000}}
    assert data["memory"]["usage"] == {"limit": U64_MAX, "usage": 8192, "max": 9000, "failcnt": 3}
    assert data["memory"]["swap"] == {"limit": 1048576, "usage": 4096, "failcnt": 0}
    assert data["memory"]["cache"] == 2000
    assert data["pids"] == {"current": 3}  # runc leaves out pids.max's "max"
    assert data["hugetlb"] == {"1GB": {"failcnt": 0}, "2MB": {"usage": 2 << 20, "failcnt": 1}}
    assert data["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 512},
        {"major": 8, "minor": 0, "op": "Write", "value": 1024},
        {"major": 253, "minor": 1, "op": "Read", "value": 4096},
        {"major": 253, "minor": 1, "op": "Write"}]
    assert stats.oom_count({"": str(tmp_path)}, v2=True) == 5


def test_a_cgroup_that_is_gone_reads_as_zeros(tmp_path: Path) -> None:
    """As containerd's Stat() on an empty cgroup: the always-set messages are empty, no events."""
    data = metrics.from_v2(stats.read_v2(str(tmp_path / "gone")))
    assert wire.decode(m.METRICS_V2, wire.encode(m.METRICS_V2, data)) == {
        "pids": {}, "cpu": {}, "memory": {}, "rdma": {}, "io": {}}
    assert stats.collect({"": str(tmp_path / "gone")}, v2=True)["hugetlb"] == {}


def test_odd_lines_are_skipped(tmp_path: Path) -> None:
    files = {"io.stat": "\n  \nnodev rbytes=1\n8:16 rbytes=7 junk\n", "rdma.current": "mlx4_0\n"}
    data = metrics.from_v2(stats.read_v2(str(cgroup2_dir(tmp_path, files))))
    assert data["io"] == {"usage": [{"major": 8, "minor": 16, "rbytes": 7, "wbytes": 0,
                                     "rios": 0, "wios": 0}]}
    assert data["rdma"] == {"current": [], "limit": []}


@pytest.mark.parametrize(("mode", "type_url"), [("v2", m.METRICS_V2_TYPE_URL),
                                                ("hybrid", m.METRICS_TYPE_URL)])
def test_the_host_mode_in_the_state_picks_the_message(tmp_path: Path, mode: str,
                                                      type_url: str) -> None:
    """The mode saved with the container's state decides, as the shim loads it (from_state)."""
    unified = cgroup2_dir(tmp_path / "unified" / "mv-c1")
    (tmp_path / "unified" / "cgroup.controllers").write_text(FILES["cgroup.controllers"])
    pids_v1 = tmp_path / "pids"
    (pids_v1 / "mv-c1").mkdir(parents=True)
    (pids_v1 / "mv-c1" / "pids.current").write_text("9\n")
    v1 = {"pids": str(pids_v1)} if mode == "hybrid" else {}
    lay = Layout(mode=mode, v1=v1, unified=str(tmp_path / "unified"), own={"": "/"})
    mgr = cgroups.from_state(cgroups.manager_for(lay, "mv-c1", {"cgroupsPath": "/mv-c1"})
                             .to_state())
    assert mgr.paths()[""] == str(unified)
    any_msg = metrics.stats_any(mgr)
    assert any_msg["type_url"] == type_url
    value = any_msg["value"]
    assert isinstance(value, bytes)
    if mode == "v2":
        assert wire.decode(m.METRICS_V2, value) == EXPECTED
    else:
        assert wire.sub(wire.decode(m.METRICS, value), "pids") == {"current": 9}
