"""`delete [--force]`: kill what is left, remove cgroups and state, run poststop.

As runc: a `stopped` or `created` container is deleted without --force (the waiting init is
killed); a running or paused one needs --force. `delete --force` of an id that does not exist
(never created, or already deleted) succeeds: engines call it to clean up, whatever happened before.
"""

import _signal  # the C module: signal.py wraps it in enums (+4 ms)
import time

from pyrunc import MYPY, container
from pyrunc.container import state
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.linux.cgroups import Manager
    from pyrunc.linux.cgroups.teardown import Cgroups


def delete(root: str, cid: str, force: bool = False) -> None:
    path = state.container_dir(root, cid)
    if not os.path.isdir(path):
        _not_found(cid, force)
        return
    with state.locked(root, cid, missing_ok=True) as fd:
        if fd is None or not os.path.isdir(path):  # deleted by another call meanwhile
            _not_found(cid, force)
            return
        try:
            c = container.Container.load(root, cid)
        except Exception as exc:  # (pyrunc.errors is loaded only when something fails)
            from pyrunc.errors import ContainerNotFound, StateError

            # A create that died before writing its state, or a state.json that is garbage:
            # with --force, remove what can be found; without, say what is wrong.
            if not force or not isinstance(exc, (ContainerNotFound, StateError)):
                raise
            mgr = _default_cgroup(cid)
            mgr.kill_all()
            mgr.destroy()
            state.remove_dir(path)
            return
        status = c.status()
        if status != "stopped" and not force:
            state.check_transition(status, "delete", cid)
        destroy(c)


def _not_found(cid: str, force: bool) -> None:
    if not force:
        from pyrunc.errors import ContainerNotFound

        raise ContainerNotFound(cid)
    from pyrunc import log  # (loaded only where a line may be written: it costs every delete)

    log.debug(f"delete --force {cid}: no such container, nothing to do")


def destroy(c: container.Container) -> None:
    """Kill every process of the container, wait for the init, remove its cgroups and state."""
    if c.alive():
        _kill_init(c)
    # With a pid namespace of its own, nothing of the container outlives its init: the kernel
    # kills every other process of the namespace and waits for them before the init is a zombie.
    # Only a container sharing a pid namespace can leave processes to kill (runc's rule too).
    alone = _own_pid_namespace(c) and not c.alive()
    if not (alone and _remove_cgroups_quickly(c)):
        _teardown_cgroups(c, kill=not alone)
    if c.data.get("hostMounts"):  # made under the rootfs in the runtime's own mount namespace
        from pyrunc.linux import rootfs

        rootfs.unmount_recorded(c.data["hostMounts"])
    state.remove_dir(c.dir)
    poststop(c)


def _remove_cgroups_quickly(c: container.Container) -> bool:
    """The usual end of an empty container: each of its cgroup directories, as state.json
    records them, removed by one rmdir, without loading pyrunc.linux.cgroups (the package and
    its teardown module: ~1M instructions, a third of a `delete`). It does what the teardown's
    `Cgroups.destroy` does first; False when the entry is not the plain kind teardown.load takes
    as it is (real-time budgets to give back, malformed), or an rmdir fails (sub-cgroups, a task
    still being released, no permission): the teardown then does the rest, and reports."""
    saved = c.data.get("cgroup")
    try:
        if not saved or saved.get("rt_grants") or any(len(row) != 5 for row in saved["devices"]):
            return False
        dirs = list(dict.fromkeys(saved["dirs"].values()))  # cpu and cpuacct may share one
    except (AttributeError, KeyError, TypeError):
        return False
    for path in dirs:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            continue
        except (OSError, TypeError):
            return False
    return True


def _teardown_cgroups(c: container.Container, kill: bool) -> None:
    try:
        mgr: Cgroups = c.cgroup_teardown() if c.data.get("cgroup") else _default_cgroup(c.id)
    except Exception as exc:
        from pyrunc.errors import PyruncError

        if not isinstance(exc, PyruncError):
            raise
        from pyrunc import log  # a damaged cgroup entry: the default place is the best guess

        log.warning(f"{c.id}: {exc}")
        mgr = _default_cgroup(c.id)
    if kill:
        mgr.kill_all()
    mgr.destroy()


def _own_pid_namespace(c: container.Container) -> bool:
    namespaces = c.config.get("linux", {}).get("namespaces", [])
    return any(ns.get("type") == "pid" and not ns.get("path") for ns in namespaces)


def _default_cgroup(cid: str) -> "Manager":
    """The cgroups of a container whose state says nothing usable: where create puts them."""
    from pyrunc.linux import cgroups

    return cgroups.new_manager(cid, {})


def _kill_init(c: container.Container) -> None:
    try:
        fd = os.pidfd_open(c.pid)
    except ProcessLookupError:
        return
    try:
        if not c.alive():  # the pid was recycled between the check and the open
            return
        try:
            _signal.pidfd_send_signal(fd, _signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while c.alive() and time.monotonic() < deadline:
            time.sleep(0.002)
    finally:
        os.close(fd)


def poststop(c: container.Container) -> None:
    hooks = c.config.get("hooks", {}).get("poststop", [])
    if hooks:
        from pyrunc import log
        from pyrunc.container import hooks as hookmod

        for failure in hookmod.run_all(hooks, "poststop", c.oci_state("stopped"), tolerate=True):
            log.warning(failure)
