"""A build's context directory: `.dockerignore`, COPY/ADD sources, their digest and their tar.

Sources are resolved inside the context as docker does: a symlink on the way is followed, but
only within the context (`..` and absolute targets are clamped at its root, as
`pyctr.driver.paths.secure_join` does for rootfs paths); symlinks inside a copied directory are
copied as symlinks. Patterns are Go's `filepath.Match` plus `**`, as moby's patternmatcher: the
last matching line wins, `!` re-includes, and a directory that is excluded takes its content
with it unless a later `!` line names something inside.

What a COPY adds is written as a tar stream (names relative to the image's root, owners from
`--chown` or 0:0) and unpacked with pyctr.image.layers' extractor, which never follows a symlink
out of the root; the same stream's content, without mtimes, is the step's cache digest.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pyctr.driver.paths import secure_join

_CHUNK = 1 << 20


# --- .dockerignore ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    exclusion: bool  # a `!` line
    dirs: tuple[str, ...]  # the pattern's literal leading directories


def _clean(path: str) -> str:
    return os.path.normpath(path.strip()).lstrip("/") or "."


def _to_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # `**/` matches zero or more directories
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"bad pattern {pattern!r}")
            body = pattern[i + 1:end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
            i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("^" + "".join(out) + "$")


class Ignore:
    """The patterns of a context's `.dockerignore` (none when it has no such file)."""

    def __init__(self, lines: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            text = _clean(line[1:] if exclusion else line)
            literal_dirs = tuple(p for p in text.split("/")[:-1] if not any(c in p for c in "*?[\\"))
            self.patterns.append(_Pattern(_to_regex(text), exclusion, literal_dirs))

    @classmethod
    def of(cls, context: Path) -> Ignore:
        try:
            return cls((context / ".dockerignore").read_text().splitlines())
        except FileNotFoundError:
            return cls([])

    def excluded(self, rel: str) -> bool:
        """Whether `rel` (relative to the context) or a parent directory of it is ignored."""
        rel = _clean(rel)
        parts = rel.split("/")
        parents = ["/".join(parts[:n]) for n in range(1, len(parts))]
        matched = False
        for p in self.patterns:
            if p.regex.match(rel) or any(p.regex.match(d) for d in parents):
                matched = not p.exclusion
        return matched

    def may_reinclude_under(self, rel: str) -> bool:
        """Whether a `!` line could re-include something below the ignored directory `rel`."""
        rel = _clean(rel)
        return any(p.exclusion and (not p.dirs or "/".join(p.dirs).startswith(rel)
                                    or rel.startswith("/".join(p.dirs)))
                   for p in self.patterns)


# --- sources ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One file, directory or link to copy: where it is, and its name below the destination."""

    path: Path
    arcname: str


def _has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def resolve_sources(root: Path, pattern: str, ignore: Ignore | None) -> list[tuple[str, Path]]:
    """(name, path) of what a COPY source names in `root`: a glob matches names as they are in
    the context, one component at a time; symlinks are followed inside `root`; ignored paths
    are left out. `name` is the last component as matched (a link's own name)."""
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    found: list[tuple[str, Path]] = [(".", root)]
    for part in parts:
        nxt: list[tuple[str, Path]] = []
        for _, base in found:
            names = ([n for n in sorted(os.listdir(base)) if fnmatch.fnmatchcase(n, part)]
                     if _has_magic(part) else [part]) if base.is_dir() else []
            for n in names:
                nxt.append((n, secure_join(root, str((base / n).relative_to(root)))))
        found = nxt
    found = [(n, p) for n, p in found if os.path.lexists(p)]
    if ignore is not None:
        found = [(n, p) for n, p in found
                 if p == root or not ignore.excluded(str(p.relative_to(root)))]
    return found


def walk(root: Path, source: Path, prefix: str, ignore: Ignore | None) -> Iterator[Entry]:
    """`source` (a file: itself; a directory: its content, not itself) as entries under
    `prefix`, directories before what they hold, names sorted."""
    if not source.is_dir() or source.is_symlink():
        yield Entry(source, prefix)
        return
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        path = Path(entry.path)
        arc = f"{prefix}/{entry.name}" if prefix else entry.name
        rel = str(path.relative_to(root)) if path.is_relative_to(root) else ""
        if ignore is not None and rel and ignore.excluded(rel):
            if entry.is_dir(follow_symlinks=False) and ignore.may_reinclude_under(rel):
                yield from _reincluded(root, path, arc, ignore)
            continue
        yield Entry(path, arc)
        if entry.is_dir(follow_symlinks=False):
            yield from walk(root, path, arc, ignore)


def _reincluded(root: Path, top: Path, arc: str, ignore: Ignore) -> Iterator[Entry]:
    entries = list(walk(root, top, arc, None))
    kept = {e.arcname for e in entries if not ignore.excluded(str(e.path.relative_to(root)))}
    parents = {a.rsplit("/", n)[0] for a in kept for n in range(1, a.count("/") + 1)}
    for e in entries:
        if e.arcname in kept or e.arcname in parents:
            yield e


# --- the layer's tar stream and its digest ---------------------------------------------------


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


def tar_info(path: Path, arcname: str, owner: Owner | None, chmod: int | None) -> tarfile.TarInfo:
    st = os.lstat(path)
    info = tarfile.TarInfo(arcname)
    info.mode = stat.S_IMODE(st.st_mode)
    if chmod is not None and not stat.S_ISLNK(st.st_mode):
        info.mode = chmod
    info.mtime = int(st.st_mtime)
    info.uid, info.gid = (owner.uid, owner.gid) if owner else (0, 0)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
    elif stat.S_ISREG(st.st_mode):
        info.size = st.st_size
    else:
        raise ValueError(f"{path}: not a regular file, directory or symlink")
    return info


def write_tar(entries: list[Entry], out: IO[bytes], owner: Owner | None,
              chmod: int | None) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tar_info(e.path, e.arcname, owner, chmod)
            if info.isreg():
                with open(e.path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def digest(entries: list[Entry]) -> str:
    """What the entries hold: names, types, modes, link targets and contents (not mtimes nor
    the context's owners, which COPY does not keep)."""
    h = hashlib.sha256()
    for e in entries:
        st = os.lstat(e.path)
        h.update(f"{e.arcname}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(e.path).encode() + b"\0")
        elif stat.S_ISREG(st.st_mode):
            with open(e.path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
            h.update(b"\0")
    return "sha256:" + h.hexdigest()


def is_archive(path: Path) -> bool:
    """ADD unpacks local tar archives (plain, gzip, bzip2, xz), recognised by content."""
    if not path.is_file():
        return False
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False
