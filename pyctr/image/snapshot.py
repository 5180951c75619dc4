"""Overlay snapshots for `pyctr build`: the layers so far, read-only, under a fresh upper dir.

Each step that changes files (RUN, COPY, ADD) mounts the image's unpacked layers as overlayfs
lower dirs with an empty upper, does its work in the merged view, unmounts, and the upper dir
becomes the step's layer (pyctr.image.layers.write_diff). The build runs in a mount namespace
of its own (`private_mounts`), so not even a SIGKILL can leave one of these mounts on the host.

A RUN step's container also gets an "init" lower dir on top, as dockerd does: the mount points
the runtime needs (/proc, /sys, /dev, /etc/hosts, /etc/hostname, /etc/resolv.conf) that the
image lacks, with each parent directory's owner, mode and times copied from the image, so that
the runtime never creates them in the upper dir and they never end up in a layer.

Redirects and metacopy are turned off where the kernel knows them: with either, the upper dir
no longer holds what changed (a renamed directory, or a file whose data is still below).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pyctr.errors import BuildError
from pyctr.image import layers, rootfs

CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
INIT_DIRS = ("proc", "sys", "dev")
INIT_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf")
_OFF = ("redirect_dir", "metacopy", "index")


def private_mounts() -> None:
    """Move this process into a new mount namespace whose mounts never propagate to the host's."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise BuildError(f"unshare(CLONE_NEWNS): {os.strerror(err)} (pyctr build needs root)")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        err = ctypes.get_errno()
        raise BuildError(f"making / private in the build's mount namespace: {os.strerror(err)}")


@dataclass
class Snapshot:
    top: Path

    @property
    def rootfs(self) -> Path:
        return self.top / "rootfs"

    @property
    def upper(self) -> Path:
        return self.top / "upper"


def _options(lowers: list[str], upper: Path, work: Path) -> str:
    extra = [f"{name}=off" for name in _OFF if Path(f"/sys/module/overlay/parameters/{name}").exists()]
    # overlayfs lists lower dirs top first
    return ",".join([f"lowerdir={':'.join(reversed(lowers))}", f"upperdir={upper}",
                     f"workdir={work}", *extra])


@contextlib.contextmanager
def mounted(workdir: Path, layer_root: Path, lowers: list[Path],
            init: bool = False) -> Iterator[Snapshot]:
    """An overlay of `lowers` (bottom first) at <tmp>/rootfs, the upper at <tmp>/upper; all of
    it is unmounted and removed on the way out."""
    snap = Snapshot(workdir / uuid.uuid4().hex[:16])
    for name in ("rootfs", "upper", "work", "empty"):
        (snap.top / name).mkdir(parents=True, mode=0o700)
    os.chmod(snap.upper, 0o755)
    os.chmod(snap.rootfs, 0o755)
    try:
        # Paths relative to the layer store keep the mount data under its one-page limit.
        names = [os.path.relpath(p, layer_root) if p.is_relative_to(layer_root) else str(p)
                 for p in lowers] or [str(snap.top / "empty")]
        if init:
            names.append(str(make_init(lowers, snap.top / "init")))
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.chdir(layer_root)
            rootfs.mount("overlay", snap.rootfs, "overlay", 0,
                         _options(names, snap.upper, snap.top / "work"))
        except OSError as exc:
            raise BuildError(f"cannot mount the build's overlay: {exc}") from exc
        finally:
            os.fchdir(cwd)
            os.close(cwd)
        try:
            yield snap
        finally:
            rootfs.umount(snap.rootfs)
    finally:
        shutil.rmtree(snap.top, ignore_errors=True)


def lookup(lowers: list[Path], rel: str) -> os.stat_result | None:
    """What the overlay of `lowers` would show at `rel` (lstat), without mounting it: the
    topmost layer that has it, unless a whiteout, an opaque directory or a non-directory on
    the way hides the layers below."""
    parts = [p for p in rel.split("/") if p]
    for layer in reversed(lowers):
        cur = layer
        for i, part in enumerate(parts):
            try:
                st = os.lstat(cur / part)
            except FileNotFoundError:
                if layers._is_opaque(str(cur)) and i > 0:
                    return None
                break
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return None
            if i == len(parts) - 1:
                return st
            if not stat.S_ISDIR(st.st_mode):
                return None
            cur = cur / part
    return None


def make_init(lowers: list[Path], init: Path) -> Path:
    """The init lower dir of a RUN step (see the module's docstring)."""
    init.mkdir(mode=0o755)
    times: dict[Path, os.stat_result] = {}
    for rel in (*INIT_DIRS, *INIT_FILES):
        if lookup(lowers, rel) is not None:
            continue
        parts = rel.split("/")
        if not _parents(lowers, init, parts[:-1], times):
            continue
        target = init.joinpath(*parts)
        if rel in INIT_DIRS:
            target.mkdir(mode=0o755)
        else:
            target.touch(mode=0o644)
    # last, as the entries made inside changed them
    for path, st in times.items():
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return init


def _parents(lowers: list[Path], init: Path, parts: list[str],
             times: dict[Path, os.stat_result]) -> bool:
    """Make init's copies of the parent directories; False when one is not a directory."""
    for n in range(1, len(parts) + 1):
        rel = "/".join(parts[:n])
        st = lookup(lowers, rel)
        target = init / rel
        if st is not None and not stat.S_ISDIR(st.st_mode):
            return False  # a symlink (/etc -> ...): the runtime resolves it inside the root
        if not target.exists():
            target.mkdir()
        mode, uid, gid = ((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) if st is not None
                          else (0o755, 0, 0))
        os.chown(target, uid, gid)
        os.chmod(target, mode)
        if st is not None:
            times[target] = st
    return True


def is_empty(upper: Path) -> bool:
    return not any(os.scandir(upper))
