"""Helpers for pyctr's integration tests: private docker-registry instances, a token server,
and test images built from busybox-static in several layers (with a deletion and an opaque dir).
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess  # noqa: TID251 - test helpers drive real tools
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from testlib import HostUser, unprivileged_user  # noqa: F401 (re-exported to the pyctr tests)

BUSYBOX = "/usr/bin/busybox"
APPLETS = ("sh", "ls", "cat", "echo", "id", "sleep", "true", "false", "hostname", "env", "pwd",
           "mkdir", "rm", "test", "touch", "wc", "ip", "grep", "stat", "kill", "ps", "head")
USER = ("tester", "s3cret")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- test images ---------------------------------------------------------------------------


def _tar_layer(entries: list[tuple[str, str, bytes | str | None, int]],
               owners: dict[str, tuple[int, int]] | None = None) -> bytes:
    """(name, kind, data or link target, mode) -> uncompressed tar bytes; owners: name -> ids."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            info.uid, info.gid = (owners or {}).get(name, (0, 0))
            info.mtime = 1700000000
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "sym":
                info.type = tarfile.SYMTYPE
                info.linkname = str(data)
                tar.addfile(info)
            else:
                raw = data if isinstance(data, bytes) else str(data or "").encode()
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def busybox_layers() -> list[bytes]:
    """Three layers: base; a deletion and an opaque dir; one more file."""
    base: list[tuple[str, str, bytes | str | None, int]] = [
        ("bin", "dir", None, 0o755), ("bin/busybox", "file", Path(BUSYBOX).read_bytes(), 0o755),
        *[(f"bin/{a}", "sym", "busybox", 0o777) for a in APPLETS],
        ("etc", "dir", None, 0o755),
        ("etc/passwd", "file", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n", 0o644),
        ("etc/group", "file", "root:x:0:\napp:x:1000:\nextra:x:2000:app\n", 0o644),
        ("tmp", "dir", None, 0o1777), ("root", "dir", None, 0o700),
        ("home", "dir", None, 0o755), ("home/app", "dir", None, 0o755),
        ("data", "dir", None, 0o755), ("data/old1", "file", "old1\n", 0o644),
        ("data/old2", "file", "old2\n", 0o644), ("gone.txt", "file", "doomed\n", 0o644),
    ]
    second: list[tuple[str, str, bytes | str | None, int]] = [
        (".wh.gone.txt", "file", b"", 0o644),
        ("data", "dir", None, 0o755), ("data/.wh..wh..opq", "file", b"", 0o644),
        ("data/new", "file", "new\n", 0o644),
    ]
    third: list[tuple[str, str, bytes | str | None, int]] = [("hello.txt", "file", "hello from layer 3\n", 0o644)]
    return [_tar_layer(x) for x in (base, second, third)]


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def volume_layer() -> bytes:
    """/home/app 0750 owned by app (1000:1000), with a file owned 1000:2000."""
    return _tar_layer([("home", "dir", None, 0o755), ("home/app", "dir", None, 0o750),
                       ("home/app/f", "file", "f\n", 0o640)],
                      {"home/app": (1000, 1000), "home/app/f": (1000, 2000)})


def build_oci_layout(path: Path, tag: str = "latest", cmd: list[str] | None = None,
                     config_extra: dict[str, Any] | None = None,
                     extra_layer: bytes | None = None) -> str:
    """An OCI image layout of the busybox test image; returns the manifest digest."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        digest = _sha(data)
        (blobs / digest[7:]).write_bytes(data)
        return digest

    layers = busybox_layers() + ([extra_layer] if extra_layer else [])
    compressed = [gzip.compress(layer, mtime=0) for layer in layers]
    config = {
        "created": "2024-01-01T00:00:00Z", "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "FROM_IMAGE=yes"],
                   "Cmd": cmd or ["sh", "-c", "echo hello from the image"], "WorkingDir": "/",
                   "Labels": {"org.example.test": "pyctr"}, **(config_extra or {})},
        "rootfs": {"type": "layers", "diff_ids": [_sha(layer) for layer in layers]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))],
    }
    cfg = json.dumps(config).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(c), "size": len(c)}
                   for c in compressed],
    }).encode()
    mdigest = put(manifest)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return mdigest


# --- registries ----------------------------------------------------------------------------


@dataclass
class RegistryServer:
    host: str
    proc: subprocess.Popen[bytes]
    creds: tuple[str, str] | None = None
    token_server: ThreadingHTTPServer | None = None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.token_server:
            self.token_server.shutdown()
            self.token_server.server_close()

    def skopeo_creds(self) -> list[str]:
        return ["--dest-creds", ":".join(self.creds)] if self.creds else []


def _wait_ready(host: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # 401: up, and asking for auth
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("docker-registry did not start")


def start_registry(workdir: Path, auth: str = "none") -> RegistryServer:
    """A docker-registry on 127.0.0.1:<free port>; auth is none, basic or token."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    host = f"127.0.0.1:{port}"
    lines = ["version: 0.1", "log:", "  level: error", "storage:", "  filesystem:",
             f"    rootdirectory: {workdir / 'data'}", "  delete:", "    enabled: true",
             "http:", f"  addr: {host}"]
    creds = None
    token_server = None
    if auth == "basic":
        creds = USER
        htp = subprocess.run(["htpasswd", "-Bbn", *USER], capture_output=True, text=True, check=True)
        (workdir / "htpasswd").write_text(htp.stdout)
        lines += ["auth:", "  htpasswd:", "    realm: pyctr-test", f"    path: {workdir / 'htpasswd'}"]
    elif auth == "token":
        creds = USER
        token_server, realm, cert = start_token_server(workdir)
        lines += ["auth:", "  token:", f"    realm: {realm}", "    service: pyctr-registry",
                  "    issuer: pyctr-test-issuer", f"    rootcertbundle: {cert}"]
    config = workdir / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log = workdir / "registry.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=logf, stderr=logf)
    server = RegistryServer(host, proc, creds, token_server)
    try:
        _wait_ready(host, proc, log)
    except BaseException:
        server.stop()
        raise
    return server


# --- a token server the registry trusts ----------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _make_key_and_cert(workdir: Path) -> tuple[Any, bytes, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyctr-test-token")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = workdir / "token-cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert.public_bytes(serialization.Encoding.DER), path


def _sign_jwt(key: Any, cert_der: bytes, claims: dict[str, Any]) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(cert_der).decode()]}
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64(signature)


