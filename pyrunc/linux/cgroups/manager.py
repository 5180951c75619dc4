"""The cgroupfs manager: make a container's cgroups, write the planned files, freeze, kill, remove.

One Manager covers the three host modes (see layout.py). It holds one directory per hierarchy:
v1 controllers by name (`memory`, `name=systemd`, ...) and "" for the cgroup2 directory. On a hybrid
host the v1 controllers do the limiting, the devices controller the device list and the freezer the
pausing; the cgroup2 directory is joined too, which gives `cgroup.kill` for free. What the end of a
container needs (processes, freezer, kill, removal) is its base, teardown.Cgroups.
"""

from __future__ import annotations

import errno
import time

from pyrunc._typing import MYPY
from pyrunc.errors import CgroupError
from pyrunc.linux.cgroups.teardown import Cgroups, read_file, write_file
from pyrunc.linux.cgroups.teardown import rmdir as _rmdir
from pyrunc.linux.cgroups.teardown import write as _write  # runc's wording: file and value
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
        rt_grants: dict[str, int]

_RT_RELEASE_TIMEOUT = 2.0
# v1 files written first -> the file to write before them when the kernel refuses (see
# Manager._write_entries)
_PAIRS = {"memory.limit_in_bytes": "memory.memsw.limit_in_bytes",
          "cpu.cfs_period_us": "cpu.cfs_quota_us",
          "cpu.rt_period_us": "cpu.rt_runtime_us"}


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


class Manager(Cgroups):
    def __init__(self, mode: str, dirs: dict[str, str], resources: Resources,
                 rule_rows: list[RuleRow], *, rootless: bool = False,
                 v2_root: str | None = None) -> None:
        super().__init__(mode, dirs)
        self.resources = resources
        self.rule_rows = rule_rows  # the device rules as state.json keeps them (devices.Rule.row)
        self.rootless = rootless
        self.unwritable: set[str] = set()  # rootless: hierarchies we could not make a cgroup in
        self.v2_root = v2_root  # the cgroup2 mount point, to enable controllers top-down
        self.rt_grants: dict[str, int] = {}  # ancestor -> real-time runtime we added (rt.py)

    @property
    def rules(self) -> list[devices.Rule]:
        """Made from the rows when asked: delete, kill --all and pause never load the devices
        module."""
        from pyrunc.linux.cgroups import devices

        return [devices.Rule(bool(a), t, ma, mi, acc) for a, t, ma, mi, acc in self.rule_rows]

    # ---- creation -------------------------------------------------------------------------------

    def create(self) -> None:
        self._refuse_frozen()
        if self.rootless and not _host_root():
            # Device rules (v1 devices.deny/allow, a v2 eBPF filter) need CAP_SYS_ADMIN of the
            # host even in a delegated subtree; runc's rootless mode ignores their errors. The
            # container stays in the devices cgroup it was started in; nodes are bind mounts.
            self.dirs.pop("devices", None)
            self.unwritable.add("devices")
        made: list[str] = []
        try:
            for key, path in self._distinct().items():
                self._mkdir(key, path, made)
            if self.rootless:
                self._drop_unwritable()
            self._apply_devices(fresh=self.dirs.get("devices") in made)
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
        found = self._freeze_file()
        if found is None:
            return
        path, frozen = found
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

    def _apply_devices(self, fresh: bool) -> None:
        from pyrunc.linux.cgroups import devices

        if "devices" in self.dirs:
            base = self.dirs["devices"]
            if fresh:  # nothing in it yet: the rules in order
                for file, line in devices.render_v1(self.rules):
                    _write(os.path.join(base, file), line)
            else:
                self._transition_devices(base)
        elif self.mode == "v2" and "" in self.dirs and "devices" not in self.unwritable:
            from pyrunc.sys import bpf  # ctypes: only when a v2 filter is needed

            try:
                bpf.replace_device_filter(self.dirs[""], devices.encode(devices.program(self.rules)))
            except OSError as exc:
                raise CgroupError(f"attaching the device filter to {self.dirs['']}: "
                                  f"{exc.strerror}") from exc

    def _transition_devices(self, base: str) -> None:
        """A cgroup that existed (shared, or a container's own made again): write only what
        changes, and freeze what is in it while all devices are allowed (see devices.py)."""
        from pyrunc.linux.cgroups import devices

        current = devices.parse_list(read_file(os.path.join(base, "devices.list")))
        writes, opens = devices.transition(current, devices.emulate(self.rules))
        freeze = (opens and "freezer" in self.dirs and not self.frozen()
                  and read_file(os.path.join(self.dirs["freezer"], "cgroup.procs")).strip() != "")
        if freeze:
            self.freeze()
        try:
            for file, line in writes:
                _write(os.path.join(base, file), line)
        finally:
            if freeze:
                self.thaw()

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
            self._grant_rt(entries)
        self._write_entries(entries)
        self.resources = resources

    def _has(self, key: str, file: str) -> bool:
        return key in self.dirs and os.path.exists(os.path.join(self.dirs[key], file))

    def _grant_rt(self, entries: list[plan.Entry]) -> None:
        """Grow the ancestors' real-time budgets that are short of what the container's asks
        (see rt.py); what was added is recorded, for destroy to give back."""
        asked = {e.file: e for e in entries
                 if e.controller == "cpu" and e.file in ("cpu.rt_period_us", "cpu.rt_runtime_us")}
        leaf = self.dirs.get("cpu")
        if not asked or leaf is None or not os.path.exists(os.path.join(leaf, "cpu.rt_runtime_us")):
            return
        from pyrunc.linux.cgroups import rt

        period, runtime = _rt_budget_of(leaf)
        if "cpu.rt_period_us" in asked:
            period = int(asked["cpu.rt_period_us"].value)
        if "cpu.rt_runtime_us" in asked:
            runtime = int(asked["cpu.rt_runtime_us"].value)
        field = (asked.get("cpu.rt_runtime_us") or asked["cpu.rt_period_us"]).field
        made: list[rt.Grant] = []
        for grant in rt.plan(leaf, period, runtime, _rt_budget_of, _child_cgroups, _is_top):
            path = os.path.join(grant.path, "cpu.rt_runtime_us")
            try:
                write_file(path, str(grant.runtime))
            except OSError as exc:
                for done in reversed(made):  # what this call added, deepest first
                    _try_write(os.path.join(done.path, "cpu.rt_runtime_us"),
                               str(done.runtime - done.added))
                raise CgroupWriteError(path, str(grant.runtime), exc,
                                       f" (the real-time budget {field} needs in a parent "
                                       f"cgroup: {_rt_budget(os.path.dirname(grant.path))})"
                                       ) from exc
            made.append(grant)
        for grant in made:
            self.rt_grants[grant.path] = self.rt_grants.get(grant.path, 0) + grant.added

    def _release_rt(self) -> None:
        if not self.rt_grants:
            return
        from pyrunc import log
        from pyrunc.linux.cgroups import rt

        # A removed cgroup leaves its parent's list of children only once its last task is
        # freed, up to seconds after rmdir; destroy zeroes its budget first (_zero_rt), so the
        # parent can shrink at once. Should it not (EINVAL), wait a little.
        deadline = time.monotonic() + _RT_RELEASE_TIMEOUT
        for path, runtime in rt.release_plan(self.rt_grants, _rt_budget_of, _child_cgroups):
            delay = 0.001
            while True:
                try:
                    write_file(os.path.join(path, "cpu.rt_runtime_us"), str(runtime))
                    break
                except OSError as exc:
                    if exc.errno != errno.EINVAL or time.monotonic() > deadline:
                        log.warning(f"giving back the real-time budget of {path}: writing "
                                    f"'{runtime}' to cpu.rt_runtime_us: {exc.strerror}")
                        break
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        self.rt_grants = {}

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

    # ---- teardown, stats, state -----------------------------------------------------------------

    def destroy(self) -> None:
        if self.rt_grants and "cpu" in self.dirs:
            _zero_rt(self.dirs["cpu"])
        super().destroy()
        self._release_rt()

    def stats(self) -> Stats:
        from pyrunc.linux.cgroups import stats  # only `events` needs it

        return stats.collect(self.dirs, v2=self.mode == "v2")

    def oom_count(self) -> int:
        from pyrunc.linux.cgroups import stats

        return stats.oom_count(self.dirs, v2=self.mode == "v2")

    def to_state(self) -> CgroupState:
        return {"version": 1, "mode": self.mode, "dirs": dict(self.dirs),
                "resources": self.resources, "rootless": self.rootless, "v2_root": self.v2_root,
                "devices": self.rule_rows, "rt_grants": dict(self.rt_grants)}

    @classmethod
    def from_state(cls, saved: CgroupState) -> Manager:
        try:
            rows = list(saved["devices"])
            if any(len(row) != 5 for row in rows):
                raise ValueError("a device rule is not [allow, type, major, minor, access]")
            manager = cls(saved["mode"], dict(saved["dirs"]), saved.get("resources") or {}, rows,
                          rootless=bool(saved.get("rootless")), v2_root=saved.get("v2_root"))
            manager.rt_grants = {str(k): int(v) for k, v in (saved.get("rt_grants") or {}).items()}
            return manager
        except (KeyError, TypeError, ValueError) as exc:
            raise CgroupError(f"malformed cgroup state: {exc!r}") from exc


