"""The cgroupfs manager: make a container's cgroups, write the planned files, freeze, kill, remove.

One Manager covers the three host modes (see layout.py). It holds one directory per hierarchy:
v1 controllers by name (`memory`, `name=systemd`, ...) and "" for the cgroup2 directory. On a hybrid
host the v1 controllers do the limiting, the devices controller the device list and the freezer the
pausing; the cgroup2 directory is joined too, which gives `cgroup.kill` for free.
"""

from __future__ import annotations

import errno
import time

from pyrunc._typing import MYPY
from pyrunc.errors import CgroupError
from pyrunc.sys import oslite as os

if MYPY:
    from collections.abc import Set as AbstractSet
    from typing import Required, TypedDict

    from pyrunc.linux.cgroups import devices, plan
    from pyrunc.linux.cgroups.devices import RuleRow
    from pyrunc.linux.cgroups.stats import Stats
    from pyrunc.spec.types import Memory, Resources

    class CgroupState(TypedDict, total=False):
        """A Manager as state.json keeps it (Manager.to_state)."""

        version: int
        mode: Required[str]
        dirs: Required[dict[str, str]]
        resources: Resources
        rootless: bool
        v2_root: str | None
        devices: Required[list[RuleRow]]

_SIGKILL = 9  # signal.SIGKILL without importing signal (it pulls enum: ~5 ms)
_FREEZE_TIMEOUT = 5.0
_KILL_TIMEOUT = 10.0
_PIDS_ORDER = ("pids", "freezer", "memory", "devices", "cpu", "cpuacct", "")
# v1 files written first -> the file to write before them when the kernel refuses (see
# Manager._write_entries)
_PAIRS = {"memory.limit_in_bytes": "memory.memsw.limit_in_bytes",
          "cpu.cfs_period_us": "cpu.cfs_quota_us",
          "cpu.rt_period_us": "cpu.rt_runtime_us"}


def read_file(path: str) -> str:
    with open(path) as f:
        return f.read()


