"""A registry client for the OCI distribution spec, on the standard library's http.client.

Authentication follows the registry's 401 challenge: `Basic` with stored credentials, or
`Bearer`, where a token for the request's scopes (`repository:<name>:pull[,push]`) is fetched
from the challenge's realm and cached. Idempotent requests are retried on connection errors,
5xx and 429; blob downloads resume with `Range` where they broke. Plain HTTP is used for
localhost (and with `insecure`), HTTPS elsewhere.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pyctr.errors import AuthError, DigestMismatch, NotFound, RegistryError
from pyctr.image.auth import Challenge, basic_header, parse_challenge
from pyctr.image.content import (
    MANIFEST_ACCEPT,
    VerifiedReader,
    check_digest,
    media_type_of,
    sha256_digest,
)

RETRY_STATUS = (429, 500, 502, 503, 504)
MAX_MANIFEST = 4 << 20
Body = bytes | Callable[[], BinaryIO] | None


def is_local(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in ("localhost", "127.0.0.1", "[::1]") or name.startswith("127.")


@dataclass
class Response:
    """A response whose body is still to be read; `close()` releases its connection."""

    status: int
    headers: http.client.HTTPMessage
    raw: http.client.HTTPResponse
    conn: http.client.HTTPConnection
    url: str

    def read(self, n: int = -1) -> bytes:
        return self.raw.read(n) if n >= 0 else self.raw.read()

    def close(self) -> None:
        self.raw.close()
        self.conn.close()

    def error(self) -> Exception:
        """Read the body's `errors` and turn the status into one of our errors."""
        try:
            detail = json.loads(self.raw.read(65536) or b"{}").get("errors") or []
            message = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in detail)
        except (ValueError, AttributeError, OSError, http.client.HTTPException):
            message = ""
        self.close()
        text = f"{self.status} {self.raw.reason} for {self.url}" + (f" ({message})" if message else "")
        if self.status == 404:
            return NotFound(text)
        if self.status in (401, 403):
            return AuthError(text)
        return RegistryError(text)


