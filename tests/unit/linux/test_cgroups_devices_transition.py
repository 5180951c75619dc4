"""devices.emulate / parse_list / transition: v1 device rules applied to a cgroup with tasks."""

from __future__ import annotations

from pyrunc.linux.cgroups import devices
from pyrunc.linux.cgroups.devices import WILDCARD as W
from pyrunc.linux.cgroups.devices import Rule

DENY_ALL = Rule(False, "a", W, W, "rwm")
ALLOW_ALL = Rule(True, "a", W, W, "rwm")


def test_emulate_follows_the_kernels_exact_match_rules() -> None:
    state = devices.emulate([DENY_ALL, Rule(True, "c", 1, 3, "rw"), Rule(True, "c", 1, 3, "m"),
                             Rule(False, "c", 1, 3, "w"), Rule(True, "c", 5, 0, "r"),
                             Rule(False, "c", 5, 0, "r"), Rule(False, "c", W, W, "rwm")])
    # deny c *:* matches no exception exactly, so it changes nothing
    assert state == devices.V1State(False, {("c", 1, 3): "rm"})
    assert devices.emulate([DENY_ALL, Rule(True, "c", 1, 3, "r"), ALLOW_ALL,
                            Rule(False, "c", 1, 11, "rwm")]) == devices.V1State(
        True, {("c", 1, 11): "rwm"})


def test_parse_list() -> None:
    assert devices.parse_list("a *:* rwm\n") == devices.V1State(True, {})
    assert devices.parse_list("c 1:3 rwm\nc *:* m\nb 8:* r\n") == devices.V1State(
        False, {("c", 1, 3): "rwm", ("c", W, W): "m", ("b", 8, W): "r"})


def test_the_same_rules_again_write_nothing() -> None:
    rules = [DENY_ALL, *devices.DEFAULT_RULES]
    current = devices.parse_list("".join(f"{r.v1()[1]}\n" for r in devices.DEFAULT_RULES))
    assert devices.transition(current, devices.emulate(rules)) == ([], False)


def test_allow_lists_change_by_difference_taking_away_first() -> None:
    current = devices.parse_list("c 1:3 rwm\nc 5:0 rwm\n")
    target = devices.emulate([DENY_ALL, Rule(True, "c", 1, 3, "r"), Rule(True, "c", 1, 5, "rwm")])
    assert devices.transition(current, target) == ([
        ("devices.deny", "c 1:3 wm"), ("devices.deny", "c 5:0 rwm"),
        ("devices.allow", "c 1:5 rwm")], False)


def test_deny_lists_never_pass_through_allowing_everything() -> None:
    target = devices.emulate([ALLOW_ALL, Rule(False, "c", 1, 11, "rwm")])
    writes, opens = devices.transition(devices.parse_list("a *:* rwm\n"), target)
    assert (writes, opens) == ([("devices.deny", "c 1:11 rwm")], False)
    # from an allow list, everything must be allowed first: the caller is told to freeze
    writes, opens = devices.transition(devices.parse_list("c 1:3 rwm\n"), target)
    assert (writes, opens) == ([("devices.allow", "a"), ("devices.deny", "c 1:11 rwm")], True)
