"""Challenges and credentials in docker's config.json format."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from pyctr.image.auth import CredentialStore, parse_challenge


def test_bearer_challenge() -> None:
    ch = parse_challenge('Bearer realm="https://auth.example/token",service="registry.example",'
                         'scope="repository:a/b:pull,push"')
    assert ch.scheme == "bearer"
    assert ch.params == {"realm": "https://auth.example/token", "service": "registry.example",
                         "scope": "repository:a/b:pull,push"}


def test_basic_challenge() -> None:
    ch = parse_challenge('Basic realm="Registry Realm"')
    assert (ch.scheme, ch.params["realm"]) == ("basic", "Registry Realm")


def test_credentials_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "docker" / "config.json"
    store = CredentialStore(path)
    assert store.get("example.com") is None
    store.set("example.com:5000", "user", "pa:ss")
    assert store.get("example.com:5000") == ("user", "pa:ss")
    assert path.stat().st_mode & 0o777 == 0o600
    assert store.remove("example.com:5000")
    assert store.get("example.com:5000") is None


def test_reads_docker_written_config(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    auth = base64.b64encode(b"alice:secret").decode()
    path.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth}},
                                "credsStore": "desktop"}))
    assert CredentialStore(path).get("docker.io") == ("alice", "secret")
    CredentialStore(path).set("other.io", "bob", "pw")
    data = json.loads(path.read_text())
    assert data["credsStore"] == "desktop" and "other.io" in data["auths"]
