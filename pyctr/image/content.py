"""Digests, descriptors and the verified reader every blob read goes through.

`VerifiedReader` hashes what passes through it and, at EOF, compares the size and digest with
the descriptor; a mismatch raises `DigestMismatch`, so no caller can forget to verify.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

from pyctr.errors import DigestMismatch, UnsupportedMedia

_ALGOS = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"^[a-f0-9]+$")

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
# Without an explicit Accept, docker-registry answers 404 for OCI manifests and downgrades
# Docker v2 manifests to the signed schema1, which we refuse.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))


def check_digest(digest: str) -> tuple[str, str]:
    """Split `algo:hex` after checking it is a digest we can verify (no path tricks)."""
    algo, _, hexpart = digest.partition(":")
    if algo not in _ALGOS or len(hexpart) != _ALGOS[algo] or not _HEX.match(hexpart):
        raise DigestMismatch(f"unsupported or malformed digest {digest!r}")
    return algo, hexpart


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data), **extra}


def media_type_of(doc: dict[str, Any], header: str | None = None) -> str:
    """The manifest's media type, from its own field, else the Content-Type, else its shape."""
    mt = doc.get("mediaType") or (header or "").split(";")[0].strip()
    if not mt or mt == "application/json":
        mt = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if mt in DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
        raise UnsupportedMedia("Docker schema1 manifests are not supported")
    if mt not in INDEX_TYPES + MANIFEST_TYPES:
        raise UnsupportedMedia(f"unsupported manifest media type {mt!r}")
    return mt


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class VerifiedReader(io.RawIOBase):
    """A stream that checks `digest` (and `size`, unless None) when its source reaches EOF."""

    def __init__(self, source: Readable, digest: str, size: int | None) -> None:
        super().__init__()
        algo, _ = check_digest(digest)
        self._source = source
        self._hash = hashlib.new(algo)
        self.digest = digest
        self.size = size
        self.count = 0
        self.verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def read(self, n: int = -1, /) -> bytes:
        if n is None or n < 0:
            chunks = []
            while chunk := self.read(1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        data = self._source.read(n)
        if data:
            self._hash.update(data)
            self.count += len(data)
            if self.size is not None and self.count > self.size:
                raise DigestMismatch(f"{self.digest}: more than the expected {self.size} bytes")
        elif n > 0:
            self._at_eof()
        return data

    def _at_eof(self) -> None:
        if self.verified:
            return
        if self.size is not None and self.count != self.size:
            raise DigestMismatch(f"{self.digest}: got {self.count} bytes, expected {self.size}")
        got = self._hash.name + ":" + self._hash.hexdigest()
        if got != self.digest:
            raise DigestMismatch(f"digest mismatch: expected {self.digest}, got {got}")
        self.verified = True

    def drain(self) -> None:
        """Read to EOF (tar streams stop before their padding) so the digest is checked."""
        while self.read(1 << 20):
            pass


def copy_verified(reader: VerifiedReader, out: BinaryIO,
                  progress: Callable[[int], None] | None = None) -> None:
    while chunk := reader.read(1 << 20):
        out.write(chunk)
        if progress:
            progress(len(chunk))
