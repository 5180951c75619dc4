"""The Stats call's io.containerd.cgroups.v2.Metrics of a real cgroup2 directory.

This host is cgroup v1 hybrid: a v2 container with controllers cannot run here, and containerd
with our shim picks v1 Metrics for every container (tests/integration/shim/test_shim_ctr.py). What
the cgroup2 mount (/sys/fs/cgroup/unified) does give a cgroup is the core part of cpu.stat, so this
test places a process that burns CPU in a cgroup there, through a Manager on a cgroup2-only layout
of that mount (as tests/integration/linux/test_cgroups_manager.py does), and asks for the Stats
Any as the shim does: from the Manager that the container's state gives back (from_state). The
mount's one controller, hugetlb, is not enabled below its root; enabling it would mean writing the
host's root cgroup.subtree_control, which tests do not do. The other figures are checked from a
directory of cgroup2-shaped files in tests/unit/shim/test_metrics_v2.py.
"""

from __future__ import annotations

import os
import subprocess  # noqa: TID251  (tests start real processes)
import uuid
from collections.abc import Iterator

import pytest

from pyrunc.linux import cgroups
from pyrunc.linux.cgroups.layout import Layout, detect
from pyrunc.shim import messages as m
from pyrunc.shim import metrics, wire

pytestmark = pytest.mark.requires("root", "cgroup-v2")


@pytest.fixture
def v2_cgroup(parent: str) -> Iterator[cgroups.Manager]:
    unified = detect().unified
    if not unified:
        pytest.skip("needs a cgroup2 mount")
    lay = Layout(mode="v2", unified=unified, own={"": "/"})
    cid = "mv-" + uuid.uuid4().hex[:8]
    mgr = cgroups.manager_for(lay, cid, {"cgroupsPath": f"/{parent}/{cid}"})
    mgr.create()
    yield mgr
    mgr.kill_all()
    mgr.destroy()


def _cpu_stat(cg: cgroups.Manager) -> dict[str, int]:
    with open(os.path.join(cg.paths()[""], "cpu.stat")) as f:
        return {k: int(v) for k, v in (line.split() for line in f)}


def test_metrics_of_a_real_cgroup2_directory(v2_cgroup: cgroups.Manager) -> None:
    burn = "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; echo burnt; exec sleep 60"
    p = subprocess.Popen(["sh", "-c", burn], preexec_fn=lambda: v2_cgroup.apply(os.getpid()),
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline() == "burnt\n"
        saved = cgroups.from_state(v2_cgroup.to_state())
        # the shell may still be exec'ing sleep: the Metrics lie between two readings of cpu.stat
        before = _cpu_stat(v2_cgroup)
        stats = metrics.stats_any(saved)
        after = _cpu_stat(v2_cgroup)
    finally:
        p.kill()
        p.wait()
    assert stats["type_url"] == "io.containerd.cgroups.v2.Metrics"
    value = stats["value"]
    assert isinstance(value, bytes)
    msg = wire.decode(m.METRICS_V2, value)
    cpu = wire.sub(msg, "cpu")
    assert wire.num(cpu, "usage_usec") > 0
    for key in ("usage_usec", "user_usec", "system_usec"):
        assert before[key] <= wire.num(cpu, key) <= after[key], key
    # no pids, memory, io or hugetlb controller in this cgroup: empty, as containerd's Stat() has them
    assert msg["pids"] == {} and msg["io"] == {} and "hugetlb" not in msg
    assert "memory_events" not in msg
