"""Every blob read goes through a reader that checks digest and size at EOF."""

from __future__ import annotations

import hashlib
import io

import pytest

from pyctr.errors import DigestMismatch, UnsupportedMedia
from pyctr.image.content import VerifiedReader, media_type_of, sha256_digest

DATA = b"layer bytes " * 1000


def _read_all(reader: VerifiedReader) -> bytes:
    out = b""
    while chunk := reader.read(333):
        out += chunk
    return out


def test_good_blob_verifies_at_eof() -> None:
    reader = VerifiedReader(io.BytesIO(DATA), sha256_digest(DATA), len(DATA))
    assert _read_all(reader) == DATA
    assert reader.verified


def test_wrong_digest_raises_at_eof() -> None:
    reader = VerifiedReader(io.BytesIO(DATA), "sha256:" + "0" * 64, len(DATA))
    with pytest.raises(DigestMismatch, match="digest mismatch"):
        _read_all(reader)


def test_short_blob_raises() -> None:
    reader = VerifiedReader(io.BytesIO(DATA[:-1]), sha256_digest(DATA), len(DATA))
    with pytest.raises(DigestMismatch, match="expected"):
        _read_all(reader)


def test_long_blob_raises_before_eof() -> None:
    reader = VerifiedReader(io.BytesIO(DATA + b"x" * 5000), sha256_digest(DATA), len(DATA))
    with pytest.raises(DigestMismatch, match="more than"):
        _read_all(reader)


def test_sha512_and_unknown_size() -> None:
    digest = "sha512:" + hashlib.sha512(DATA).hexdigest()
    assert VerifiedReader(io.BytesIO(DATA), digest, None).read() == DATA


@pytest.mark.parametrize("digest", ["md5:" + "0" * 32, "sha256:../../etc/passwd", "sha256:ABC"])
def test_malformed_digests_refused(digest: str) -> None:
    with pytest.raises(DigestMismatch):
        VerifiedReader(io.BytesIO(DATA), digest, None)


def test_schema1_refused() -> None:
    with pytest.raises(UnsupportedMedia):
        media_type_of({"schemaVersion": 1, "fsLayers": []})
    with pytest.raises(UnsupportedMedia):
        media_type_of({}, "application/vnd.docker.distribution.manifest.v1+prettyjws")


def test_media_type_from_shape() -> None:
    assert media_type_of({"schemaVersion": 2, "manifests": []}).endswith("index.v1+json")
    assert media_type_of({"schemaVersion": 2, "config": {}}, "application/json").endswith(
        "manifest.v1+json")
