"""Image operations on the store: commit, rmi, prune.

`commit` turns a container's overlay upper directory into one more layer (deletions become
`.wh.` whiteouts, opaque directories `.wh..wh..opq`), appends its diff id and a history entry to
a copy of the image config, and names a new OCI manifest.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any

from pyctr.errors import ContainerError, NotFound
from pyctr.image import layers
from pyctr.image.content import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    descriptor,
)
from pyctr.image.store import SOURCE_KEY, Image, Store, now
from pyctr.ops.containers import Container, Containers

_OCI_EQUIVALENT = {DOCKER_LAYER_GZIP: OCI_LAYER_GZIP, DOCKER_CONFIG: OCI_CONFIG,
                   "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.oci.image.layer.v1.tar"}


class _HashWriter:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def diff_layer(store: Store, upper: Path) -> tuple[dict[str, Any], str]:
    """Write the upper dir as a gzip layer blob; (descriptor, diff id)."""
    fd, tmp = tempfile.mkstemp(dir=store.blobs, prefix=".ingest-")
    try:
        with os.fdopen(fd, "wb") as f:
            compressed = _HashWriter(f)
            with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0) as gz:  # type: ignore[arg-type]
                plain = _HashWriter(gz)  # type: ignore[arg-type]
                layers.write_diff(upper, plain)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, store.blob_path(compressed.digest))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    desc = {"mediaType": OCI_LAYER_GZIP, "digest": compressed.digest, "size": compressed.size}
    return desc, plain.digest


def image_of(store: Store, c: Container) -> tuple[dict[str, Any], Image | None]:
    manifest = store.read_json({"digest": c.image_digest})
    named = next((img for img in store.images() if img.digest == c.image_digest), None)
    return manifest, named


def commit(store: Store, cs: Containers, c: Container, name: str, message: str = "",
           author: str = "") -> Image:
    if c.rootfs_mode != "overlay":
        raise ContainerError("commit needs a container whose rootfs is an overlay mount")
    manifest, base = image_of(store, c)
    config = copy.deepcopy(store.config(manifest))
    with store.gc_lock():
        layer, diff_id = diff_layer(store, cs.path(c.id) / "upper")
        created = now()
        config["created"] = created
        config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(diff_id)
        entry = {"created": created, "created_by": f"pyctr commit {c.short_id}"}
        entry |= {"comment": message} if message else {}
        entry |= {"author": author} if author else {}
        config.setdefault("history", []).append(entry)
        config_bytes = json.dumps(config).encode()
        store.put_bytes(config_bytes)
        new_manifest = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config_bytes),
            "layers": [{**lay, "mediaType": _OCI_EQUIVALENT.get(lay["mediaType"], lay["mediaType"])}
                       for lay in manifest.get("layers", [])] + [layer],
        }
        data = json.dumps(new_manifest).encode()
        store.put_bytes(data)
        source = ((base.descriptor.get("annotations") or {}).get(SOURCE_KEY) if base else None)
        store.add_ref(name, descriptor(OCI_MANIFEST, data), source=source)
    return store.lookup(name)


def chain_ids_of(store: Store, img: Image) -> list[str]:
    config = store.config(store.manifest(img))
    return layers.chain_ids(list(config.get("rootfs", {}).get("diff_ids", [])))


def prune(store: Store, cs: Containers) -> tuple[list[str], list[str]]:
    """Delete blobs and unpacked layers no image or container refers to."""
    with store.gc_lock(exclusive=True):
        keep_blobs = store.reachable_blobs()
        keep_layers: set[str] = set()
        for img in store.images():
            with contextlib.suppress(NotFound):
                keep_layers.update(chain_ids_of(store, img))
        for c in cs.all():
            keep_blobs.add(c.image_digest)
            keep_layers.update(c.chain_ids)
            with contextlib.suppress(NotFound):
                manifest = store.read_json({"digest": c.image_digest})
                keep_blobs.add(manifest["config"]["digest"])
                keep_blobs.update(lay["digest"] for lay in manifest.get("layers", []))
        _remove_stale_temps(store)
        return (store.remove_blobs_except(keep_blobs),
                store.remove_layer_dirs_except(keep_layers))


def prune_build_cache(store: Store, everything: bool = False) -> list[str]:
    """Remove `pyctr build`'s cache entries (<root>/buildcache/<key>.json) that name a layer
    no image holds (whose blob `prune` deletes, or has deleted: such an entry can never hit
    again), or every entry (`builder prune -a`); the keys removed. Under the exclusive gc
    lock, which every build holds shared, so no build is reading them."""
    cache = store.root / "buildcache"
    removed = []
    with store.gc_lock(exclusive=True):
        keep = store.reachable_blobs()
        for entry in sorted(cache.glob("*.json")) if cache.is_dir() else []:
            try:
                named = {layer["digest"] for layer in json.loads(entry.read_bytes())["layers"]}
            except (OSError, ValueError, KeyError, TypeError):
                named = {""}  # unreadable: of no use to a build
            if everything or not named <= keep:
                entry.unlink(missing_ok=True)
                removed.append(entry.stem)
    return removed


def _remove_stale_temps(store: Store) -> None:
    """Under the exclusive gc lock no pull is running: temp files left are from crashes."""
    import shutil

    for path in store.layers.glob(".tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in store.blobs.glob(".ingest-*"):
        path.unlink(missing_ok=True)


def remove_image(store: Store, cs: Containers, text: str, force: bool = False) -> list[str]:
    """Untag an image (every name of it when given by id); returns the untagged names."""
    img = store.lookup(text)
    names = [img.name] if _is_name(store, text, img) else [
        i.name for i in store.images() if i.digest == img.digest]
    if len(names) > 1 and not force:
        raise ContainerError(f"image {text} is referenced by several names (use -f): "
                             + ", ".join(names))
    remaining = [i for i in store.images() if i.digest == img.digest and i.name not in names]
    if not remaining and not force:
        users = [c.name for c in cs.all() if c.image_digest == img.digest]
        if users:
            raise ContainerError(f"image {text} is used by container {users[0]} (use -f)")
    for name in names:
        store.remove_ref(name)
    return names


def _is_name(store: Store, text: str, img: Image) -> bool:
    from pyctr.errors import InvalidReference
    from pyctr.image import reference

    try:
        return str(reference.parse(text)) == img.name
    except InvalidReference:
        return False
