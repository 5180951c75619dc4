"""`save` and `load`: images as docker-archive or oci-archive tarballs.

An oci-archive is an OCI image layout in a tar (names in `io.containerd.image.name`, tags in
`org.opencontainers.image.ref.name`). A docker-archive has `manifest.json` listing, per image,
its config file, RepoTags, and uncompressed `layer.tar` files in order.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import IO, Any

from pyctr.errors import InvalidReference, PyctrError
from pyctr.image import layers, platforms, reference
from pyctr.image.content import (
    INDEX_TYPES,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    VerifiedReader,
    descriptor,
    media_type_of,
)
from pyctr.image.store import NAME_KEY, TAG_KEY, Image, Store


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_blob(tar: tarfile.TarFile, store: Store, desc: dict[str, Any], seen: set[str]) -> None:
    if desc["digest"] in seen:
        return
    seen.add(desc["digest"])
    info = tarfile.TarInfo("blobs/sha256/" + desc["digest"].removeprefix("sha256:"))
    info.size = desc["size"]
    info.mode = 0o644
    reader = store.open_blob(desc["digest"], desc["size"])
    with contextlib.closing(reader):
        tar.addfile(info, reader)  # type: ignore[arg-type]
        reader.drain()


def save(store: Store, images: list[Image], output: Path, fmt: str) -> None:
    with tarfile.open(output, "w") as tar:
        if fmt == "oci":
            _save_oci(tar, store, images)
        else:
            _save_docker(tar, store, images)


def _save_oci(tar: tarfile.TarFile, store: Store, images: list[Image]) -> None:
    seen: set[str] = set()
    entries = []
    for img in images:
        manifest = store.manifest(img)
        for desc in (img.descriptor, manifest["config"], *manifest.get("layers", [])):
            _add_blob(tar, store, desc, seen)
        entry = {k: img.descriptor[k] for k in ("mediaType", "digest", "size")}
        ref = reference.parse(img.name) if img.name else None
        entry["annotations"] = {NAME_KEY: img.name, **({TAG_KEY: ref.tag} if ref and ref.tag else {})}
        entries.append(entry)
    _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    _add_bytes(tar, "index.json", json.dumps({"schemaVersion": 2, "manifests": entries}).encode())


def _save_docker(tar: tarfile.TarFile, store: Store, images: list[Image]) -> None:
    entries = []
    written: set[str] = set()
    for img in images:
        manifest = store.manifest(img)
        config_bytes = store.read_blob(manifest["config"]["digest"], manifest["config"]["size"])
        config = json.loads(config_bytes)
        config_name = manifest["config"]["digest"].removeprefix("sha256:") + ".json"
        if config_name not in written:
            _add_bytes(tar, config_name, config_bytes)
            written.add(config_name)
        paths = []
        for blob, diff_id in zip(manifest.get("layers", []), config["rootfs"]["diff_ids"], strict=True):
            path = diff_id.removeprefix("sha256:") + "/layer.tar"
            if path not in written:
                _add_uncompressed_layer(tar, store, blob, diff_id, path)
                written.add(path)
            paths.append(path)
        tags = [reference.parse(img.name).familiar()] if img.name and "@" not in img.name else []
        entries.append({"Config": config_name, "RepoTags": tags, "Layers": paths})
    _add_bytes(tar, "manifest.json", json.dumps(entries).encode())


def _add_uncompressed_layer(tar: tarfile.TarFile, store: Store, blob: dict[str, Any],
                            diff_id: str, path: str) -> None:
    with tempfile.TemporaryFile() as tmp:
        reader = store.open_blob(blob["digest"], blob["size"])
        with contextlib.closing(reader):
            plain = VerifiedReader(layers.decompressed(reader), diff_id, None)  # type: ignore[arg-type]
            while chunk := plain.read(1 << 20):
                tmp.write(chunk)
            reader.drain()
        info = tarfile.TarInfo(path)
        info.size = tmp.tell()
        info.mode = 0o644
        tmp.seek(0)
        tar.addfile(info, tmp)


# --- load -----------------------------------------------------------------------------------


def load(store: Store, path: Path) -> list[str]:
    """Load every image of an archive, or nothing: on any failure (a truncated or corrupt
    archive, ENOSPC or EIO in the store) the blobs already added are removed, no name is
    added, and one error names the archive and the cause."""
    try:
        with store.undo_on_error(), store.gc_lock():
            with tarfile.open(path, "r:*") as tar:
                names = tar.getnames()
                if "manifest.json" in names:
                    refs = _load_docker(store, tar)
                elif "index.json" in names:
                    refs = _load_oci(store, tar)
                else:
                    raise PyctrError("neither a docker-archive nor an oci-archive")
            store.add_refs(refs)
    except (OSError, EOFError, zlib.error, tarfile.TarError, ValueError, KeyError, TypeError,
            PyctrError) as exc:
        raise PyctrError(f"load {path}: {_cause(exc)}") from exc
    return [name for name, _ in refs]


def _cause(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or errno.errorcode.get(exc.errno, exc.errno)}{where}"
    if isinstance(exc, tarfile.TarError | EOFError | zlib.error):
        return f"truncated or corrupt archive ({exc})"
    if isinstance(exc, KeyError):
        return f"archive entry missing: {exc}"
    if isinstance(exc, ValueError | TypeError) and not isinstance(exc, PyctrError):
        return f"malformed metadata ({exc})"
    return str(exc)


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    f = tar.extractfile(name.lstrip("./") if name.startswith("./") else name)
    if f is None:
        raise PyctrError(f"archive entry {name} is not a file")
    return f


def _ingest_from(store: Store, tar: tarfile.TarFile, desc: dict[str, Any]) -> None:
    if not store.has_blob(desc["digest"]):
        hexpart = desc["digest"].split(":", 1)[1]
        store.ingest(VerifiedReader(_member(tar, f"blobs/sha256/{hexpart}"), desc["digest"],
                                    desc.get("size")))


def _load_oci(store: Store, tar: tarfile.TarFile) -> list[tuple[str, dict[str, Any]]]:
    index = json.loads(_member(tar, "index.json").read())
    loaded = []
    for desc in index.get("manifests", []):
        _ingest_from(store, tar, desc)
        doc = store.read_json(desc)
        mt = media_type_of(doc, desc.get("mediaType"))
        if mt in INDEX_TYPES:
            desc = platforms.select(doc, platforms.host_platform())
            _ingest_from(store, tar, desc)
            doc = store.read_json(desc)
        for blob in (doc["config"], *doc.get("layers", [])):
            _ingest_from(store, tar, blob)
        loaded.append((_oci_name(desc.get("annotations") or {}, desc["digest"]), desc))
    return loaded


def _oci_name(annotations: dict[str, str], digest: str) -> str:
    for candidate in (annotations.get(NAME_KEY), annotations.get(TAG_KEY)):
        if candidate:
            with contextlib.suppress(InvalidReference):
                return str(reference.parse(candidate))
    return f"localhost/loaded@{digest}"


def _load_docker(store: Store, tar: tarfile.TarFile) -> list[tuple[str, dict[str, Any]]]:
    loaded = []
    for entry in json.loads(_member(tar, "manifest.json").read()):
        config_bytes = _member(tar, entry["Config"]).read()
        store.put_bytes(config_bytes)
        blobs = [_ingest_layer_file(store, tar, p) for p in entry["Layers"]]
        data = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": descriptor(OCI_CONFIG, config_bytes), "layers": blobs}).encode()
        store.put_bytes(data)
        desc = descriptor(OCI_MANIFEST, data)
        for tag in entry.get("RepoTags") or [f"localhost/loaded@{desc['digest']}"]:
            loaded.append((str(reference.parse(tag)), desc))
    return loaded


def _ingest_layer_file(store: Store, tar: tarfile.TarFile, name: str) -> dict[str, Any]:
    """Store a layer file as is (its diff id is checked when it is unpacked)."""
    h = hashlib.sha256()
    size = 0
    f = _member(tar, name)
    head = f.read(2)
    f.seek(0)
    while chunk := f.read(1 << 20):
        h.update(chunk)
        size += len(chunk)
    f.seek(0)
    digest = "sha256:" + h.hexdigest()
    if not store.has_blob(digest):
        store.ingest(VerifiedReader(f, digest, size))
    return {"mediaType": OCI_LAYER_GZIP if head == b"\x1f\x8b" else OCI_LAYER,
            "digest": digest, "size": size}