def start_token_server(workdir: Path) -> tuple[ThreadingHTTPServer, str, Path]:
    """Issues tokens for any scope to USER (Basic); anonymous requests are refused."""
    key, cert_der, cert_path = _make_key_and_cert(workdir)
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            from urllib.parse import parse_qs, urlsplit
            requests.append(self.path)
            expected = "Basic " + base64.b64encode(":".join(USER).encode()).decode()
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.end_headers()
                return
            query = parse_qs(urlsplit(self.path).query)
            access = []
            for scope in query.get("scope", []):
                kind, name, actions = scope.split(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
            now = int(time.time())
            claims = {"iss": "pyctr-test-issuer", "sub": USER[0], "aud": query["service"][0],
                      "exp": now + 600, "nbf": now - 10, "iat": now, "jti": str(now) + self.path,
                      "access": access}
            body = json.dumps({"token": _sign_jwt(key, cert_der, claims)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.requests = requests  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/token", cert_path


def skopeo_push_layout(layout: Path, tag: str, dest: str, server: RegistryServer) -> None:
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", *server.skopeo_creds(),
                    f"oci:{layout}:{tag}", f"docker://{dest}"], check=True, capture_output=True,
                   timeout=120)


def registry_fixture(tmp: Path, auth: str) -> Iterator[RegistryServer]:
    if not shutil.which("docker-registry"):
        import pytest
        pytest.skip("needs docker-registry")
    server = start_registry(tmp, auth)
    try:
        yield server
    finally:
        server.stop()


# --- running pyctr -------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent.parent


@dataclass
class CmdResult:
    rc: int
    out: str
    err: str


@dataclass
class Pyctr:
    """`python -m pyctr` with a private --root, runtime and docker config dir."""

    root: Path
    runtime: str
    docker_config: Path

    def run(self, *args: str, check: bool = True, input: str | None = None,
            timeout: float = 120) -> CmdResult:
        import os
        import sys
        env = dict(os.environ, PYTHONPATH=str(REPO), DOCKER_CONFIG=str(self.docker_config))
        p = subprocess.run([sys.executable, "-m", "pyctr", "--root", str(self.root),
                            "--runtime", self.runtime, *args], capture_output=True, text=True,
                           env=env, input=input, timeout=timeout)
        r = CmdResult(p.returncode, p.stdout, p.stderr)
        if check and r.rc != 0:
            raise AssertionError(f"pyctr {' '.join(args)} failed rc={r.rc}: {r.err}{r.out}")
        return r

    def cleanup(self) -> None:
        """rm -f every container left, so no mount or process outlives the test."""
        if (self.root / "containers").is_dir():
            ids = [p.name for p in (self.root / "containers").iterdir() if not p.name.startswith(".")]
            for cid in ids:
                self.run("rm", "-f", cid, check=False)


# --- stores where the modes are pyctr's own, and an unprivileged host user -----------------

# pytest's tmp_path sits under a 0700 directory, which would hide what pyctr's own modes allow:
# these stores live under a world-traversable base instead.
STORE_BASE = Path(os.environ.get("PYCTR_TEST_STORE_BASE", "/tmp/p15"))
RUNTIME_PARAMS = [r for r in os.environ.get(
    "PYCTR_TEST_RUNTIMES",
    (os.environ.get("PYRUNC") or str(REPO / ".venv/bin/pyrunc")) + ",runc").split(",") if r]


def open_store_dir(tag: str) -> Path:
    STORE_BASE.mkdir(parents=True, exist_ok=True)
    STORE_BASE.chmod(0o755)
    path = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=STORE_BASE))
    path.chmod(0o755)
    return path


