"""rt.plan / rt.release_plan: the real-time budgets ancestors need, on a tree held in a dict."""

from __future__ import annotations

from pyrunc.linux.cgroups import rt

MS = 1000


def tree(budgets: dict[str, tuple[int, int]]):  # type: ignore[no-untyped-def]
    def budget(path: str) -> tuple[int, int]:
        return budgets[path]

    def children(path: str) -> list[str]:
        return [p for p in budgets if p.rsplit("/", 1)[0] == path]

    def is_top(path: str) -> bool:
        return path == "/cg"

    return budget, children, is_top


def test_new_parents_grow_top_down_by_what_the_leaf_needs() -> None:
    budgets = {"/cg": (1000 * MS, 950 * MS), "/cg/p": (1000 * MS, 0), "/cg/p/q": (1000 * MS, 0),
               "/cg/p/q/leaf": (1000 * MS, 0)}
    grants = rt.plan("/cg/p/q/leaf", 100 * MS, 10 * MS, *tree(budgets))
    assert [(g.path, g.runtime, g.added) for g in grants] == [
        ("/cg/p", 100 * MS, 100 * MS), ("/cg/p/q", 100 * MS, 100 * MS)]


def test_siblings_count_and_a_parent_with_room_stops_the_walk() -> None:
    budgets = {"/cg": (1000 * MS, 950 * MS), "/cg/p": (1000 * MS, 500 * MS),
               "/cg/p/q": (1000 * MS, 100 * MS), "/cg/p/q/other": (50 * MS, 5 * MS),
               "/cg/p/q/leaf": (1000 * MS, 0)}
    grants = rt.plan("/cg/p/q/leaf", 100 * MS, 20 * MS, *tree(budgets))
    # q needs 10% (other) + 20% (leaf) = 30%; p has 50% for q: untouched
    assert [(g.path, g.runtime, g.added) for g in grants] == [("/cg/p/q", 300 * MS, 200 * MS)]


def test_enough_budget_or_no_runtime_plans_nothing() -> None:
    budgets = {"/cg": (1000 * MS, 950 * MS), "/cg/p": (1000 * MS, 100 * MS),
               "/cg/p/leaf": (1000 * MS, 0)}
    assert rt.plan("/cg/p/leaf", 100 * MS, 10 * MS, *tree(budgets)) == []
    assert rt.plan("/cg/p/leaf", 100 * MS, 0, *tree(budgets)) == []
    assert rt.plan("/cg/p/leaf", 100 * MS, -1, *tree(budgets)) == []


def test_the_kernels_rounding_is_met() -> None:
    for period, runtime in ((1000 * MS, 333_333), (999_999, 1), (100_001, 50_001)):
        ratio = rt.to_ratio(period, runtime)
        for parent_period in (1000 * MS, 300_007):
            need = rt.runtime_for(ratio, parent_period)
            assert rt.to_ratio(parent_period, need) >= ratio
            assert rt.to_ratio(parent_period, need - 1) < ratio


def test_release_gives_back_what_was_added_but_keeps_what_children_need() -> None:
    budgets = {"/cg": (1000 * MS, 950 * MS), "/cg/p": (1000 * MS, 300 * MS),
               "/cg/p/q": (1000 * MS, 300 * MS), "/cg/p/q/other": (100 * MS, 10 * MS)}
    budget, children, _ = tree(budgets)
    # the leaf (gone) had 20%; q had been grown by 200 ms and p by 300 ms
    out = rt.release_plan({"/cg/p": 300 * MS, "/cg/p/q": 200 * MS}, budget, children)
    assert out == [("/cg/p/q", 100 * MS), ("/cg/p", 100 * MS)]  # deepest first; other's 10% kept
