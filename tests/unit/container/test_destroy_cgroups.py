"""delete removes an empty container's cgroups with one rmdir each, without loading the cgroup
package (container.destroy._remove_cgroups_quickly); anything beyond that is left to the teardown.
Plain directories stand in for cgroups here (rmdir of a non-empty one fails as a cgroup's does);
the real cgroups are removed by the integration tests of delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrunc.container import Container, destroy
from pyrunc.linux.cgroups import teardown


def _container(tmp: Path, dirs: dict[str, str], extra: dict[str, object] | None = None) -> Container:
    saved = {"version": 1, "mode": "hybrid", "dirs": dirs, "devices": [], **(extra or {})}
    return Container(str(tmp), "c", {"cgroup": saved})  # type: ignore[typeddict-item]


def _dirs(tmp: Path, keys: list[str]) -> dict[str, str]:
    out = {}
    for key in keys:
        d = tmp / "cg" / (key or "unified") / "c"
        d.mkdir(parents=True)
        out[key] = str(d)
    return out


def test_empty_cgroups_are_removed_without_the_teardown(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path, ["memory", "pids", "freezer", ""])
    dirs["cpuacct"] = dirs["cpu"] = dirs["memory"]  # co-mounted: one directory, removed once
    assert destroy._remove_cgroups_quickly(_container(tmp_path, dirs))
    assert not any(Path(d).exists() for d in dirs.values())


def test_a_missing_cgroup_counts_as_removed(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path, ["memory"])
    dirs["pids"] = str(tmp_path / "gone")
    assert destroy._remove_cgroups_quickly(_container(tmp_path, dirs))


def test_sub_cgroups_are_left_to_the_teardown(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path, ["memory", "pids"])
    (Path(dirs["pids"]) / "sub").mkdir()
    c = _container(tmp_path, dirs)
    assert not destroy._remove_cgroups_quickly(c)
    teardown.load(c.data["cgroup"]).destroy()  # what destroy() then calls: it removes the rest
    assert not any(Path(d).exists() for d in dirs.values())


@pytest.mark.parametrize("extra", [{"rt_grants": {"/sys/fs/cgroup/cpu": 1000}},
                                   {"devices": [["a"]]}, {"dirs": ["/x"]}])
def test_entries_the_teardown_would_not_take_as_they_are_go_to_it(tmp_path: Path,
                                                                  extra: dict[str, object]) -> None:
    dirs = _dirs(tmp_path, ["memory"])
    assert not destroy._remove_cgroups_quickly(_container(tmp_path, dirs, extra))
    assert Path(dirs["memory"]).exists()


def test_no_cgroup_entry_goes_to_the_default_place(tmp_path: Path) -> None:
    assert not destroy._remove_cgroups_quickly(Container(str(tmp_path), "c", {}))  # type: ignore[typeddict-item]
