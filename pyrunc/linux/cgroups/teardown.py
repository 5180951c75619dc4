"""A container's cgroups at its end: list, signal, freeze, kill and remove what is in them.

`delete`, `kill --all` and the status of a paused container need only this of the cgroup manager,
whose module (manager.py: creation, resources, devices, real-time budgets) costs ~1.2M
instructions to load, a tenth of a `delete`. `Cgroups` holds what these steps read, the mode and
one directory per hierarchy ("" for the cgroup2 one); `Manager` is a `Cgroups` with the rest.
`load` makes one from state.json's cgroup entry, and leaves to `Manager.from_state` an entry it
cannot use as it is (malformed, or real-time budgets to give back), so the answer, errors
included, is the manager's.
"""

import time

from pyrunc import MYPY
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.errors import CgroupError
    from pyrunc.linux.cgroups.manager import CgroupState

_SIGKILL = 9  # signal.SIGKILL without importing signal (it pulls enum: ~5 ms)
_EBUSY = 16  # errno.EBUSY without the errno module's table of names
_FREEZE_TIMEOUT = 5.0
_KILL_TIMEOUT = 10.0
_PIDS_ORDER = ("pids", "freezer", "memory", "devices", "cpu", "cpuacct", "")


def read_file(path: str) -> str:
    """A whole (small) cgroup file, with posix calls only (open() builds a buffered reader)."""
    return os.read_bytes(path).decode()


write_file = os.write_existing


def write(path: str, value: str) -> None:
    """write_file with runc's error wording: the file and the value (manager.CgroupWriteError)."""
    try:
        write_file(path, value)
    except OSError as exc:
        from pyrunc.linux.cgroups.manager import CgroupWriteError  # only when a write fails

        raise CgroupWriteError(path, value, exc) from exc


def cgroup_error(message: str) -> "CgroupError":
    from pyrunc.errors import CgroupError  # (see pyrunc.errors: loaded only when failing)

    return CgroupError(message)