@dataclass
class Registry:
    host: str
    insecure: bool = False
    credentials: tuple[str, str] | None = None
    # A registry that accepts and then never answers must fail in seconds, not hang: the
    # connect and each read have their own deadline, retried `retries` times with backoff.
    retries: int = 3
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    backoff: float = 0.25
    _tokens: dict[str, str] = field(default_factory=dict)
    _challenge: Challenge | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        scheme = "http" if self.insecure or is_local(self.host) else "https"
        return f"{scheme}://{self.host}"

    # --- plumbing -------------------------------------------------------------------------

    def _send(self, method: str, url: str, headers: dict[str, str], body: Body) -> Response:
        parts = urllib.parse.urlsplit(url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(parts.netloc, timeout=self.connect_timeout)
        path = parts.path + ("?" + parts.query if parts.query else "")
        payload = body() if callable(body) else body
        try:
            try:
                conn.connect()
            except TimeoutError as exc:
                raise TimeoutError(f"no connection within {self.connect_timeout:g}s "
                                   "(connect timeout)") from exc
            assert conn.sock is not None
            conn.sock.settimeout(self.read_timeout)
            try:
                conn.request(method, path, body=payload, headers=headers)
                raw = conn.getresponse()
            except TimeoutError as exc:
                raise TimeoutError(f"no answer within {self.read_timeout:g}s "
                                   "(read timeout)") from exc
        except BaseException:
            conn.close()
            raise
        finally:
            if payload is not None and not isinstance(payload, bytes):
                payload.close()
        return Response(raw.status, raw.headers, raw, conn, url)

    def _auth_for(self, scopes: tuple[str, ...]) -> str | None:
        ch = self._challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            return basic_header(*self.credentials) if self.credentials else None
        key = " ".join(scopes)
        with self._lock:
            if key not in self._tokens:
                self._tokens[key] = "Bearer " + self._fetch_token(ch, scopes)
            return self._tokens[key]

    def _fetch_token(self, ch: Challenge, scopes: tuple[str, ...]) -> str:
        realm = ch.params.get("realm")
        if not realm:
            raise AuthError(f"{self.host}: Bearer challenge without a realm")
        query = [("service", ch.params["service"])] if "service" in ch.params else []
        query += [("scope", s) for s in scopes]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {"Authorization": basic_header(*self.credentials)} if self.credentials else {}
        resp = self._retrying("GET", url, headers, None)
        if resp.status != 200:
            raise AuthError(f"token server {realm} refused: {resp.status} {resp.raw.reason}")
        try:
            data = json.loads(resp.read(MAX_MANIFEST))
        finally:
            resp.close()
        token = data.get("token") or data.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError(f"token server {realm} sent no token")
        return token

    def _retrying(self, method: str, url: str, headers: dict[str, str], body: Body) -> Response:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                resp = self._send(method, url, headers, body)
            except (OSError, http.client.HTTPException) as exc:
                if last:
                    raise RegistryError(f"{method} {url}: {exc or type(exc).__name__}"
                                        f" ({attempt + 1} attempts)") from exc
            else:
                if resp.status not in RETRY_STATUS or last:
                    return resp
                delay = max(delay, _retry_after(resp))
                resp.close()
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, *, scopes: tuple[str, ...] = (),
                headers: dict[str, str] | None = None, body: Body = None,
                redirects: int = 5) -> Response:
        """Send a request (path under the registry, or a full URL), authenticating on demand."""
        url = path if "://" in path else self.base + path
        hdrs = dict(headers or {})
        auth = self._auth_for(scopes)
        if auth:
            hdrs["Authorization"] = auth
        resp = self._retrying(method, url, hdrs, body)
        if resp.status == 401:
            self._learn_challenge(resp, sent=auth)
            return self.request(method, path, scopes=scopes, headers=headers, body=body,
                                redirects=redirects)
        if resp.status in (301, 302, 303, 307, 308) and redirects > 0:
            location = urllib.parse.urljoin(url, resp.headers.get("Location", ""))
            resp.close()
            return self._follow(method, location, headers or {}, body, scopes, redirects - 1)
        return resp

    def _follow(self, method: str, url: str, headers: dict[str, str], body: Body,
                scopes: tuple[str, ...], redirects: int) -> Response:
        if urllib.parse.urlsplit(url).netloc == self.host:
            return self.request(method, url, scopes=scopes, headers=headers, body=body,
                                redirects=redirects)
        # Blob storage elsewhere (S3 and the like) gets no registry credentials.
        return self._retrying(method, url, headers, body)

    def _learn_challenge(self, resp: Response, sent: str | None) -> None:
        """Record a 401's challenge so the retry can answer it; refuse a second 401."""
        header = resp.headers.get("WWW-Authenticate", "")
        resp.raw.read()
        resp.close()
        ch = parse_challenge(header) if header else None
        if ch is None or ch.scheme not in ("basic", "bearer"):
            raise AuthError(f"{self.host}: unauthorized, unsupported challenge {header!r}")
        if sent is not None:
            raise AuthError(f"{self.host}: unauthorized: credentials or token refused")
        if ch.scheme == "basic" and not self.credentials:
            raise AuthError(f"{self.host}: authentication required (use `pyctr login {self.host}`)")
        with self._lock:
            self._challenge = ch

    # --- API ------------------------------------------------------------------------------

    def ping(self) -> None:
        """GET /v2/: the registry speaks the API and our credentials (if any) are good."""
        resp = self.request("GET", "/v2/")
        if resp.status != 200:
            raise resp.error()
        resp.close()

    def get_manifest(self, repo: str, ref: str) -> tuple[str, bytes, str]:
        """(media type, bytes, digest) of a manifest or index; a digest ref is verified."""
        resp = self.request("GET", f"/v2/{repo}/manifests/{ref}", scopes=(pull_scope(repo),),
                            headers={"Accept": MANIFEST_ACCEPT})
        if resp.status != 200:
            raise resp.error()
        try:
            data = resp.read(MAX_MANIFEST + 1)
        finally:
            resp.close()
        if len(data) > MAX_MANIFEST:
            raise RegistryError(f"manifest {repo}:{ref} larger than {MAX_MANIFEST} bytes")
        digest = sha256_digest(data)
        expected = ref if ":" in ref else resp.headers.get("Docker-Content-Digest")
        if expected and expected.startswith("sha256:") and expected != digest:
            raise DigestMismatch(f"manifest {repo}@{expected}: content has digest {digest}")
        mt = media_type_of(json.loads(data), resp.headers.get("Content-Type"))
        return mt, data, digest

    def open_blob(self, repo: str, digest: str, size: int | None) -> VerifiedReader:
        """A verified, resuming stream of a blob."""
        check_digest(digest)
        return VerifiedReader(_ResumingStream(self, repo, digest, self.retries), digest, size)

    def _get_blob(self, repo: str, digest: str, offset: int) -> Response:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", scopes=(pull_scope(repo),),
                            headers=headers)
        if resp.status not in (200, 206):
            raise resp.error()
        if offset and resp.status == 200:
            _discard(resp, offset)
        return resp

    def blob_exists(self, repo: str, digest: str, scopes: tuple[str, ...]) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes=scopes)
        resp.close()
        if resp.status in (200, 404):
            return resp.status == 200
        raise resp.error()

    def mount_blob(self, repo: str, digest: str, source: str) -> bool:
        """Ask the registry to link a blob from another repository; False when it declines."""
        scopes = (push_scope(repo), pull_scope(source))
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/?{query}", scopes=scopes,
                            headers={"Content-Length": "0"}, body=b"")
        resp.read()
        resp.close()
        if resp.status == 202:
            self._cancel(resp.headers.get("Location"), resp.url, scopes)
        if resp.status in (201, 202):
            return resp.status == 201
        raise resp.error()

    def _cancel(self, location: str | None, url: str, scopes: tuple[str, ...]) -> None:
        if location:
            self.request("DELETE", urllib.parse.urljoin(url, location), scopes=scopes).close()

    def upload_blob(self, repo: str, digest: str, size: int, opener: Callable[[], BinaryIO]) -> None:
        """POST a session, then PUT the whole blob to it (a monolithic upload)."""
        scopes = (push_scope(repo),)
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", scopes=scopes,
                            headers={"Content-Length": "0"}, body=b"")
        resp.read()
        resp.close()
        if resp.status != 202:
            raise resp.error()
        location = urllib.parse.urljoin(resp.url, resp.headers.get("Location", ""))
        sep = "&" if "?" in location else "?"
        put = self.request("PUT", location + sep + urllib.parse.urlencode({"digest": digest}),
                           scopes=scopes, body=opener,
                           headers={"Content-Type": "application/octet-stream",
                                    "Content-Length": str(size)})
        put.read()
        put.close()
        if put.status != 201:
            raise put.error()

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> str:
        resp = self.request("PUT", f"/v2/{repo}/manifests/{ref}", scopes=(push_scope(repo),),
                            body=data, headers={"Content-Type": media_type,
                                                "Content-Length": str(len(data))})
        resp.read()
        resp.close()
        if resp.status != 201:
            raise resp.error()
        return resp.headers.get("Docker-Content-Digest") or sha256_digest(data)

    def tags(self, repo: str) -> list[str]:
        resp = self.request("GET", f"/v2/{repo}/tags/list", scopes=(pull_scope(repo),))
        if resp.status != 200:
            raise resp.error()
        try:
            return list(json.loads(resp.read(MAX_MANIFEST)).get("tags") or [])
        finally:
            resp.close()


