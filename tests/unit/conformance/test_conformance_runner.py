"""The runtime-tools runner on a fake suite of shell scripts: no Go, no suite, no root needed."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from conformance import runtime_tools  # noqa: E402
from conformance.wrappers import runtime_names, wrapper_text  # noqa: E402

PROGRAMS = {
    # every program sees the wrapper as $RUNTIME, with the checkout as its working directory
    "state": 'test -f rootfs-amd64.tar.gz && echo "ok 1 - in the checkout"\n'
             '"$RUNTIME" state abc >/dev/null && echo "ok 2 - runtime ran" || echo "not ok 2 - x"\n'
             'echo 1..2\n',
    "hooks": 'printf "  ---\\n  error: poststart hook did not run\\n  ...\\n"\n',
    "quiet": 'exit 0\n',
    "crash": 'echo "ok 1 - a"\necho "1..3"\nexit 3\n',
    "hang": 'sleep 300 &\necho $! > "$PIDS"\necho "ok 1 - before the hang"\nwait\n',
}


def make_suite(tmp: Path) -> Path:
    suite = tmp / "suite"
    (suite / "rootfs-amd64.tar.gz").parent.mkdir(parents=True)
    (suite / "rootfs-amd64.tar.gz").write_bytes(b"")
    for name, body in PROGRAMS.items():
        prog = suite / "validation" / name / f"{name}.t"
        prog.parent.mkdir(parents=True)
        prog.write_text("#!/bin/sh\n" + body)
        prog.chmod(0o755)
    return suite


def make_runtime(tmp: Path, name: str, fail_state: bool = False) -> Path:
    """A fake runtime that logs its argv, and fails `state` when asked to."""
    rt = tmp / "bin" / name
    rt.parent.mkdir(exist_ok=True)
    rt.write_text(f'#!/bin/sh\necho "$@" >> {tmp}/{name}.calls\n'
                  f'case "$*" in *" state "*) exit {1 if fail_state else 0} ;; esac\n')
    rt.chmod(0o755)
    return rt


@pytest.fixture
def suite_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    suite = make_suite(tmp_path)
    good, bad = make_runtime(tmp_path, "good"), make_runtime(tmp_path, "bad", fail_state=True)
    monkeypatch.setenv("PIDS", str(tmp_path / "hang.pid"))

    def run(*extra: str) -> tuple[int, str, dict]:  # type: ignore[type-arg]
        out = tmp_path / "out.json"
        rc = runtime_tools.main(["--suite", str(suite), "--runtime", str(good), "--runtime",
                                 str(bad), "--timeout", "0.5", "--json", str(out), *extra])
        return rc, str(tmp_path), json.loads(out.read_text())

    return run


def test_counts_per_program_and_runtime(suite_run, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    rc, _, data = suite_run("--no-expected")
    results = data["results"]
    assert rc == 0
    assert data["runtimes"] == ["good", "bad"]
    assert sorted(results) == ["crash", "hang", "hooks", "quiet", "state"]
    assert results["state"]["good"]["status"] == "ok"
    assert (results["state"]["bad"]["passed"], results["state"]["bad"]["failed"]) == (1, 1)
    assert results["hooks"]["good"]["detail"] == ["error: poststart hook did not run"]
    assert results["quiet"]["good"]["passed"] == 1
    # one ok, two planned but missing, one non-zero exit
    assert (results["crash"]["good"]["passed"], results["crash"]["good"]["failed"]) == (1, 3)
    out = capsys.readouterr().out
    assert "good: 5 passed, 5 failed, 0 skipped (2 of 5 tests clean)" in out.splitlines()
    assert "bad: 4 passed, 6 failed, 0 skipped (1 of 5 tests clean)" in out.splitlines()


def test_hang_is_killed_with_its_process_group(suite_run) -> None:  # type: ignore[no-untyped-def]
    _, tmp, data = suite_run("--no-expected", "hang")
    hang = data["results"]["hang"]["good"]
    assert hang["status"] == "TIMEOUT"
    assert (hang["passed"], hang["failed"]) == (1, 1)
    pid = int(Path(tmp, "hang.pid").read_text())
    for _ in range(50):  # the kill is sent; reaping by init may take a moment
        if not os.path.exists(f"/proc/{pid}") or "State:\tZ" in Path(f"/proc/{pid}/status").read_text():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"background child {pid} of the hung program survived")


def test_runtime_gets_a_private_root_and_leftovers_are_listed(suite_run) -> None:  # type: ignore[no-untyped-def]
    _, tmp, _ = suite_run("--no-expected", "state")
    calls = Path(tmp, "good.calls").read_text().splitlines()
    assert calls[0].startswith("--root ") and calls[0].endswith(" state abc")
    assert any(c.endswith(" list -q") for c in calls)  # the clean-up after the program


def test_expected_file_decides_the_exit_status(suite_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    expected = tmp_path / "expected.json"
    entries: dict[str, dict[str, object]] = {"hooks": {"kind": "test-bug", "reason": "r"},
        "crash": {"kind": "defect", "reason": "r", "cases": ["never ran", "exit status"]},
        "hang": {"kind": "defect", "reason": "r"}, "state": {"kind": "defect", "reason": "r"}}
    expected.write_text(json.dumps({"runtime": "bad", "tests": entries}))
    rc, _, data = suite_run("--expected", str(expected))
    assert rc == 0
    assert data["regressions"] == []
    entries["crash"]["cases"] = ["never ran"]
    del entries["state"]
    expected.write_text(json.dumps({"runtime": "bad", "tests": entries}))
    rc, _, data = suite_run("--expected", str(expected))
    assert rc == 1
    assert [r.split(":")[0] for r in data["regressions"]] == ["crash", "state"]


def test_logs_keep_each_runtimes_output(suite_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    logs = tmp_path / "logs"
    suite_run("--no-expected", "--logs", str(logs), "state")
    assert sorted(p.name for p in logs.iterdir()) == [
        "state.bad.err", "state.bad.out", "state.good.err", "state.good.out"]
    assert "not ok 2" in (logs / "state.bad.out").read_text()
    assert "ok 2 - runtime ran" in (logs / "state.good.out").read_text()


def test_missing_suite_is_an_error(tmp_path: Path) -> None:
    assert runtime_tools.main(["--suite", str(tmp_path), "--runtime", "/bin/true"]) == 2


def test_names_and_wrappers() -> None:
    assert runtime_names(["/usr/sbin/runc", "/usr/bin/crun"]) == ["runc", "crun"]
    assert runtime_names(["/a/runc", "/b/runc"]) == ["/a/runc", "/b/runc"]
    text = wrapper_text("/usr/bin/crun", Path("/r"), Path("/e"))
    assert "--root /r" in text and "ociVersion" in text and "unshare -m" in text
    assert "unshare" not in wrapper_text("/usr/sbin/runc", Path("/r"), Path("/e"))


def test_expected_file_entries_have_a_kind_and_a_reason() -> None:
    """Every listed failure is a test bug, a host limit or a deliberate choice, with its reason;
    none is a defect of ours left open."""
    from conformance.runtime_tools import DEFAULT_EXPECTED, load_expected

    entries = load_expected(DEFAULT_EXPECTED)["tests"]
    assert entries
    for name, entry in entries.items():
        assert entry["kind"] in ("test-bug", "host-limit", "deliberate"), name
        assert len(entry["reason"]) > 20, name
        assert entry.get("cases"), name  # each entry says which failures it covers