def _host_root() -> bool:
    from pyrunc.linux.rootless import in_user_namespace

    return os.geteuid() == 0 and not in_user_namespace()


def _rt_budget(parent: str) -> str:
    """The parent's realtime budget, for the error message of a refused cpu.rt_runtime_us."""
    try:
        return (f"cpu.rt_runtime_us {read_file(os.path.join(parent, 'cpu.rt_runtime_us')).strip()}"
                f" per cpu.rt_period_us {read_file(os.path.join(parent, 'cpu.rt_period_us')).strip()}"
                f" in {parent}")
    except OSError:
        return f"see {parent}"


def _rt_budget_of(path: str) -> tuple[int, int]:
    """(cpu.rt_period_us, cpu.rt_runtime_us) of a v1 cpu cgroup."""
    return (int(read_file(os.path.join(path, "cpu.rt_period_us"))),
            int(read_file(os.path.join(path, "cpu.rt_runtime_us"))))


def _try_write(path: str, value: str) -> None:
    """A write whose failure leaves nothing worse: the caller has a better error to report,
    or keeps what is still needed."""
    try:
        write_file(path, value)
    except OSError:
        pass


def _zero_rt(path: str) -> None:
    """Take back the real-time budget of a container's emptied cpu cgroups, deepest first."""
    for top, _dirs, _files in os.walk(path, topdown=False):
        _try_write(os.path.join(top, "cpu.rt_runtime_us"), "0")


def _child_cgroups(path: str) -> list[str]:
    return [entry.path for entry in os.scandir(path) if entry.is_dir(follow_symlinks=False)]


def _is_top(path: str) -> bool:
    """The root of the hierarchy (as far as this mount shows it): its budget is the host's."""
    parent = os.path.dirname(path)
    return (not os.path.exists(os.path.join(path, "cpu.rt_runtime_us"))
            or os.stat(path).st_dev != os.stat(parent).st_dev)
