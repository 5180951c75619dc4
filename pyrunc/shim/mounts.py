"""The rootfs mounts of a Create request (the snapshotter's overlay or bind), on <bundle>/rootfs.

As containerd's runc shim: mounted in the shim's own mount namespace before the container is
created, in the order given, and unmounted (every mount stacked there) when the task is deleted.
"""

from __future__ import annotations

from pyrunc._typing import MYPY
from pyrunc.errors import MountError, SpecError
from pyrunc.linux import rootfs
from pyrunc.shim import ttrpc, wire
from pyrunc.sys import linux
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.shim.wire import Msg


def plan(mount: Msg, index: int) -> tuple[str, str | None, int, str]:
    """(source, fstype, flags, data) of one containerd.types.Mount."""
    try:
        op = rootfs.parse_options(wire.texts(mount, "options"), f"rootfs[{index}].options")
    except SpecError as exc:
        raise ttrpc.RpcError(ttrpc.INVALID_ARGUMENT, str(exc)) from exc
    fstype = wire.text(mount, "type")
    if fstype == "bind" or op.is_bind:
        return wire.text(mount, "source"), None, op.flags | linux.MS_BIND, ""
    return wire.text(mount, "source"), fstype or None, op.flags, op.data


def mount_rootfs(mounts: list[Msg], target: str) -> str:
    os.makedirs(target, 0o711, exist_ok=True)
    done = 0
    try:
        for i, mnt in enumerate(mounts):
            source, fstype, flags, data = plan(mnt, i)
            try:
                linux.mount(source, target, fstype, flags & ~linux.MS_RDONLY
                            if fstype is None else flags, data or None)
                if fstype is None and flags & linux.MS_RDONLY:  # a read-only bind: a remount
                    linux.mount(None, target, None,
                                linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY, None)
            except OSError as exc:
                raise MountError(f"rootfs[{i}]: mount {source} on {target} "
                                 f"({linux.mount_flag_names(flags)}): {exc.strerror}") from exc
            done += 1
    except (MountError, ttrpc.RpcError) as exc:
        if done:
            unmount_rootfs(target)
        if isinstance(exc, MountError):
            raise ttrpc.RpcError(ttrpc.UNKNOWN, str(exc)) from exc
        raise
    return target


def unmount_rootfs(target: str) -> None:
    """Unmount everything stacked on target (EINVAL: nothing left there)."""
    for _ in range(64):
        try:
            linux.umount2(target, linux.MNT_DETACH)
        except OSError:
            return
