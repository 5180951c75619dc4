"""pull and push: moving images between a registry and the store.

A pull fetches the manifest (choosing a platform from an index), the config and the layers,
in parallel, each through a verified reader into the store, and only then names the image in
index.json. A push uploads what the registry lacks (mounting from the repository the image came
from when that is on the same registry), then the manifest, by tag.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

from pyctr.errors import DigestMismatch, UnsupportedMedia
from pyctr.image import platforms
from pyctr.image.auth import CredentialStore
from pyctr.image.content import INDEX_TYPES, MANIFEST_TYPES
from pyctr.image.reference import Reference
from pyctr.image.registry import Registry, push_scope
from pyctr.image.store import SOURCE_KEY, Image, Store

PARALLEL = 3


def registry_for(ref: Reference, insecure: bool = False,
                 creds: CredentialStore | None = None, *, connect_timeout: float = 10.0,
                 read_timeout: float = 30.0, retries: int = 3) -> Registry:
    store = creds or CredentialStore()
    found = store.get(ref.registry) or store.get(ref.api_host)
    return Registry(ref.api_host, insecure=insecure, credentials=found, retries=retries,
                    connect_timeout=connect_timeout, read_timeout=read_timeout)


class Progress:
    """One line per layer: started, then done (a terminal gets no cursor tricks here)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()

    def line(self, digest: str, text: str) -> None:
        with self.lock:
            print(f"{digest.removeprefix('sha256:')[:12]}: {text}", file=self.out, flush=True)


def pull(store: Store, ref: Reference, registry: Registry,
         want: platforms.Platform | None = None, out: TextIO = sys.stderr) -> Image:
    repo = ref.repository
    mt, data, digest = registry.get_manifest(repo, ref.object)
    with store.gc_lock():
        store.put_bytes(data)
        if mt in INDEX_TYPES:
            chosen = platforms.select(json.loads(data), want or platforms.host_platform())
            mt, data, digest = registry.get_manifest(repo, chosen["digest"])
            if len(data) != chosen.get("size", len(data)) or mt not in MANIFEST_TYPES:
                raise DigestMismatch(f"manifest {chosen['digest']} does not match its index entry")
            store.put_bytes(data)
        manifest = json.loads(data)
        _fetch_blobs(store, registry, repo, manifest, Progress(out))
        name = str(ref) if ref.tag else f"{ref.name}@{digest}"
        desc = {"mediaType": mt, "digest": digest, "size": len(data)}
        store.add_ref(name, desc, source=ref.name)
    print(f"Digest: {digest}", file=out)
    return store.lookup(name)


def _fetch_blobs(store: Store, registry: Registry, repo: str, manifest: dict[str, Any],
                 progress: Progress) -> None:
    config = manifest["config"]
    if not store.has_blob(config["digest"]):
        store.ingest(registry.open_blob(repo, config["digest"], config["size"]))
    for layer in manifest.get("layers", []):
        if "zstd" in layer.get("mediaType", "") and "nondistributable" in layer["mediaType"]:
            raise UnsupportedMedia(f"unsupported layer type {layer['mediaType']}")

    def fetch(layer: dict[str, Any]) -> None:
        if store.has_blob(layer["digest"]):
            progress.line(layer["digest"], "Already exists")
            return
        progress.line(layer["digest"], f"Downloading {_size(layer['size'])}")
        store.ingest(registry.open_blob(repo, layer["digest"], layer["size"]))
        progress.line(layer["digest"], "Pull complete")

    with ThreadPoolExecutor(PARALLEL) as pool:
        for future in [pool.submit(fetch, layer) for layer in manifest.get("layers", [])]:
            future.result()


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f}{unit}" if unit != "B" else f"{n}B"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def push(store: Store, img: Image, ref: Reference, registry: Registry,
         out: TextIO = sys.stderr) -> str:
    """Upload an image's blobs and manifest to `ref`; returns the manifest digest."""
    manifest = store.manifest(img)
    source = (img.descriptor.get("annotations") or {}).get(SOURCE_KEY, "")
    mount_from = _same_registry_repo(source, ref)
    blobs = [manifest["config"], *manifest.get("layers", [])]
    progress = Progress(out)

    def upload(desc: dict[str, Any]) -> None:
        _push_blob(store, registry, ref.repository, desc, mount_from, progress)

    with ThreadPoolExecutor(PARALLEL) as pool:
        for future in [pool.submit(upload, d) for d in blobs]:
            future.result()
    data = store.read_blob(img.digest, img.descriptor.get("size"))
    digest = registry.put_manifest(ref.repository, ref.object, data, img.descriptor["mediaType"])
    print(f"{ref.object}: digest: {digest} size: {len(data)}", file=out)
    return digest


def _same_registry_repo(source: str, ref: Reference) -> str | None:
    host, _, repo = source.partition("/")
    return repo if host == ref.registry and repo and repo != ref.repository else None


def _push_blob(store: Store, registry: Registry, repo: str, desc: dict[str, Any],
               mount_from: str | None, progress: Progress) -> None:
    digest, size = desc["digest"], desc["size"]
    if registry.blob_exists(repo, digest, (push_scope(repo),)):
        progress.line(digest, "Layer already exists")
        return
    if mount_from and registry.mount_blob(repo, digest, mount_from):
        progress.line(digest, f"Mounted from {mount_from}")
        return
    opener: Callable[[], Any] = lambda: store.open_blob(digest, size)  # noqa: E731
    registry.upload_blob(repo, digest, size, opener)
    progress.line(digest, "Pushed")
