"""pyctr against Debian's docker-registry (anonymous, Basic via htpasswd, Bearer tokens from a
test token server), with skopeo on the other side in both directions."""

from __future__ import annotations

import json
import subprocess  # noqa: TID251 - tests drive real tools
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyctr_fixtures import (
    USER,
    Pyctr,
    RegistryServer,
    build_oci_layout,
    skopeo_push_layout,
    start_registry,
)

pytestmark = pytest.mark.requires("cmd:docker-registry", "cmd:skopeo")


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("layout") / "oci"
    return path, build_oci_layout(path)


@pytest.fixture(scope="module", params=["none", "basic", "token"])
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             layout: tuple[Path, str]) -> Iterator[RegistryServer]:
    auth = request.param
    if auth == "basic" and subprocess.run(["which", "htpasswd"], capture_output=True).returncode:
        pytest.skip("needs htpasswd (apache2-utils)")
    server = start_registry(tmp_path_factory.mktemp(f"registry-{auth}"), auth)
    try:
        skopeo_push_layout(layout[0], "latest", f"{server.host}/test/busybox:v1", server)
        yield server
    finally:
        server.stop()


@pytest.fixture
def pyctr(tmp_path: Path, registry: RegistryServer) -> Pyctr:
    p = Pyctr(tmp_path / "root", "runc", tmp_path / "docker-config")
    if registry.creds:
        p.run("login", "-u", registry.creds[0], "--password-stdin", registry.host,
              input=registry.creds[1] + "\n")
    return p


def test_pull_what_skopeo_pushed(pyctr: Pyctr, registry: RegistryServer,
                                 layout: tuple[Path, str]) -> None:
    ref = f"{registry.host}/test/busybox:v1"
    r = pyctr.run("pull", ref)
    assert "Digest: " + layout[1] in r.err
    images = pyctr.run("images").out
    assert f"{registry.host}/test/busybox" in images and "v1" in images
    inspect = json.loads(pyctr.run("inspect", ref).out)[0]
    assert inspect["Digest"] == layout[1]
    assert inspect["Config"]["config"]["Labels"] == {"org.example.test": "pyctr"}
    # every blob is in the store under its own digest
    blobs = pyctr.root / "blobs" / "sha256"
    for layer in inspect["Manifest"]["layers"]:
        assert (blobs / layer["digest"][7:]).stat().st_size == layer["size"]
    again = pyctr.run("pull", ref)
    assert again.err.count("Already exists") == 3


def test_push_then_skopeo_copies_back(pyctr: Pyctr, registry: RegistryServer,
                                      layout: tuple[Path, str], tmp_path: Path) -> None:
    pyctr.run("pull", f"{registry.host}/test/busybox:v1")
    dest = f"{registry.host}/other/pushed:v9"
    pyctr.run("tag", f"{registry.host}/test/busybox:v1", dest)
    r = pyctr.run("push", dest)
    assert "Mounted from test/busybox" in r.err  # cross-repository mount
    creds = ["--src-creds", ":".join(registry.creds)] if registry.creds else []
    out = tmp_path / "back"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", *creds,
                    f"docker://{dest}", f"oci:{out}:v9"], check=True, capture_output=True)
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == layout[1]


def test_wrong_credentials_are_refused(registry: RegistryServer, tmp_path: Path) -> None:
    if not registry.creds:
        pytest.skip("anonymous registry")
    p = Pyctr(tmp_path / "root", "runc", tmp_path / "docker-config")
    r = p.run("pull", f"{registry.host}/test/busybox:v1", check=False)
    assert r.rc == 1
    assert "unauthorized" in r.err.lower() or "authentication required" in r.err
    bad = p.run("login", "-u", USER[0], "-p", "wrong", registry.host, check=False)
    assert bad.rc == 1
    assert not (tmp_path / "docker-config" / "config.json").exists()


def test_missing_image_is_reported(pyctr: Pyctr, registry: RegistryServer) -> None:
    r = pyctr.run("pull", f"{registry.host}/test/busybox:nope", check=False)
    assert r.rc == 1 and "pyctr:" in r.err and "404" in r.err