def pull_scope(repo: str) -> str:
    return f"repository:{repo}:pull"


def push_scope(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def _retry_after(resp: Response) -> float:
    try:
        return min(float(resp.headers.get("Retry-After", "0")), 10.0)
    except ValueError:
        return 0.0


def _discard(resp: Response, n: int) -> None:
    """The server ignored our Range: skip what we already have."""
    while n > 0:
        chunk = resp.read(min(n, 1 << 20))
        if not chunk:
            raise RegistryError(f"{resp.url}: body shorter than the bytes already received")
        n -= len(chunk)


class _ResumingStream:
    """A blob body that reopens with `Range: bytes=<offset>-` when the connection breaks."""

    def __init__(self, registry: Registry, repo: str, digest: str, retries: int) -> None:
        self._open: Callable[[int], Response] = (
            lambda offset: registry._get_blob(repo, digest, offset))
        self._resp: Response | None = None
        self.offset = 0
        self.retries = retries

    def read(self, n: int = -1, /) -> bytes:
        for attempt in range(self.retries + 1):
            try:
                if self._resp is None:
                    self._resp = self._open(self.offset)
                data = self._resp.read(n)
                if not data and n and self._resp.raw.length:
                    # http.client reports a body cut short as a plain EOF.
                    raise http.client.IncompleteRead(b"", self._resp.raw.length)
            except (OSError, http.client.HTTPException) as exc:
                if self._resp is not None:
                    self._resp.close()
                self._resp = None
                if attempt == self.retries:
                    raise RegistryError(f"blob download failed at byte {self.offset}: {exc}") from exc
                time.sleep(0.2 * (attempt + 1))
                continue
            self.offset += len(data)
            if not data:
                self._resp.close()
            return data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None


def json_body(resp: Response) -> Any:
    try:
        return json.loads(resp.read(MAX_MANIFEST))
    finally:
        resp.close()