def write_file(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


class CgroupWriteError(CgroupError):
    """A cgroup file refused a value: the file, the value and the errno, for callers that word it
    as runc does (`update`) or retry in another order."""

    def __init__(self, path: str, value: str, exc: OSError, hint: str = "") -> None:
        super().__init__(f"writing '{value}' to {path}: {exc.strerror}{hint}")
        self.path, self.value, self.errno = path, value, exc.errno
        self.strerror = exc.strerror or str(exc)
        self.hint = hint

    def runc_wording(self) -> str:
        """`failed to write "VALUE": write PATH: invalid argument` (Go's errors, lower case)."""
        reason = self.strerror[:1].lower() + self.strerror[1:]
        return f'failed to write "{self.value}": write {self.path}: {reason}{self.hint}'


def _write(path: str, value: str) -> None:
    """write_file with runc's error wording: the file and the value."""
    try:
        write_file(path, value)
    except OSError as exc:
        raise CgroupWriteError(path, value, exc) from exc


class Manager:
    def __init__(self, mode: str, dirs: dict[str, str], resources: Resources,
                 rule_rows: list[RuleRow], *, rootless: bool = False,
                 v2_root: str | None = None) -> None:
        self.mode = mode
        self.dirs = dirs
        self.resources = resources
        self.rule_rows = rule_rows  # the device rules as state.json keeps them (devices.Rule.row)
        self.rootless = rootless
        self.unwritable: set[str] = set()  # rootless: hierarchies we could not make a cgroup in
        self.v2_root = v2_root  # the cgroup2 mount point, to enable controllers top-down

    @property
    def rules(self) -> list[devices.Rule]:
        """Made from the rows when asked: delete, kill --all and pause never load the devices
        module."""
        from pyrunc.linux.cgroups import devices

        return [devices.Rule(bool(a), t, ma, mi, acc) for a, t, ma, mi, acc in self.rule_rows]

    # ---- creation -------------------------------------------------------------------------------

    def create(self) -> None:
        self._refuse_frozen()
        made: list[str] = []
        try:
            for key, path in self._distinct().items():
                self._mkdir(key, path, made)
            if self.rootless:
                self._drop_unwritable()
            self._apply_devices()
            self.set(self.resources)
        except BaseException:
            for path in reversed(made):
                _rmdir(path)
            raise

    def _refuse_frozen(self) -> None:
        """An existing cgroup that is frozen would freeze the init as it joins, and create would
        wait for it for ever: refuse, as runc does ("container's cgroup unexpectedly frozen").
        Those cgroups are someone else's, so this manager lets go of them: the caller's clean-up
        must neither kill what is in them nor remove them."""
        frozen: tuple[str, ...]
        if "freezer" in self.dirs:
            path, frozen = os.path.join(self.dirs["freezer"], "freezer.state"), ("FROZEN",
                                                                                 "FREEZING")
        elif "" in self.dirs:
            path, frozen = os.path.join(self.dirs[""], "cgroup.freeze"), ("1",)
        else:
            return
        try:
            value = read_file(path).strip()
        except FileNotFoundError:
            return  # not made yet: nothing can have frozen it
        if value in frozen:
            self.dirs = {}
            raise CgroupError(f"container's cgroup unexpectedly frozen: {path} is {value}")

    def _drop_unwritable(self) -> None:
        """Rootless: the hierarchies whose directory we could not make (no delegated subtree)
        are not the container's: it stays where it was started there, as runc's rootless mode."""
        for key, path in list(self.dirs.items()):
            if not os.path.isdir(path) or not os.access(path, os.W_OK):
                del self.dirs[key]
                self.unwritable.add(key)

    def _distinct(self) -> dict[str, str]:
        """One key per directory (cpu and cpuacct may share a mount)."""
        seen: dict[str, str] = {}
        for key, path in self.dirs.items():
            if path not in seen.values():
                seen[key] = path
        return seen

    def _mkdir(self, key: str, path: str, made: list[str]) -> None:
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            self._mkdir(key, parent, made)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            return
        except OSError as exc:
            if self.rootless and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                return
            raise CgroupError(f"creating cgroup {path}: {exc.strerror}") from exc
        made.append(path)
        if key == "cpuset":
            # A new cpuset is empty and refuses tasks (ENOSPC): inherit the parent's sets.
            for name in ("cpuset.cpus", "cpuset.mems"):
                _write(os.path.join(path, name), read_file(os.path.join(parent, name)).strip())

    def _apply_devices(self) -> None:
        from pyrunc.linux.cgroups import devices

        if "devices" in self.dirs:
            base = self.dirs["devices"]
            for file, line in devices.render_v1(self.rules):
                _write(os.path.join(base, file), line)
        elif self.mode == "v2" and "" in self.dirs:
            from pyrunc.sys import bpf  # ctypes: only when a v2 filter is needed

            try:
                bpf.replace_device_filter(self.dirs[""], devices.encode(devices.program(self.rules)))
            except OSError as exc:
                raise CgroupError(f"attaching the device filter to {self.dirs['']}: "
                                  f"{exc.strerror}") from exc

    # ---- resources ------------------------------------------------------------------------------

    def set(self, resources: Resources) -> None:
        from pyrunc import log
        from pyrunc.linux.cgroups import plan  # create and update only, not delete/pause/kill

        for text in plan.warnings(resources, v2=self.mode == "v2"):
            log.warning(text)
        if self.mode == "v2":
            entries = plan.render_v2(resources, bfq=self._has("", "io.bfq.weight"))
            self._enable_v2(plan.v2_controllers(entries), entries)
            self._check_before_update(resources)
        else:
            entries = plan.render_v1(resources, bfq=self._has("blkio", "blkio.bfq.weight"))
        self._write_entries(entries)
        self.resources = resources

    def _has(self, key: str, file: str) -> bool:
        return key in self.dirs and os.path.exists(os.path.join(self.dirs[key], file))

    def _write_entries(self, entries: list[plan.Entry]) -> None:
        pending = list(entries)
        while pending:
            entry = pending.pop(0)
            try:
                self._write_entry(entry)
            except CgroupError:
                # The kernel checks each of these values against the current value of its
                # partner, so only one order works for a given change: raising memory above
                # the current memory+swap limit, or a period whose ratio to the *current*
                # quota (rt runtime) exceeds the parent's budget. runc writes the first, and on
                # failure the partner and then the first again; so do we.
                partner = [e for e in pending if e.file == _PAIRS.get(entry.file)]
                if not partner:
                    raise
                pending.remove(partner[0])
                self._write_entry(partner[0])
                self._write_entry(entry)

    def _write_entry(self, entry: plan.Entry) -> None:
        base = self.dirs.get(entry.controller)
        if base is None and entry.controller in self.unwritable:
            raise CgroupError(f"{entry.field}: a rootless container has no writable "
                              f"{entry.controller or 'cgroup2'} cgroup here (no delegated subtree)")
        if base is None:
            raise CgroupError(f"{entry.field}: the {entry.controller} cgroup controller is not "
                              f"available on this host ({self.mode} cgroups)")
        path = os.path.join(base, entry.file)
        if not os.path.exists(path):
            if entry.optional:
                return
            raise CgroupError(f"{entry.field}: {path} does not exist (the kernel does not offer "
                              f"{entry.file} here)")
        try:
            write_file(path, entry.value)
        except OSError as exc:
            hint = ""
            if entry.file == "cpu.rt_runtime_us" and exc.errno == errno.EINVAL:
                hint = (" (the realtime runtime of a cgroup must fit in its parent's: "
                        f"{_rt_budget(os.path.dirname(base))})")
            raise CgroupWriteError(path, entry.value, exc, hint) from exc

    def _enable_v2(self, needed: AbstractSet[str], entries: list[plan.Entry]) -> None:
        if not needed:
            return
        root = self.v2_root or ""
        offered = set(read_file(os.path.join(root, "cgroup.controllers")).split())
        for entry in entries:
            ctrl = entry.file.split(".", 1)[0]
            if ctrl in needed and ctrl not in offered:
                raise CgroupError(f"{entry.field}: the {ctrl} controller is not available in the "
                                  f"cgroup v2 hierarchy at {root}")
        rel = os.path.relpath(self.dirs[""], root).split("/")
        for depth in range(len(rel)):
            parent = os.path.join(root, *rel[:depth])
            control = os.path.join(parent, "cgroup.subtree_control")
            missing = needed - set(read_file(control).split())
            if missing:
                _write(control, " ".join(f"+{c}" for c in sorted(missing)))

    def _check_before_update(self, resources: Resources) -> None:
        mem: Memory = resources.get("memory") or {}
        limit = mem.get("limit") or 0
        if not mem.get("checkBeforeUpdate") or limit <= 0 or not self._has("", "memory.current"):
            return
        current = int(read_file(os.path.join(self.dirs[""], "memory.current")))
        if current > limit:
            raise CgroupError(f"linux.resources.memory.limit: {limit} is below the current usage "
                              f"{current} (checkBeforeUpdate)")

    # ---- processes ------------------------------------------------------------------------------

    def apply(self, pid: int) -> None:
        for path in self._distinct().values():
            try:
                write_file(os.path.join(path, "cgroup.procs"), str(pid))
            except OSError as exc:
                if self.rootless and exc.errno in (errno.EACCES, errno.EPERM, errno.ENOENT):
                    continue
                raise CgroupError(f"writing '{pid}' to {path}/cgroup.procs: "
                                  f"{exc.strerror}") from exc

    def unified_dir(self) -> str | None:
        """The cgroup2 directory, which a process can be born into (clone3 CLONE_INTO_CGROUP)."""
        return self.dirs.get("")

    def apply_unified(self, pid: int) -> None:
        """cgroup.procs of the cgroup2 directory alone (when the init could not be born there)."""
        if "" in self.dirs:
            try:
                write_file(os.path.join(self.dirs[""], "cgroup.procs"), str(pid))
            except OSError as exc:
                if not (self.rootless and exc.errno in (errno.EACCES, errno.EPERM, errno.ENOENT)):
                    raise CgroupError(f"writing '{pid}' to {self.dirs['']}/cgroup.procs: "
                                      f"{exc.strerror}") from exc

    def join_self(self) -> None:
        """Move the calling process into every v1 hierarchy by writing 0 to `tasks`.

        A process moving itself (pid 0, one thread) skips the kernel's global
        cgroup_threadgroup_rwsem, whose first writer waits for an RCU grace period (7-20 ms on
        kernels without expedited RCU): cgroup.procs writes from the parent pay it, this does not.
        The cgroup2 directory has no such path; the init is born into it instead.
        """
        for key, path in self._distinct().items():
            if key == "":
                continue
            try:
                write_file(os.path.join(path, "tasks"), "0")
            except OSError as exc:
                if self.rootless and exc.errno in (errno.EACCES, errno.EPERM, errno.ENOENT):
                    continue
                raise CgroupError(f"writing '0' to {path}/tasks: {exc.strerror}") from exc

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
                raise CgroupError(f"processes {self.pids()} are still in {self.primary()} "
                                  f"after SIGKILL")
            self._kill_once()
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _kill_once(self) -> None:
        kill_file = os.path.join(self.dirs.get("", ""), "cgroup.kill")
        if "" in self.dirs and os.path.exists(kill_file):
            _write(kill_file, "1")
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
        except CgroupError:
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
            _write(state, "FROZEN")
            if read_file(state).strip() == "FROZEN":
                return
            if time.monotonic() > deadline:
                _write(state, "THAWED")
                raise CgroupError(f"{state}: the cgroup did not freeze in {_FREEZE_TIMEOUT} s")
            time.sleep(0.01)

    def _freeze_v2(self) -> None:
        base = self._v2_dir("freeze")
        _write(os.path.join(base, "cgroup.freeze"), "1")
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        while "frozen 1" not in read_file(os.path.join(base, "cgroup.events")):
            if time.monotonic() > deadline:
                _write(os.path.join(base, "cgroup.freeze"), "0")
                raise CgroupError(f"{base}: the cgroup did not freeze in {_FREEZE_TIMEOUT} s")
            time.sleep(0.01)

    def _v2_dir(self, what: str) -> str:
        if "" not in self.dirs:
            raise CgroupError(f"cannot {what}: no freezer cgroup (v1 freezer or cgroup2)")
        return self.dirs[""]

    def thaw(self) -> None:
        if "freezer" in self.dirs:
            _write(os.path.join(self.dirs["freezer"], "freezer.state"), "THAWED")
        else:
            _write(os.path.join(self._v2_dir("thaw"), "cgroup.freeze"), "0")

    def frozen(self) -> bool:
        try:
            if "freezer" in self.dirs:
                state = read_file(os.path.join(self.dirs["freezer"], "freezer.state")).strip()
                return state in ("FROZEN", "FREEZING")
            return read_file(os.path.join(self._v2_dir("read"), "cgroup.freeze")).strip() == "1"
        except (OSError, CgroupError):
            return False

    # ---- teardown, stats, state -----------------------------------------------------------------

    def destroy(self) -> None:
        for path in self._distinct().values():
            _rmdir_tree(path)

    def stats(self) -> Stats:
        from pyrunc.linux.cgroups import stats  # only `events` needs it

        return stats.collect(self.dirs, v2=self.mode == "v2")

    def oom_count(self) -> int:
        from pyrunc.linux.cgroups import stats

        return stats.oom_count(self.dirs, v2=self.mode == "v2")

    def paths(self) -> dict[str, str]:
        return dict(self.dirs)

    def to_state(self) -> CgroupState:
        return {"version": 1, "mode": self.mode, "dirs": dict(self.dirs),
                "resources": self.resources, "rootless": self.rootless, "v2_root": self.v2_root,
                "devices": self.rule_rows}

    @classmethod
    def from_state(cls, saved: CgroupState) -> Manager:
        try:
            rows = list(saved["devices"])
            if any(len(row) != 5 for row in rows):
                raise ValueError("a device rule is not [allow, type, major, minor, access]")
            return cls(saved["mode"], dict(saved["dirs"]), saved.get("resources") or {}, rows,
                       rootless=bool(saved.get("rootless")), v2_root=saved.get("v2_root"))
        except (KeyError, TypeError, ValueError) as exc:
            raise CgroupError(f"malformed cgroup state: {exc!r}") from exc


def _rt_budget(parent: str) -> str:
    """The parent's realtime budget, for the error message of a refused cpu.rt_runtime_us."""
    try:
        return (f"cpu.rt_runtime_us {read_file(os.path.join(parent, 'cpu.rt_runtime_us')).strip()}"
                f" per cpu.rt_period_us {read_file(os.path.join(parent, 'cpu.rt_period_us')).strip()}"
                f" in {parent}")
    except OSError:
        return f"see {parent}"


def _rmdir(path: str) -> None:
    """rmdir a cgroup; EBUSY while the last tasks are released, so retry for a while."""
    for attempt in range(100):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or attempt == 99:
                raise CgroupError(f"removing cgroup {path}: {exc.strerror}") from exc
            time.sleep(0.01)


def _rmdir_tree(path: str) -> None:
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
            _rmdir(os.path.join(top, sub))
    _rmdir(path)
