"""Layers: safe unpacking, chain ids, and the diff of a writable layer.

Each layer is unpacked once, into `<root>/layers/<chain id hex>/fs`, by walking the tar stream
and creating every entry relative to directory file descriptors opened with O_NOFOLLOW, so no
entry can land outside its directory through `..`, an absolute name, or a symlink planted by an
earlier entry (the CVE-2018-15664 family). Whiteouts become what overlayfs understands: `.wh.X`
a 0:0 character device named X, `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its
directory. The decompressed stream is checked against the config's diff id at EOF.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pyctr.errors import LayerError, UnsupportedMedia
from pyctr.image.content import VerifiedReader
from pyctr.image.store import Store, flocked

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_CHUNK = 1 << 20


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        if out:
            diff_id = "sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest()
        out.append(diff_id)
    return out


def decompressed(stream: IO[bytes]) -> IO[bytes]:
    """Undo the layer's compression, recognised by its magic number."""
    buffered: Any = stream if hasattr(stream, "peek") else io.BufferedReader(stream, _CHUNK)  # type: ignore[type-var]
    magic = buffered.peek(4)[:4]
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    if magic == b"\x28\xb5\x2f\xfd":
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError as exc:
            raise UnsupportedMedia("zstd layers need the `zstandard` module") from exc
        return zstandard.ZstdDecompressor().stream_reader(buffered)  # type: ignore[no-any-return]
    return buffered  # type: ignore[no-any-return]


def unpack(store: Store, blob: dict[str, Any], diff_id: str, chain_id: str) -> Path:
    """The unpacked directory of a layer, unpacking it first if no one has yet."""
    final = store.layers / chain_id.removeprefix("sha256:")
    if final.is_dir():
        return final / "fs"
    with flocked(store.layers / f".lock-{final.name}"):
        if final.is_dir():
            return final / "fs"
        tmp = Path(tempfile.mkdtemp(dir=store.layers, prefix=".tmp-"))
        try:
            (tmp / "fs").mkdir()
            reader = store.open_blob(blob["digest"], blob.get("size"))
            with contextlib.closing(reader):
                raw = decompressed(reader)  # type: ignore[arg-type]
                tar_stream = VerifiedReader(raw, diff_id, None)
                extract(tar_stream, tmp / "fs")
                tar_stream.drain()
                reader.drain()
            (tmp / "diff_id").write_text(diff_id)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final / "fs"


def split_name(name: str) -> list[str]:
    """The path components of a member name, refusing any `..`."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerError(f"refusing {name!r}: path escapes the layer")
    return parts


def open_dir(root_fd: int, parts: list[str], create: bool) -> int:
    """A descriptor of root/parts, never following a symlink on the way."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise LayerError(f"refusing {'/'.join(parts)!r}: goes through a symlink or a file") from exc
        raise
    return fd


def _remove(dir_fd: int, name: str, keep_dir: bool = False) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not keep_dir:
            shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


