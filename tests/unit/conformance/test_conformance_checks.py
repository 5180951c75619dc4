"""conformance/checks.py against fake runtimes: each check can fail, and the table reports it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from conformance import checks  # noqa: E402


def fake(tmp: Path, name: str, body: str) -> str:
    path = tmp / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_list_names_the_checks(capsys: pytest.CaptureFixture[str]) -> None:
    assert checks.main(["--list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert len(names) >= 15
    assert {"pid_file", "bad_id_refused", "masked_and_readonly_paths"} <= set(names)


def test_unknown_check_or_no_runtime_is_an_error() -> None:
    assert checks.main(["--runtime", "/bin/true", "no_such_check"]) == 2
    assert checks.main([]) == 2


@pytest.mark.requires("busybox")
def test_fake_runtimes_fail_and_pass_the_right_checks(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    yes = fake(tmp_path, "yes", "exit 0\n")  # accepts everything, does nothing
    no = fake(tmp_path, "no", "echo refused >&2; exit 1\n")  # refuses everything
    out = tmp_path / "out.json"
    rc = checks.main(["--runtime", yes, "--runtime", no, "--json", str(out), "state_after_create",
                      "bad_id_refused", "missing_rootfs_refused", "exit_status"])
    results = json.loads(out.read_text())["results"]
    status = {name: {r: v["status"] for r, v in row.items()} for name, row in results.items()}
    assert rc == 1
    assert status["state_after_create"] == {"yes": "FAIL", "no": "FAIL"}
    assert status["bad_id_refused"] == {"yes": "FAIL", "no": "ok"}
    assert status["missing_rootfs_refused"] == {"yes": "FAIL", "no": "ok"}
    assert status["exit_status"] == {"yes": "FAIL", "no": "FAIL"}
    assert "state output is not JSON" in results["state_after_create"]["yes"]["detail"][0]
    assert "refused" in results["state_after_create"]["no"]["detail"][0]
    lines = capsys.readouterr().out.splitlines()
    assert "yes: 0 passed, 4 failed, 0 skipped (0 of 4 tests clean)" in lines
    assert "no: 2 passed, 2 failed, 0 skipped (2 of 4 tests clean)" in lines
