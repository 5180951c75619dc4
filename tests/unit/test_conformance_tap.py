"""TAP counting as runtime-tools' validation programs need it (conformance/tap.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from conformance import tap  # noqa: E402


def counts(text: str, rc: int | None = 0, timed_out: bool = False) -> tuple[int, int, int]:
    r = tap.finish(tap.parse(text), rc, timed_out)
    return r.passed, r.failed, r.skipped


def test_counts_only_column_zero_results_and_skips() -> None:
    text = ("TAP version 13\n"
            "ok 1 - root is readonly\n"
            "not ok 2 - hostname is set\n"
            "  ok 3 - indented, part of a diagnostic\n"
            "ok 3 - apparmor # SKIP no AppArmor\n"
            "ok 4 - todo # TODO later\n"
            "okay this is not a result\n"
            "1..4\n")
    assert counts(text) == (1, 1, 2)


def test_yaml_error_without_result_is_a_failure() -> None:
    text = "  ---\n  error: hook did not run\n  reference: x\n  ...\n"
    r = tap.finish(tap.parse(text), 0)
    assert (r.passed, r.failed) == (0, 1)
    assert r.cases[0].description == "error: hook did not run"


def test_yaml_error_after_not_ok_is_not_counted_twice() -> None:
    text = "not ok 1 - x\n  ---\n  error: boom\n  ...\nok 2 - y\n  ---\n  error: late\n  ...\n1..2\n"
    assert counts(text) == (1, 2, 0)


def test_yaml_without_error_key_or_nested_error_is_not_a_failure() -> None:
    text = "ok 1 - a\n  ---\n  actual: 1\n  detail:\n    error: nested\n  ...\n1..1\n"
    assert counts(text) == (1, 0, 0)


def test_two_plans_are_summed_and_missing_results_fail() -> None:
    text = "ok 1 - a\n1..1\nok 1 - b\nok 2 - c\n1..4\n"
    assert counts(text) == (3, 2, 0)


def test_nonzero_exit_adds_a_failure() -> None:
    assert counts("ok 1 - a\n1..1\n", rc=1) == (1, 1, 0)


def test_timeout_adds_a_failure_not_an_exit_status() -> None:
    r = tap.finish(tap.parse("ok 1 - a\n"), None, timed_out=True)
    assert (r.passed, r.failed) == (1, 1)
    assert r.cases[-1].description == "timed out"


def test_silent_success_is_one_pass() -> None:
    assert counts("", rc=0) == (1, 0, 0)
    assert counts("", rc=2) == (0, 1, 0)