class _Extractor:
    def __init__(self, tar: tarfile.TarFile, root_fd: int) -> None:
        self.tar = tar
        self.root_fd = root_fd
        self.privileged = os.geteuid() == 0
        self.dirs: list[tuple[list[str], tarfile.TarInfo]] = []

    def member(self, m: tarfile.TarInfo) -> None:
        parts = split_name(m.name)
        if not parts:
            return
        pfd = open_dir(self.root_fd, parts[:-1], create=True)
        try:
            self._create(m, pfd, parts)
        finally:
            os.close(pfd)

    def _create(self, m: tarfile.TarInfo, pfd: int, parts: list[str]) -> None:
        name = parts[-1]
        if name == OPAQUE:
            self._set_opaque(pfd)
        elif name.startswith(WHITEOUT_PREFIX):
            self._whiteout(pfd, name[len(WHITEOUT_PREFIX):])
        elif m.isdir():
            _remove(pfd, name, keep_dir=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=pfd)
            self.dirs.append((parts, m))
        elif m.isreg():
            _remove(pfd, name)
            self._regular(m, pfd, name)
        elif m.issym():
            _remove(pfd, name)
            os.symlink(m.linkname, name, dir_fd=pfd)
            self._owner_times(m, name, pfd)
        elif m.islnk():
            _remove(pfd, name)
            self._hardlink(m, pfd, name)
        elif m.ischr() or m.isblk() or m.isfifo():
            _remove(pfd, name)
            self._device(m, pfd, name)
        else:
            raise LayerError(f"unsupported tar entry type {m.type!r} for {m.name!r}")

    def _set_opaque(self, pfd: int) -> None:
        for key in OPAQUE_XATTRS if self.privileged else OPAQUE_XATTRS[1:]:
            try:
                os.setxattr(pfd, key, b"y")
                return
            except PermissionError:
                continue
        raise LayerError("cannot mark an opaque directory (needs trusted.* xattrs)")

    def _whiteout(self, pfd: int, target: str) -> None:
        if target in ("", ".", "..") or "/" in target:
            raise LayerError(f"invalid whiteout for {target!r}")
        _remove(pfd, target)
        try:
            os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
        except PermissionError as exc:
            raise LayerError("whiteouts need CAP_MKNOD (run as root)") from exc

    def _regular(self, m: tarfile.TarInfo, pfd: int, name: str) -> None:
        src = self.tar.extractfile(m)
        assert src is not None
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=pfd)
        try:
            while chunk := src.read(_CHUNK):
                os.write(fd, chunk)
            self._metadata(m, fd)
        finally:
            os.close(fd)

    def _hardlink(self, m: tarfile.TarInfo, pfd: int, name: str) -> None:
        target = split_name(m.linkname)
        if not target:
            raise LayerError(f"hardlink {m.name!r} to the layer root")
        try:
            tfd = open_dir(self.root_fd, target[:-1], create=False)
        except FileNotFoundError as exc:
            raise LayerError(f"hardlink {m.name!r} to missing {m.linkname!r}") from exc
        try:
            os.link(target[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError as exc:
            raise LayerError(f"hardlink {m.name!r} to missing {m.linkname!r}") from exc
        finally:
            os.close(tfd)

    def _device(self, m: tarfile.TarInfo, pfd: int, name: str) -> None:
        kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
        try:
            os.mknod(name, kind | (m.mode & 0o7777), os.makedev(m.devmajor, m.devminor),
                     dir_fd=pfd)
        except PermissionError as exc:
            raise LayerError(f"cannot create device {m.name!r} without CAP_MKNOD") from exc
        self._owner_times(m, name, pfd)
        os.chmod(name, m.mode & 0o7777, dir_fd=pfd)

    def _metadata(self, m: tarfile.TarInfo, fd: int) -> None:
        if self.privileged:
            os.fchown(fd, m.uid, m.gid)
        # chown clears set-id bits, so the mode comes after it.
        os.fchmod(fd, m.mode & 0o7777)
        for key, value in m.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                self._xattr(fd, key[len("SCHILY.xattr."):], value)
        os.utime(fd, (m.mtime, m.mtime))

    def _xattr(self, fd: int, key: str, value: str) -> None:
        # A layer must not forge overlayfs' own metadata.
        if key.startswith(("trusted.overlay.", "user.overlay.")):
            return
        try:
            os.setxattr(fd, key, value.encode("utf-8", "surrogateescape"))
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise

    def _owner_times(self, m: tarfile.TarInfo, name: str, pfd: int) -> None:
        if self.privileged:
            os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        os.utime(name, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        """Directory modes and times last: children would change the times, modes block writes."""
        for parts, m in reversed(self.dirs):
            fd = open_dir(self.root_fd, parts, create=False)
            try:
                self._metadata(m, fd)
            finally:
                os.close(fd)


def extract(stream: IO[bytes] | VerifiedReader, dest: Path) -> None:
    """Unpack an uncompressed tar stream into the empty directory `dest`."""
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            ex = _Extractor(tar, root_fd)
            for m in tar:
                ex.member(m)
            ex.finish()
    except tarfile.TarError as exc:
        raise LayerError(f"bad layer tarball: {exc}") from exc
    finally:
        os.close(root_fd)


# --- the diff of a writable layer (commit) ------------------------------------------------


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    for key in OPAQUE_XATTRS:
        with contextlib.suppress(OSError):
            if os.getxattr(path, key, follow_symlinks=False) == b"y":
                return True
    return False


def write_diff(upper: Path, out: IO[bytes]) -> None:
    """Write the overlay upper dir as a layer tarball: whiteouts back to `.wh.` names."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path, arc in _iter_sorted(upper):
            st = os.lstat(path)
            head, _, base = arc.rpartition("/")
            prefix = head + "/" if head else ""
            if _is_whiteout(st):
                tar.addfile(_marker(prefix + WHITEOUT_PREFIX + base, st))
                continue
            info = tar.gettarinfo(path, arc)
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            if info.isdir() and _is_opaque(path):
                tar.addfile(_marker(arc + "/" + OPAQUE, st))


def _iter_sorted(top: Path) -> Iterator[tuple[str, str]]:
    def rec(path: str, rel: str) -> Iterator[tuple[str, str]]:
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            arc = rel + entry.name
            yield entry.path, arc
            if entry.is_dir(follow_symlinks=False):
                yield from rec(entry.path, arc + "/")
    yield from rec(str(top), "")


def _marker(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = int(st.st_mtime)
    info.mode = 0o644
    return info