def build_euid_probe(dest: Path) -> Path:
    """A static program that prints its effective uid (busybox drops a setuid bit itself)."""
    src = dest.with_suffix(".c")
    src.write_text('#include <stdio.h>\n#include <unistd.h>\n'
                   'int main(void) { printf("euid=%d\\n", (int)geteuid()); return 0; }\n')
    subprocess.run(["cc", "-static", "-O2", "-o", str(dest), str(src)], check=True,
                   capture_output=True, timeout=120)
    return dest


def make_pyctr(runtime_param: str, base: Path) -> Pyctr:
    import pytest

    runtime = shutil.which(runtime_param) or runtime_param
    if not os.path.exists(runtime):
        pytest.skip(f"runtime {runtime_param} not found")
    return Pyctr(base / "root", runtime, base / "docker-config")


def pyctr_in_open_store(runtime_param: str, tag: str) -> Iterator[Pyctr]:
    """A Pyctr on a store under STORE_BASE (reachable by other users, as a real store's parent
    is), removed with everything it made at the end."""
    base = open_store_dir(tag)
    p = make_pyctr(runtime_param, base)
    try:
        yield p
    finally:
        p.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def open_store_fixtures(tag: str) -> tuple[Any, Any]:
    """A test module's `registry` (module-wide, busybox_registry) and `pyctr` (one per runtime,
    pyctr_in_open_store) fixtures: `registry, pyctr = open_store_fixtures("p15-x")`."""
    import pytest

    @pytest.fixture(scope="module")
    def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
        yield from busybox_registry(tmp_path_factory.mktemp(tag + "-reg"))

    @pytest.fixture(params=RUNTIME_PARAMS)
    def pyctr(request: pytest.FixtureRequest) -> Iterator[Pyctr]:
        yield from pyctr_in_open_store(request.param, tag)

    return registry, pyctr


def busybox_registry(tmp: Path, cmd: list[str] | None = None) -> Iterator[RegistryServer]:
    """A registry on 127.0.0.1 serving the busybox test image as test/busybox:v1, and as
    test/volume:v1 with VOLUME /home/app (0750, app's), User app, WorkingDir /srv/work."""
    layout = tmp / "layout"
    build_oci_layout(layout, cmd=cmd)
    volumes = tmp / "layout-volume"
    build_oci_layout(volumes, config_extra={"Volumes": {"/home/app": {}}, "User": "app",
                                            "WorkingDir": "/srv/work"},
                     extra_layer=volume_layer())
    server = start_registry(tmp / "registry", "none")
    try:
        skopeo_push_layout(layout, "latest", f"{server.host}/test/busybox:v1", server)
        skopeo_push_layout(volumes, "latest", f"{server.host}/test/volume:v1", server)
        yield server
    finally:
        server.stop()
