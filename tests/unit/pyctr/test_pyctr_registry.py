"""The registry client against a scripted in-process HTTP server (no docker-registry needed):
Bearer challenges, explicit Accept, retries on 5xx, resume with Range, digest checks.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pyctr.errors import AuthError, DigestMismatch, NotFound, UnsupportedMedia
from pyctr.image.content import sha256_digest
from pyctr.image.registry import Registry

BLOB = bytes(range(256)) * 400
BLOB_DIGEST = sha256_digest(BLOB)
MANIFEST = json.dumps({"schemaVersion": 2,
                       "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {}, "layers": []}).encode()


class Fake:
    def __init__(self) -> None:
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self.blob_failures = ["503", "cut"]
        self.token_scopes: list[str] = []
        self.schema1 = False


def _handler(fake: Fake, port: list[int]) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  length: int | None = None) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            fake.log.append(("GET", self.path, dict(self.headers)))
            if self.path.startswith("/token"):
                scope = self.path.split("scope=")[-1]
                fake.token_scopes.append(scope)
                return self._send(200, json.dumps({"token": "tok"}).encode())
            if self.headers.get("Authorization") != "Bearer tok":
                realm = f"http://127.0.0.1:{port[0]}/token"
                return self._send(401, b"{}", {"WWW-Authenticate":
                                               f'Bearer realm="{realm}",service="fake"'})
            if "/manifests/" in self.path:
                return self._manifest()
            if "/blobs/" in self.path:
                return self._blob()
            self._send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"nope"}]}')

        def _manifest(self) -> None:
            if fake.schema1:
                return self._send(200, b'{"schemaVersion":1}', {
                    "Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"})
            if "application/vnd.oci.image.manifest.v1+json" not in self.headers.get("Accept", ""):
                return self._send(404)
            self._send(200, MANIFEST, {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                                       "Docker-Content-Digest": sha256_digest(MANIFEST)})

        def _blob(self) -> None:
            failure = fake.blob_failures.pop(0) if fake.blob_failures else None
            if failure == "503":
                return self._send(503)
            rng = self.headers.get("Range")
            start = int(rng.split("=")[1].rstrip("-")) if rng else 0
            body = BLOB[start:]
            if failure == "cut":  # promise everything, send half, hang up
                self._send(200, body[: len(body) // 2], length=len(body))
                self.close_connection = True
                return
            self._send(206 if start else 200, body,
                       {"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"} if start else {})

    return H


@pytest.fixture
def fake() -> Iterator[tuple[Fake, Registry]]:
    state = Fake()
    port: list[int] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state, port))
    port.append(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, Registry(f"127.0.0.1:{port[0]}", backoff=0.01)
    server.shutdown()
    server.server_close()


def test_manifest_with_bearer_token_and_accept(fake: tuple[Fake, Registry]) -> None:
    state, reg = fake
    mt, data, digest = reg.get_manifest("a/b", "latest")
    assert (mt, data, digest) == ("application/vnd.oci.image.manifest.v1+json", MANIFEST,
                                  sha256_digest(MANIFEST))
    assert state.token_scopes == ["repository%3Aa%2Fb%3Apull"]


def test_manifest_by_wrong_digest_is_refused(fake: tuple[Fake, Registry]) -> None:
    with pytest.raises(DigestMismatch):
        fake[1].get_manifest("a/b", "sha256:" + "1" * 64)


def test_schema1_is_refused(fake: tuple[Fake, Registry]) -> None:
    fake[0].schema1 = True
    with pytest.raises(UnsupportedMedia):
        fake[1].get_manifest("a/b", "latest")


def test_blob_retries_and_resumes_with_range(fake: tuple[Fake, Registry]) -> None:
    state, reg = fake
    reader = reg.open_blob("a/b", BLOB_DIGEST, len(BLOB))
    assert reader.read() == BLOB and reader.verified
    ranges = [h.get("Range") for m, p, h in state.log if "/blobs/" in p and h.get("Authorization")]
    assert ranges[-1] == f"bytes={len(BLOB) // 2}-"


def test_blob_with_wrong_digest_fails(fake: tuple[Fake, Registry]) -> None:
    fake[0].blob_failures = []
    reader = fake[1].open_blob("a/b", "sha256:" + "2" * 64, len(BLOB))
    with pytest.raises(DigestMismatch):
        reader.read()


def test_not_found_is_typed(fake: tuple[Fake, Registry]) -> None:
    resp = fake[1].request("GET", "/v2/other", scopes=())
    assert isinstance(resp.error(), NotFound)


def test_basic_challenge_without_credentials() -> None:
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="x"')
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(AuthError, match="login"):
            Registry(f"127.0.0.1:{server.server_address[1]}").ping()
        with pytest.raises(AuthError, match="refused"):
            Registry(f"127.0.0.1:{server.server_address[1]}", credentials=("u", "p")).ping()
    finally:
        server.shutdown()
        server.server_close()


def test_scheme_rules() -> None:
    assert Registry("localhost:5000").base == "http://localhost:5000"
    assert Registry("127.0.0.1:5000").base == "http://127.0.0.1:5000"
    assert Registry("registry.example").base == "https://registry.example"
    assert Registry("registry.example", insecure=True).base == "http://registry.example"
