"""Control groups: a container's cgroups on cgroup v1, hybrid and v2 hosts (cgroupfs driver).

    new_manager(cid, config["linux"])  validate, resolve the paths  -> Manager
    Manager.create() / apply(pid) / set(resources) / freeze() / kill_all() / destroy() ...
    from_state(manager.to_state())     the same Manager in a later call (state.json)

Modules: layout (what is mounted where), plan (resources -> files, pure), devices (allow-list, v1
transitions and the v2 eBPF program), rt (v1 real-time budgets of the parents), bpf (the bpf(2)
calls), manager (the executor), teardown (what delete and kill --all need: processes, freezer,
removal; the manager's base), stats (events --stats).

This package's own module loads nothing else (teardown.py is imported through it, by `delete`):
the manager and pyrunc.errors are imported by the functions that need them.
"""

from pyrunc import MYPY
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.linux.cgroups.layout import Layout
    from pyrunc.linux.cgroups.manager import CgroupState
    from pyrunc.linux.cgroups.manager import Manager as Manager
    from pyrunc.spec.types import Linux, Resources
else:
    def __getattr__(name: str) -> object:
        """`cgroups.Manager`, loaded when first asked for."""
        if name == "Manager":
            from pyrunc.linux.cgroups.manager import Manager

            return Manager
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["Manager", "from_state", "manager_for", "new_manager"]

SYSTEMD_RUNNING = "/run/systemd/system"


def new_manager(cid: str, linux: "Linux", *, systemd: bool = False,
                rootless: bool = False) -> "Manager":
    """A Manager for the container's cgroups (nothing is created until `create()`)."""
    linux = linux or {}
    path = linux.get("cgroupsPath")
    if systemd:
        _check_systemd(path)
    from pyrunc.linux.cgroups.layout import detect  # create, and delete of a damaged state only

    return manager_for(detect(), cid, linux, rootless=rootless)


def manager_for(layout: "Layout", cid: str, linux: "Linux", *,
                rootless: bool = False) -> "Manager":
    """new_manager on an explicit layout (tests use a cgroup2-only layout on a hybrid host)."""
    from pyrunc.errors import SpecError
    from pyrunc.linux.cgroups import devices
    from pyrunc.linux.cgroups.manager import Manager

    resources = linux.get("resources") or {}
    if not isinstance(resources, dict):
        raise SpecError("linux.resources: expected an object")
    path = _cgroups_path(linux.get("cgroupsPath"), cid)
    dirs = _resolve(layout, path)
    rows = [rule.row() for rule in devices.rules(linux)]
    _check_plan(layout, dirs, resources)
    return Manager(layout.mode, dirs, resources, rows, rootless=rootless,
                   v2_root=layout.unified)


def from_state(saved: "CgroupState") -> "Manager":
    """The Manager that `Manager.to_state()` describes."""
    from pyrunc.linux.cgroups.manager import Manager

    return Manager.from_state(saved)


def _check_systemd(path: object) -> None:
    from pyrunc.errors import CgroupError

    if not os.path.isdir(SYSTEMD_RUNNING):
        raise CgroupError("linux.cgroupsPath: the systemd cgroup driver was requested "
                          f"(--systemd-cgroup, {path!r}) but systemd is not running here "
                          f"({SYSTEMD_RUNNING} does not exist); use the cgroupfs driver")
    raise CgroupError("the systemd cgroup driver is not supported by pyrunc; use the cgroupfs "
                      "driver (no --systemd-cgroup)")


def _cgroups_path(path: object, cid: str) -> str:
    from pyrunc.errors import CgroupError, SpecError

    if path is None or path == "":
        return f"/pyrunc/{cid}"
    if not isinstance(path, str):
        raise SpecError(f"linux.cgroupsPath: expected a string, got {path!r}")
    parts = path.split("/")
    if ".." in parts or "\0" in path:
        raise CgroupError(f"linux.cgroupsPath: {path!r} must not contain '..'")
    return os.path.normpath(path) if path.startswith("/") else os.path.normpath(path).lstrip("/")


def _resolve(layout: "Layout", path: str) -> dict[str, str]:
    """hierarchy key -> absolute directory; relative paths start at our own cgroup."""
    mounts = dict(layout.v1)
    if layout.unified:
        mounts[""] = layout.unified
    dirs = {}
    for key, mount in mounts.items():
        rel = path if path.startswith("/") else os.path.join(layout.own_path(key), path)
        dirs[key] = os.path.normpath(mount + "/" + rel.lstrip("/"))
    return dirs


def _check_plan(layout: "Layout", dirs: dict[str, str], resources: "Resources") -> None:
    """Render once to validate the values and see that the controllers asked for exist."""
    from pyrunc.errors import CgroupError
    from pyrunc.linux.cgroups import plan  # not on the path of delete/pause/kill

    if layout.mode == "v2":
        entries = plan.render_v2(resources)
        offered = layout.controllers_v2()
        for entry in entries:
            ctrl = entry.file.split(".", 1)[0]
            if ctrl not in offered and not entry.optional and not entry.file.startswith("cgroup."):
                raise CgroupError(f"{entry.field}: the {ctrl} controller is not available in the "
                                  f"cgroup v2 hierarchy at {layout.unified}")
        return
    for entry in plan.render_v1(resources):
        if entry.controller not in dirs:
            where = " (it is on the cgroup2 mount, not v1)" if entry.controller in \
                layout.controllers_v2() else ""
            raise CgroupError(f"{entry.field}: the {entry.controller} cgroup controller is not "
                              f"available on this host{where}")
