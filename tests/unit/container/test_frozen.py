"""Container.frozen reads the freezer without loading the cgroup manager: it must answer as
Manager.frozen does, for every shape of the saved cgroup state and every freezer file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrunc.container import Container
from pyrunc.errors import CgroupError
from pyrunc.linux.cgroups.manager import Manager

V1 = {"freezer.state": ["THAWED\n", "FROZEN\n", "FREEZING\n", "", None]}
V2 = {"cgroup.freeze": ["0\n", "1\n", "", None]}


def _saved(tmp: Path, keys: list[str], files: dict[str, str | None]) -> dict[str, object]:
    dirs = {}
    for key in keys:
        d = tmp / (key or "unified")
        d.mkdir()
        for name, text in files.items():
            if text is not None:
                (d / name).write_text(text)
        dirs[key] = str(d)
    return {"version": 1, "mode": "v2" if keys == [""] else "hybrid", "dirs": dirs, "devices": []}


CASES = ([(["freezer", ""], {"freezer.state": t, "cgroup.freeze": "1\n"}) for t in V1["freezer.state"]]
         + [([""], {"cgroup.freeze": t}) for t in V2["cgroup.freeze"]]
         + [(["memory"], {}), ([], {})])


@pytest.mark.parametrize(("keys", "files"), CASES)
def test_frozen_answers_as_the_manager(tmp_path: Path, keys: list[str], files: dict[str, str | None]) -> None:
    saved = _saved(tmp_path, keys, files)
    c = Container(str(tmp_path), "c", {"cgroup": saved})  # type: ignore[typeddict-item]
    assert c.frozen() == Manager.from_state(saved).frozen()  # type: ignore[arg-type]


def test_a_paused_container_reads_paused(tmp_path: Path) -> None:
    saved = _saved(tmp_path, ["freezer"], {"freezer.state": "FROZEN\n"})
    c = Container(str(tmp_path), "c", {"cgroup": saved})  # type: ignore[typeddict-item]
    assert c.frozen()


def test_a_malformed_entry_is_reported_by_the_manager(tmp_path: Path) -> None:
    c = Container(str(tmp_path), "c", {"cgroup": {"mode": "v1", "dirs": ["/x"]}})  # type: ignore[typeddict-item]
    with pytest.raises(CgroupError, match="malformed cgroup state"):
        c.frozen()
