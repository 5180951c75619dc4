"""Real-time budgets on cgroup v1 with real-time group scheduling (CONFIG_RT_GROUP_SCHED).

There, a task may switch to SCHED_FIFO or SCHED_RR only in a cpu cgroup whose
`cpu.rt_runtime_us` is above 0, and the kernel takes a budget only if at every level the
children's budgets, as runtime/period ratios (`to_ratio`, kernel/sched), fit in their parent's
(EINVAL otherwise). A new cgroup has a runtime of 0, so `realtimeRuntime` for a container under
a new `/pyrunc/<id>` can never apply until each ancestor has room for it. runc 1.1.5 leaves that
to its caller (dockerd writes its `--cpu-rt-runtime` into every parent; runc's own tests copy
the root's values down); pyrunc grows each ancestor that is short by what is missing, top-down
(a parent must have room before its child grows), never the hierarchy's root (the host's
`kernel.sched_rt_runtime_us`), and gives back what it added when the container is deleted.

`plan` and `release_plan` are pure: they read the tree through the functions they are given.
"""

from __future__ import annotations

from pyrunc._typing import MYPY
from pyrunc.records import dataclass

if MYPY:
    from collections.abc import Callable, Mapping

    Budget = Callable[[str], tuple[int, int]]   # cgroup dir -> (rt period, rt runtime) in us
    Children = Callable[[str], list[str]]       # cgroup dir -> its child cgroup dirs
    IsTop = Callable[[str], bool]               # the hierarchy's root: never changed

BW_SHIFT = 20  # kernel/sched/sched.h
RUNTIME_INF = -1


def to_ratio(period: int, runtime: int) -> int:
    """The kernel's to_ratio(): the share of the CPU a budget is, in 1/2^20 units."""
    if runtime == RUNTIME_INF:
        return 1 << BW_SHIFT
    if period <= 0:
        return 0
    return (runtime << BW_SHIFT) // period


def runtime_for(ratio: int, period: int) -> int:
    """The smallest runtime per `period` whose to_ratio() is at least `ratio`."""
    return -(-(ratio * period) >> BW_SHIFT)


@dataclass(frozen=True)
class Grant:
    """Write `runtime` to `path`/cpu.rt_runtime_us; `added` is what delete gives back."""

    path: str
    runtime: int
    added: int


def plan(leaf: str, period: int, runtime: int, budget: Budget, children: Children,
         is_top: IsTop) -> list[Grant]:
    """The ancestors of `leaf` to grow, top-down, for `leaf` to take `runtime` per `period`."""
    if runtime <= 0:
        return []
    grants: list[Grant] = []
    need, child, node = to_ratio(period, runtime), leaf, _parent(leaf)
    while node and not is_top(node):
        node_period, node_runtime = budget(node)
        total = need + sum(to_ratio(*budget(c)) for c in children(node) if c != child)
        if to_ratio(node_period, node_runtime) >= total:
            break
        new = runtime_for(total, node_period)
        grants.append(Grant(node, new, new - max(node_runtime, 0)))
        need, child, node = to_ratio(node_period, new), node, _parent(node)
    return grants[::-1]


def release_plan(added: Mapping[str, int], budget: Budget,
                 children: Children) -> list[tuple[str, int]]:
    """(ancestor, runtime) to write, deepest first, giving back what `plan` added to each,
    never below what its remaining children need."""
    out: dict[str, int] = {}

    def after(path: str) -> tuple[int, int]:  # the budget once the deeper writes are made
        period, runtime = budget(path)
        return period, out.get(path, runtime)

    for path in sorted(added, key=lambda p: p.count("/"), reverse=True):
        try:
            period, runtime = budget(path)
            floor = runtime_for(sum(to_ratio(*after(c)) for c in children(path)), period)
        except OSError:
            continue  # removed meanwhile: nothing to give back
        new = max(runtime - added[path], floor, 0)
        if runtime != RUNTIME_INF and new < runtime:
            out[path] = new
    return list(out.items())


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0]
