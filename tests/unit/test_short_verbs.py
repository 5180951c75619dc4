"""What the short verbs (`start`, `state`, `kill`, `delete`: engines call them for every container)
load when they succeed: no error classes, no type-name module, no cgroup manager. Each module is
~0.15-0.2M instructions of every call, the error classes 1.3M (docs/HACKING.md, "The launcher")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyrunc.errors import CgroupError
from pyrunc.linux.cgroups import teardown
from pyrunc.linux.cgroups.manager import Manager

REPO = Path(__file__).resolve().parents[2]

# what the CLI imports for each verb (cmd_start, cmd_state, cmd_kill, cmd_delete), and then calls
VERBS = {"start": ["pyrunc.container.start"], "state": ["pyrunc.container", "pyrunc.sys.jsonfast"],
         "kill": ["pyrunc.ops.kill"],
         "delete": ["pyrunc.container.destroy", "pyrunc.linux.cgroups.teardown"]}
NOT_LOADED = ["pyrunc.errors", "pyrunc._typing", "pyrunc.log", "pyrunc.cli.commands",
              "pyrunc.linux.cgroups.manager",
              "pyrunc.linux.cgroups.layout", "pyrunc.linux.cgroups.devices", "errno"]


def _loaded(code: str) -> set[str]:
    prog = (f"import sys; sys.path.insert(0, {str(REPO)!r}); {code}; "
            "print(' '.join(sorted(sys.modules)))")
    p = subprocess.run([sys.executable, "-I", "-S", "-c", prog], capture_output=True, text=True,
                       check=True)
    return set(p.stdout.split())


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_a_short_verb_loads_no_error_class_and_no_manager(verb: str) -> None:
    loaded = _loaded("import pyrunc.cli, " + ", ".join(VERBS[verb]))
    assert not loaded & set(NOT_LOADED), sorted(loaded & set(NOT_LOADED))


def _saved(tmp: Path, **extra: object) -> dict[str, object]:
    dirs = {"freezer": str(tmp / "freezer"), "": str(tmp / "unified")}
    return {"version": 1, "mode": "hybrid", "dirs": dirs, "devices": [], **extra}


def test_teardown_of_a_plain_entry_needs_no_manager(tmp_path: Path) -> None:
    code = (f"from pyrunc.linux.cgroups import teardown; "
            f"c = teardown.load({_saved(tmp_path)!r}); assert type(c) is teardown.Cgroups; "
            f"assert c.pids() == [] and not c.frozen(); c.destroy()")
    assert "pyrunc.linux.cgroups.manager" not in _loaded(code)


def test_an_entry_with_real_time_budgets_goes_to_the_manager(tmp_path: Path) -> None:
    c = teardown.load(_saved(tmp_path, rt_grants={"/sys/fs/cgroup/cpu/x": 1000}))
    assert isinstance(c, Manager) and c.rt_grants == {"/sys/fs/cgroup/cpu/x": 1000}


@pytest.mark.parametrize("broken", [{"devices": [[True, "c"]]}, {"mode": None, "dirs": 3},
                                    {"devices": None}, {"rt_grants": {"x": "many"}}])
def test_a_malformed_entry_fails_as_the_manager_says(tmp_path: Path,
                                                    broken: dict[str, object]) -> None:
    saved = {**_saved(tmp_path), **broken}
    if broken.get("mode", "") is None:
        del saved["mode"]
    with pytest.raises(CgroupError) as via_teardown:
        teardown.load(saved)
    with pytest.raises(CgroupError) as via_manager:
        Manager.from_state(saved)
    assert str(via_teardown.value) == str(via_manager.value)


def test_teardown_removes_what_it_is_given_and_reads_the_freezer(tmp_path: Path) -> None:
    saved = _saved(tmp_path)
    for d in saved["dirs"].values():
        Path(d, "sub").mkdir(parents=True)
    Path(tmp_path, "freezer", "freezer.state").write_text("FROZEN\n")
    c = teardown.load(saved)
    assert c.frozen() and c.pids() == []
    Path(tmp_path, "freezer", "freezer.state").unlink()
    c.destroy()  # sub-cgroups first, then the cgroup itself
    assert not (tmp_path / "freezer").exists() and not (tmp_path / "unified").exists()
