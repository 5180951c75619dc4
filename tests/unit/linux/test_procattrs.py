"""procattrs.check and the pure helpers: runc's rules, errors naming the field."""

from __future__ import annotations

import ctypes

import pytest

from pyrunc.errors import SpecError
from pyrunc.linux import procattrs


def test_parse_list() -> None:
    assert procattrs.parse_list("0-3,7", "x") == {0, 1, 2, 3, 7}
    assert procattrs.parse_list("5", "x") == {5}


@pytest.mark.parametrize("bad", ["", "a", "3-1", "1-", "-1", "1,,2", "0-70000"])
def test_parse_list_refuses(bad: str) -> None:
    with pytest.raises(SpecError, match="process.execCPUAffinity.final"):
        procattrs.check({"execCPUAffinity": {"final": bad or ","}}, {})


@pytest.mark.parametrize("process, linux", [
    ({"scheduler": {"policy": "SCHED_FIFO", "priority": 10, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}}, {}),
    ({"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 20, "period": 30}}, {}),
    ({"scheduler": {"policy": "SCHED_OTHER", "nice": -20}}, {}),
    ({"ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 7}}, {}),
    ({"execCPUAffinity": {"initial": "0", "final": "0-1"}}, {}),
    ({}, {"personality": {"domain": "LINUX32", "flags": []}}),
    ({}, {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}}),
    ({}, {"memoryPolicy": {"mode": "MPOL_LOCAL"}}),
    ({}, {"memoryPolicy": {"mode": "MPOL_PREFERRED"}}),
])
def test_valid(process: dict, linux: dict) -> None:  # type: ignore[type-arg]
    procattrs.check(process, linux)


@pytest.mark.parametrize("process, linux, match", [
    ({"scheduler": {"policy": "SCHED_NOPE"}}, {}, "process.scheduler.policy"),
    ({"scheduler": {}}, {}, "process.scheduler.policy"),
    ({"scheduler": {"policy": "SCHED_OTHER", "nice": 20}}, {}, "process.scheduler.nice"),
    ({"scheduler": {"policy": "SCHED_OTHER", "priority": 1}}, {},
     "priority: can only be specified for SCHED_FIFO or SCHED_RR"),
    ({"scheduler": {"policy": "SCHED_RR", "runtime": 1}}, {}, "runtime: can only be specified"),
    ({"scheduler": {"policy": "SCHED_RR", "flags": ["X"]}}, {}, r"scheduler.flags\[0\]"),
    ({"ioPriority": {"class": "IOPRIO_CLASS_NONE", "priority": 0}}, {}, "ioPriority.class"),
    ({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}}, {}, "ioPriority.priority"),
    ({"ioPriority": {"class": "IOPRIO_CLASS_BE"}}, {}, "ioPriority.priority"),
    ({}, {"personality": {"domain": "LINUX64"}}, "linux.personality.domain"),
    ({}, {"personality": {}}, "linux.personality.domain"),
    ({}, {"memoryPolicy": {"mode": "MPOL_X"}}, "linux.memoryPolicy.mode"),
    ({}, {"memoryPolicy": {"mode": "MPOL_BIND"}}, "MPOL_BIND needs at least one node"),
    ({}, {"memoryPolicy": {"mode": "MPOL_DEFAULT", "nodes": "0"}}, "MPOL_DEFAULT takes no nodes"),
    ({}, {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "x"}}, "linux.memoryPolicy.nodes"),
    ({}, {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0", "flags": ["F"]}},
     r"memoryPolicy.flags\[0\]"),
    ({"scheduler": "fifo"}, {}, "process.scheduler: must be an object"),
])
def test_invalid_names_the_field(process: dict, linux: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(SpecError, match=match):
        procattrs.check(process, linux)


def test_sched_attr_layout() -> None:
    attr = procattrs.sched_attr({"policy": "SCHED_DEADLINE", "runtime": 1, "deadline": 2,
                                 "period": 3, "flags": ["SCHED_FLAG_RECLAIM"]})
    assert ctypes.sizeof(attr) == 56  # SCHED_ATTR_SIZE_VER1
    assert (attr.size, attr.sched_policy, attr.sched_flags) == (56, 6, 2)
    assert (attr.sched_runtime, attr.sched_deadline, attr.sched_period) == (1, 2, 3)


def test_nodemask() -> None:
    from pyrunc.sys import calls

    mask, maxnode = calls.nodemask({0, 3, 64})
    assert list(mask) == [0b1001, 1] and maxnode == 129


def test_no_affinity_for_the_init() -> None:
    steps = procattrs._steps({"execCPUAffinity": {"final": "0"}}, {}, exec_process=False)
    assert steps == []
    steps = procattrs._steps({"execCPUAffinity": {"final": "0"}}, {}, exec_process=True)
    assert [s[0] for s in steps] == ["process.execCPUAffinity.final"]
