"""runc parity of the process setup, without privileges: the environment, the executable lookup,
exec's --cap sets and ioPriority's checks."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pyrunc.container import process
from pyrunc.errors import SpecError
from pyrunc.linux import procattrs
from pyrunc.ops import exec as exec_


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "_home_of", lambda uid: f"/home/u{uid}")


@pytest.mark.parametrize("env, want", [
    (["PATH=/bin"], ["PATH=/bin", "HOME=/home/u7"]),
    (["HOME=", "PATH=/bin"], ["HOME=/home/u7", "PATH=/bin"]),
    (["HOME=/x", "PATH=/bin"], ["HOME=/x", "PATH=/bin"]),
    (["A=1", "B=2", "A=3", "HOME=/h"], ["A=3", "B=2", "HOME=/h"]),
    (["HOME=/h", "HOME="], ["HOME=/home/u7"]),
])
def test_environ_later_entries_win_and_empty_home_is_filled(home: None, env: list[str],
                                                            want: list[str]) -> None:
    assert process._environ(env, 7) == want


def _file(path: Path, mode: int) -> str:
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    return str(path)


def test_executable_with_an_execute_bit_for_someone_is_found(tmp_path: Path) -> None:
    # access(2) as the process user would refuse 0700 root:root; runc leaves it to execve (and
    # to CAP_DAC_OVERRIDE), as Go's exec.LookPath does.
    name = _file(tmp_path / "prog", 0o700)
    assert process.find_executable(name, []) == name
    assert stat.S_IMODE((tmp_path / "prog").stat().st_mode) == 0o700


def test_executable_without_any_execute_bit_is_refused(tmp_path: Path) -> None:
    name = _file(tmp_path / "prog", 0o644)
    with pytest.raises(SpecError, match="permission denied"):
        process.find_executable(name, [])


def test_exec_cap_adds_ambient_when_the_process_has_an_inheritable_set() -> None:
    base = {"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"]}
    got = exec_._caps_with(base, ["net_raw"])
    assert got is not None
    for key in ("bounding", "effective", "permitted", "ambient"):
        assert "CAP_NET_RAW" in got[key], key
    assert got["inheritable"] == ["CAP_KILL"]


def test_exec_cap_leaves_ambient_alone_without_an_inheritable_set() -> None:
    got = exec_._caps_with({"bounding": ["CAP_KILL"]}, ["CAP_NET_RAW"])
    assert got is not None
    assert "ambient" not in got
    assert got["permitted"] == ["CAP_NET_RAW"]


def test_io_priority_idle_needs_no_priority() -> None:
    procattrs.check({"ioPriority": {"class": "IOPRIO_CLASS_IDLE"}}, {})
    with pytest.raises(SpecError, match="ioPriority.priority"):
        procattrs.check({"ioPriority": {"class": "IOPRIO_CLASS_BE"}}, {})
