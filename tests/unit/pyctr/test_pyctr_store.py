"""The OCI layout store: blobs verified on the way in and out, names in index.json, GC."""

from __future__ import annotations

import io
import json
import multiprocessing
from pathlib import Path

import pytest

from pyctr.errors import DigestMismatch, NotFound
from pyctr.image.content import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    VerifiedReader,
    descriptor,
    sha256_digest,
)
from pyctr.image.store import Store
from pyctr.ops.containers import Containers
from pyctr.ops.imageops import prune, remove_image


def _image(store: Store, name: str, layer: bytes) -> dict[str, object]:
    cfg = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
                      "comment": name}).encode()
    store.put_bytes(cfg)
    store.put_bytes(layer)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": descriptor(OCI_CONFIG, cfg),
                           "layers": [descriptor(OCI_LAYER, layer)]}).encode()
    store.put_bytes(manifest)
    desc = descriptor(OCI_MANIFEST, manifest)
    store.add_ref(name, desc)
    return desc


def test_layout_files(tmp_path: Path) -> None:
    Store(tmp_path)
    assert json.loads((tmp_path / "oci-layout").read_text())["imageLayoutVersion"] == "1.0.0"
    assert json.loads((tmp_path / "index.json").read_text())["manifests"] == []


def test_ingest_refuses_bad_content(tmp_path: Path) -> None:
    store = Store(tmp_path)
    data = b"blob"
    with pytest.raises(DigestMismatch):
        store.ingest(VerifiedReader(io.BytesIO(b"other"), sha256_digest(data), 4))
    assert not store.has_blob(sha256_digest(data))
    assert [p.name for p in store.blobs.iterdir()] == []
    store.ingest(VerifiedReader(io.BytesIO(data), sha256_digest(data), 4))
    assert store.read_blob(sha256_digest(data), 4) == data


def test_corrupted_blob_detected_on_read(tmp_path: Path) -> None:
    store = Store(tmp_path)
    digest = store.put_bytes(b"original")
    store.blob_path(digest).write_bytes(b"tampered")
    with pytest.raises(DigestMismatch):
        store.read_blob(digest)


def test_names_lookup_and_removal(tmp_path: Path) -> None:
    store = Store(tmp_path)
    desc = _image(store, "busybox", b"layer-1")
    img = store.lookup("busybox:latest")
    assert img.name == "docker.io/library/busybox:latest" and img.digest == desc["digest"]
    assert store.lookup(str(desc["digest"])[7:19]).digest == desc["digest"]
    assert store.lookup(store.image_id(img)[7:15]).digest == desc["digest"]
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    store.remove_ref(img.name)
    with pytest.raises(NotFound):
        store.lookup("busybox")


def test_rmi_and_prune_keep_shared_blobs(tmp_path: Path) -> None:
    store = Store(tmp_path)
    cs = Containers(store)
    a = _image(store, "a", b"shared-layer")
    _image(store, "b", b"shared-layer")
    (store.layers / "deadbeef").mkdir()
    config_a = json.loads(store.read_blob(str(a["digest"])))
    assert remove_image(store, cs, "a") == ["docker.io/library/a:latest"]
    removed, unpacked = prune(store, cs)
    assert sorted(removed) == sorted([a["digest"], config_a["config"]["digest"]])
    assert unpacked == ["sha256:deadbeef"]
    assert store.has_blob(sha256_digest(b"shared-layer"))
    store.lookup("b")


def _add(args: tuple[str, int]) -> None:
    root, n = args
    store = Store(Path(root))
    _image(store, f"img{n}", f"layer-{n}".encode())


def test_concurrent_writers_lose_no_name(tmp_path: Path) -> None:
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_add, [(str(tmp_path), n) for n in range(16)])
    names = {img.name for img in Store(tmp_path).images()}
    assert names == {f"docker.io/library/img{n}:latest" for n in range(16)}