class Cgroups:
    def __init__(self, mode: str, dirs: dict[str, str]) -> None:
        self.mode = mode
        self.dirs = dirs

    def _distinct(self) -> dict[str, str]:
        """One key per directory (cpu and cpuacct may share a mount)."""
        seen: dict[str, str] = {}
        for key, path in self.dirs.items():
            if path not in seen.values():
                seen[key] = path
        return seen

    def paths(self) -> dict[str, str]:
        return dict(self.dirs)

    # ---- processes ------------------------------------------------------------------------------

    def pids(self) -> list[int]:
        key = next((k for k in _PIDS_ORDER if k in self.dirs), None)
        if key is None:
            return []
        found: list[int] = []
        for top, _dirs, _files in os.walk(self.dirs[key]):
            try:
                found += [int(x) for x in read_file(os.path.join(top, "cgroup.procs")).split()]
            except FileNotFoundError:
                continue
        return found

    def signal_all(self, sig: int) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def kill_all(self) -> None:
        """SIGKILL everything in the cgroup and wait (bounded) until it is empty."""
        deadline = time.monotonic() + _KILL_TIMEOUT
        delay = 0.001
        while self.pids():
            if time.monotonic() > deadline:
                raise cgroup_error(f"processes {self.pids()} are still in {self.primary()} "
                                   f"after SIGKILL")
            self._kill_once()
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _kill_once(self) -> None:
        kill_file = os.path.join(self.dirs.get("", ""), "cgroup.kill")
        if "" in self.dirs and os.path.exists(kill_file):
            write(kill_file, "1")
            if self.mode == "v2":
                return
        # v1: freeze first, so no process can fork a new one between the listing and the kill.
        frozen = "freezer" in self.dirs and self._try_freeze()
        self.signal_all(_SIGKILL)
        if frozen:
            self.thaw()

    def _try_freeze(self) -> bool:
        try:
            self.freeze()
        except Exception as exc:
            from pyrunc.errors import CgroupError

            if not isinstance(exc, CgroupError):
                raise
            return False
        return True

    def primary(self) -> str:
        key = next((k for k in _PIDS_ORDER if k in self.dirs), "")
        return self.dirs.get(key, "")

    # ---- freezer --------------------------------------------------------------------------------

    def freeze(self) -> None:
        if "freezer" in self.dirs:
            self._freeze_v1()
        else:
            self._freeze_v2()

    def _freeze_v1(self) -> None:
        state = os.path.join(self.dirs["freezer"], "freezer.state")
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        while True:
            # Writing FROZEN again nudges tasks that were in the middle of a fork (runc does too).
            write(state, "FROZEN")
            if read_file(state).strip() == "FROZEN":
                return
            if time.monotonic() > deadline:
                write(state, "THAWED")
                raise cgroup_error(f"{state}: the cgroup did not freeze in {_FREEZE_TIMEOUT} s")
            time.sleep(0.01)

    def _freeze_v2(self) -> None:
        base = self._v2_dir("freeze")
        write(os.path.join(base, "cgroup.freeze"), "1")
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        while "frozen 1" not in read_file(os.path.join(base, "cgroup.events")):
            if time.monotonic() > deadline:
                write(os.path.join(base, "cgroup.freeze"), "0")
                raise cgroup_error(f"{base}: the cgroup did not freeze in {_FREEZE_TIMEOUT} s")
            time.sleep(0.01)

    def _v2_dir(self, what: str) -> str:
        if "" not in self.dirs:
            raise cgroup_error(f"cannot {what}: no freezer cgroup (v1 freezer or cgroup2)")
        return self.dirs[""]

    def thaw(self) -> None:
        if "freezer" in self.dirs:
            write(os.path.join(self.dirs["freezer"], "freezer.state"), "THAWED")
        else:
            write(os.path.join(self._v2_dir("thaw"), "cgroup.freeze"), "0")

    def _freeze_file(self) -> tuple[str, tuple[str, ...]] | None:
        """The file that tells whether the cgroup is frozen, and the values that mean it is
        (or is becoming it); None with neither a v1 freezer nor a cgroup2 directory."""
        if "freezer" in self.dirs:
            return os.path.join(self.dirs["freezer"], "freezer.state"), ("FROZEN", "FREEZING")
        if "" in self.dirs:
            return os.path.join(self.dirs[""], "cgroup.freeze"), ("1",)
        return None

    def frozen(self) -> bool:
        found = self._freeze_file()
        if found is None:
            return False
        path, values = found
        try:
            return read_file(path).strip() in values
        except OSError:
            return False

    # ---- removal --------------------------------------------------------------------------------

    def destroy(self) -> None:
        for path in self._distinct().values():
            rmdir_tree(path)


def load(saved: "CgroupState") -> Cgroups:
    """The Cgroups of a saved entry: this module's when the entry is well formed and has no
    real-time budget to give back (the usual case), else the Manager's (`Manager.from_state`)."""
    try:
        if not saved.get("rt_grants") and all(len(row) == 5 for row in saved["devices"]):
            return Cgroups(saved["mode"], dict(saved["dirs"]))
    except (KeyError, TypeError, ValueError):
        pass
    from pyrunc.linux.cgroups.manager import Manager

    return Manager.from_state(saved)


def rmdir(path: str) -> None:
    """rmdir a cgroup; EBUSY while the last tasks are released, so retry for a while."""
    for attempt in range(100):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != _EBUSY or attempt == 99:
                raise cgroup_error(f"removing cgroup {path}: {exc.strerror}") from exc
            time.sleep(0.01)


def rmdir_tree(path: str) -> None:
    """Remove a cgroup and the sub-cgroups the container made inside it, deepest first."""
    try:
        os.rmdir(path)  # the usual case: no sub-cgroups, no tasks left
        return
    except FileNotFoundError:
        return
    except OSError:
        pass  # EBUSY: sub-cgroups, or tasks still being released
    for top, subdirs, _files in os.walk(path, topdown=False):
        for sub in subdirs:
            rmdir(os.path.join(top, sub))
    rmdir(path)
