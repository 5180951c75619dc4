"""A container's root filesystem: overlayfs of the image's read-only layers plus its own upper.

Where overlayfs cannot be mounted (no kernel support, or a store on a filesystem that refuses
it as an upper), the layers are applied one by one into a plain directory instead, interpreting
the whiteouts the way overlayfs would.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from pyctr.errors import ContainerError
from pyctr.image import layers
from pyctr.image.store import Store

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
MNT_DETACH = 2


def mount(source: str, target: Path, fstype: str, flags: int = 0, data: str = "") -> None:
    if _libc.mount(source.encode(), str(target).encode(), fstype.encode(), flags,
                   data.encode() or None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype} on {target}: {os.strerror(err)}")


def umount(target: Path) -> None:
    if _libc.umount2(str(target).encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def is_mountpoint(path: Path) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == str(path) for line in f)
    except OSError:
        return False


def image_layers(store: Store, manifest: dict[str, Any], config: dict[str, Any]) -> list[Path]:
    """The unpacked layer directories of an image, bottom first."""
    diff_ids = list(config.get("rootfs", {}).get("diff_ids", []))
    blobs = manifest.get("layers", [])
    if len(diff_ids) != len(blobs):
        raise ContainerError("image config and manifest disagree on the number of layers")
    chains = layers.chain_ids(diff_ids)
    return [layers.unpack(store, blob, diff, chain)
            for blob, diff, chain in zip(blobs, diff_ids, chains, strict=True)]


def overlay_options(lower: list[Path], upper: Path, work: Path) -> str:
    # overlayfs lists lowerdirs top first.
    lowers = ":".join(str(p) for p in reversed(lower))
    return f"lowerdir={lowers},upperdir={upper},workdir={work}"


def prepare(lower: list[Path], cdir: Path) -> str:
    """Mount (or copy) the rootfs at cdir/rootfs; returns "overlay" or "copy"."""
    rootfs, upper, work = cdir / "rootfs", cdir / "upper", cdir / "work"
    for d in (rootfs, upper, work):
        d.mkdir(exist_ok=True)
    if not lower:
        return "copy"
    try:
        mount("overlay", rootfs, "overlay", 0, overlay_options(lower, upper, work))
        return "overlay"
    except OSError:
        flatten(lower, rootfs)
        return "copy"


def release(cdir: Path) -> None:
    rootfs = cdir / "rootfs"
    if is_mountpoint(rootfs):
        umount(rootfs)


def flatten(lower: list[Path], dest: Path) -> None:
    """Apply layers bottom first into `dest`: whiteouts delete, opaque dirs hide what is below."""
    for layer in lower:
        _apply(layer, dest)


def _apply(src: Path, dest: Path) -> None:
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        st = entry.stat(follow_symlinks=False)
        target = dest / entry.name
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            _rm(target)
            continue
        if entry.is_dir(follow_symlinks=False):
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                _rm(target)
            if layers._is_opaque(entry.path):
                _rm(target)
            if not target.exists():
                target.mkdir()
            _apply(Path(entry.path), target)
            shutil.copystat(entry.path, target, follow_symlinks=False)
            os.chown(target, st.st_uid, st.st_gid)
            continue
        _rm(target)
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
            os.lchown(target, st.st_uid, st.st_gid)
        elif stat.S_ISREG(st.st_mode):
            shutil.copy2(entry.path, target, follow_symlinks=False)
            os.chown(target, st.st_uid, st.st_gid)
            os.chmod(target, stat.S_IMODE(st.st_mode))
        else:
            os.mknod(target, st.st_mode, st.st_rdev)
            os.chown(target, st.st_uid, st.st_gid)


def _rm(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
