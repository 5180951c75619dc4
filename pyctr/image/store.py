"""The image store: an OCI image layout under `--root`.

    <root>/oci-layout, index.json     the layout; index.json lists one manifest per name
    <root>/blobs/sha256/<hex>         content-addressed blobs, written temp + fsync + rename
    <root>/layers/<chain-id hex>/     layers unpacked once each (see pyctr.image.layers)
    <root>/containers/<id>/           containers (see pyctr.ops.containers)
    <root>/volumes/<name>/_data       named volumes (see pyctr.image.volumes)
    <root>/buildcache/<key>.json      `pyctr build`'s cache, <root>/build/ its snapshots
                                      (see pyctr.ops.build)

The store is root's alone: the root and the directories that hold layers, containers, volumes
and runtime state are 0700, and so is each container's directory (docker keeps /var/lib/docker
0710 and its container directories 0700). A container's root may leave a setuid-root binary in
its writable layer; were the path to that layer walkable by any host user, the binary would run
on the host as root. The modes are set as the directories are made, under a restrictive umask so
that no window exists, and set again each time a Store is opened, which mends a store made
before (`restrict`).

index.json entries carry the full reference in `io.containerd.image.name` (as containerd does)
and the tag in `org.opencontainers.image.ref.name`. Every change to index.json happens under an
exclusive flock of `.index.lock`; pulls and container creation hold `.gc.lock` shared so that
`image prune`, which holds it exclusively, never deletes what they are still putting together.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyctr.errors import InvalidReference, NotFound, PyctrError
from pyctr.image import reference
from pyctr.image.content import (
    INDEX_TYPES,
    VerifiedReader,
    check_digest,
    copy_verified,
    sha256_digest,
)

NAME_KEY = "io.containerd.image.name"
TAG_KEY = "org.opencontainers.image.ref.name"
SOURCE_KEY = "io.pyctr.source"
DEFAULT_ROOT = Path("/var/lib/pyctr")
PRIVATE = 0o700
PRIVATE_DIRS = ("layers", "containers", "volumes", "runtime")


@contextlib.contextmanager
def restrictive_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def private_dir(path: Path, mode: int = PRIVATE) -> None:
    """Make `path` (a directory, not a symlink) with `mode`, or set `mode` on the existing one."""
    with restrictive_umask():
        path.mkdir(mode=mode, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if os.fstat(fd).st_mode & 0o7777 != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def flocked(path: Path, kind: int = fcntl.LOCK_EX) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, kind)
        yield fd
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Image:
    """A name in index.json and the manifest it points at."""

    name: str
    descriptor: dict[str, Any]

    @property
    def digest(self) -> str:
        return str(self.descriptor["digest"])


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.layers = root / "layers"
        self.containers = root / "containers"
        self._added: list[Path] | None = None
        self.restrict()
        self.blobs.mkdir(parents=True, exist_ok=True)
        if not (root / "oci-layout").exists():
            atomic_write(root / "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        if not (root / "index.json").exists():
            with self.index_lock():
                if not (root / "index.json").exists():
                    self._write_index({"schemaVersion": 2, "manifests": []})

    def restrict(self) -> None:
        """The modes of the module docstring, on a new store or one an older pyctr made."""
        private_dir(self.root)
        for name in PRIVATE_DIRS:
            private_dir(self.root / name)
        for entry in os.scandir(self.containers):
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                private_dir(Path(entry.path))

    # --- locks ----------------------------------------------------------------------------

    def index_lock(self) -> contextlib.AbstractContextManager[int]:
        return flocked(self.root / ".index.lock")

    def gc_lock(self, exclusive: bool = False) -> contextlib.AbstractContextManager[int]:
        return flocked(self.root / ".gc.lock", fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)

    # --- blobs ----------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        algo, hexpart = check_digest(digest)
        return self.root / "blobs" / algo / hexpart

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    @contextlib.contextmanager
    def undo_on_error(self) -> Iterator[None]:
        """Blobs this store adds inside the block are removed again if the block fails, so a
        load cut short (ENOSPC, EIO, a corrupt archive) leaves the store as it was."""
        outer, self._added = self._added, []
        try:
            yield
        except BaseException:
            for path in reversed(self._added):
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        finally:
            if outer is not None:
                outer.extend(self._added)
            self._added = outer

    def _added_blob(self, path: Path) -> None:
        if self._added is not None:
            self._added.append(path)

    def ingest(self, reader: VerifiedReader, progress: Callable[[int], None] | None = None) -> Path:
        """Copy a verified stream into the store; the blob appears only once verified."""
        final = self.blob_path(reader.digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".ingest-")
        try:
            with os.fdopen(fd, "wb") as f:
                copy_verified(reader, f, progress)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            existed = final.exists()
            os.rename(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if not existed:
            self._added_blob(final)
        return final

    def put_bytes(self, data: bytes) -> str:
        digest = sha256_digest(data)
        if not self.has_blob(digest):
            atomic_write(self.blob_path(digest), data)
            self._added_blob(self.blob_path(digest))
        return digest

    def open_blob(self, digest: str, size: int | None = None) -> VerifiedReader:
        try:
            f = open(self.blob_path(digest), "rb")  # noqa: SIM115 - closed with the reader
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest} is not in the store") from exc
        reader = VerifiedReader(f, digest, size)
        reader.close = f.close  # type: ignore[method-assign]
        return reader

    def read_blob(self, digest: str, size: int | None = None) -> bytes:
        reader = self.open_blob(digest, size)
        try:
            return reader.read()
        finally:
            reader.close()

    def read_json(self, desc: dict[str, Any]) -> dict[str, Any]:
        data = json.loads(self.read_blob(desc["digest"], desc.get("size")))
        if not isinstance(data, dict):
            raise PyctrError(f"{desc['digest']} is not a JSON object")
        return data

    # --- index.json -----------------------------------------------------------------------

    def _read_index(self) -> dict[str, Any]:
        return json.loads((self.root / "index.json").read_bytes())  # type: ignore[no-any-return]

    def _write_index(self, index: dict[str, Any]) -> None:
        atomic_write(self.root / "index.json", json.dumps(index, indent=2).encode())

    def images(self) -> list[Image]:
        out = []
        for desc in self._read_index().get("manifests", []):
            name = (desc.get("annotations") or {}).get(NAME_KEY)
            out.append(Image(name or "", desc))
        return out

    def add_ref(self, name: str, desc: dict[str, Any], source: str | None = None) -> None:
        self.add_refs([(name, desc)], source)

    def add_refs(self, refs: list[tuple[str, dict[str, Any]]], source: str | None = None) -> None:
        """Name manifests, all in one write of index.json (all or none of them)."""
        entries = {}
        for name, desc in refs:
            ref = reference.parse(name)
            annotations = {NAME_KEY: str(ref)}
            if ref.tag:
                annotations[TAG_KEY] = ref.tag
            if source:
                annotations[SOURCE_KEY] = source
            entry: dict[str, Any] = {k: desc[k] for k in ("mediaType", "digest", "size", "platform")
                                     if k in desc}
            entry["annotations"] = annotations
            entries[str(ref)] = entry
        with self.index_lock():
            index = self._read_index()
            kept = [d for d in index.get("manifests", [])
                    if (d.get("annotations") or {}).get(NAME_KEY) not in entries]
            index["manifests"] = [*kept, *entries.values()]
            self._write_index(index)

    def remove_ref(self, name: str) -> None:
        with self.index_lock():
            index = self._read_index()
            before = index.get("manifests", [])
            after = [d for d in before if (d.get("annotations") or {}).get(NAME_KEY) != name]
            if len(after) == len(before):
                raise NotFound(f"No such image: {name}")
            index["manifests"] = after
            self._write_index(index)

    def lookup(self, text: str) -> Image:
        """An image by reference, by manifest digest, or by (a prefix of) its image id."""
        images = self.images()
        with contextlib.suppress(InvalidReference):
            name = str(reference.parse(text))
            for img in images:
                if img.name == name:
                    return img
        ident = text.removeprefix("sha256:")
        if len(ident) >= 4 and all(c in "0123456789abcdef" for c in ident):
            matches = {img.digest: img for img in images
                       if img.digest.removeprefix("sha256:").startswith(ident)
                       or self.image_id(img).removeprefix("sha256:").startswith(ident)}
            if len(matches) == 1:
                return next(iter(matches.values()))
        raise NotFound(f"No such image: {text}")

    def manifest(self, img: Image) -> dict[str, Any]:
        return self.read_json(img.descriptor)

    def image_id(self, img: Image) -> str:
        """The config digest, which docker shows as the image ID."""
        return str(self.manifest(img)["config"]["digest"])

    def config(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return self.read_json(manifest["config"])

    # --- garbage collection ---------------------------------------------------------------

    def reachable_blobs(self) -> set[str]:
        seen: set[str] = set()
        todo = [d for d in self._read_index().get("manifests", [])]
        while todo:
            desc = todo.pop()
            if desc["digest"] in seen or not self.has_blob(desc["digest"]):
                continue
            seen.add(desc["digest"])
            if desc.get("mediaType") in INDEX_TYPES:
                todo += self.read_json(desc).get("manifests", [])
            elif desc.get("mediaType", "").endswith("json") and "manifest" in desc.get("mediaType", ""):
                doc = self.read_json(desc)
                todo.append(doc["config"] | {"mediaType": "config"})
                seen.update(layer["digest"] for layer in doc.get("layers", []))
        return seen

    def remove_blobs_except(self, keep: set[str]) -> list[str]:
        removed = []
        for path in self.blobs.iterdir():
            digest = "sha256:" + path.name
            if path.name.startswith(".") or digest in keep:
                continue
            path.unlink()
            removed.append(digest)
        return removed

    def remove_layer_dirs_except(self, keep: set[str]) -> list[str]:
        removed = []
        for path in self.layers.iterdir():
            if "sha256:" + path.name not in keep and not path.name.startswith("."):
                shutil.rmtree(path)
                (self.layers / f".lock-{path.name}").unlink(missing_ok=True)
                removed.append("sha256:" + path.name)
        return removed


def now() -> str:
    """The time records in the store carry: RFC 3339, UTC, as docker writes it."""
    import datetime

    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
