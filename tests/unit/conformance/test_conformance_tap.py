"""TAP counting as runtime-tools' validation programs need it (conformance/tap.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from conformance import tap  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "runtime-tools"


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


@pytest.mark.parametrize("text,description", [
    ("  ---\n  error: hook did not run\n  reference: x\n  ...\n", "error: hook did not run"),
    # not valid JSON (a trailing comma, as linux_rootfs_propagation prints): the key is still found
    ('  ---\n  {\n    "error": "exit status 1",\n    "stderr": "",\n  }\n  ...\n1..0\n',
     "error: exit status 1"),
], ids=["yaml", "json-cut-short"])
def test_error_block_without_result_is_a_failure(text: str, description: str) -> None:
    r = tap.finish(tap.parse(text), 0)
    assert (r.passed, r.failed) == (0, 1)
    assert r.cases[0].description == description


def test_block_after_a_result_is_its_diagnostic_and_never_counts() -> None:
    # `ok 2` carries the error it expected; `not ok 1` is not counted twice
    text = "not ok 1 - x\n  ---\n  error: boom\n  ...\nok 2 - y\n  ---\n  error: late\n  ...\n1..2\n"
    assert counts(text) == (1, 1, 0)


def test_free_standing_block_after_another_block_counts() -> None:
    # what `state` prints when the state is invalid: no result line for the case
    text = ('ok 1 - a\n  ---\n  {\n    "reference": "r"\n  }\n  ...\n'
            '  ---\n  {\n    "error": "bad state",\n    "reference": "r"\n  }\n  ...\n1..1\n')
    assert counts(text) == (1, 1, 0)


def test_yaml_without_error_key_or_nested_error_is_not_a_failure() -> None:
    text = "  ---\n  actual: 1\n  detail:\n    error: nested\n  ...\nok 1 - a\n1..1\n"
    assert counts(text) == (1, 0, 0)
    text = '  ---\n  {\n    "detail": {\n      "error": "nested"\n    }\n  }\n  ...\nok 1 - a\n1..1\n'
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


# -- real outputs of the suite (tests/unit/conformance/data/runtime-tools/README.md) ----------------------


def real(name: str) -> tap.TapResult:
    """A captured program output, counted with the exit status 0 it had."""
    return tap.finish(tap.parse((DATA / f"{name}.tap").read_text()), 0)


def test_real_hooks_quoted_error_key_then_empty_plan_fails() -> None:
    # `{"error": "exit status 1", "stderr": ...}` then `1..0`: the hooks never ran
    r = real("hooks.pyrunc")
    assert (r.passed, r.failed, r.skipped) == (0, 1, 0)
    assert r.cases[0].description == ("error: exit status 1 (stderr: container init failed at step "
                                      "ready: close_range: Operation not permitted)")


def test_real_hooks_spec_error_shows_its_first_line() -> None:
    r = real("hooks.runc")
    assert (r.passed, r.failed) == (0, 1)
    assert r.cases[0].description == "error: Hooks MUST be called in the listed order"


def test_real_empty_plan_without_block_is_one_pass() -> None:
    r = real("poststop.runc")
    assert (r.passed, r.failed, r.skipped) == (1, 0, 0)


def test_real_all_ok_run() -> None:
    r = real("linux_ns_path_type.runc")
    assert (r.passed, r.failed, r.skipped, r.planned) == (14, 0, 0, 14)


def test_real_all_ok_run_whose_diagnostics_carry_expected_errors() -> None:
    # `ok 1 - create MUST generate an error ...` is followed by `"error": "exit status 1"`
    r = real("create.runc")
    assert (r.passed, r.failed, r.skipped) == (4, 0, 0)


def test_real_refer_to_line_keeps_the_block_with_its_result() -> None:
    # `ok 1 - state MUST ...` / `Refer to: <url>` / a block with the expected error
    r = real("state.pyrunc")
    assert (r.passed, r.failed, r.skipped) == (2, 1, 0)
    assert [c.description for c in r.cases if c.status == "fail"] == [
        "state MUST return the state of a container as specified in the State section"]


def test_real_run_with_not_ok_lines_and_skips() -> None:
    r = real("process_capabilities.pyrunc")
    assert (r.passed, r.failed, r.skipped, r.planned) == (265, 5, 32, 302)
    assert {c.description for c in r.cases if c.status == "fail"} == {
        f"expected {kind} capability CAP_SYS_RESOURCE set"
        for kind in ("bounding", "effective", "inheritable", "permitted", "ambient")}
    assert "linux.mountlabel not set" in [c.description for c in r.cases if c.status == "skip"]
