"""Issue 15: a container's layers are root's alone (the local root hole).

Were the store walkable by any host user, a setuid-root binary that a container's root leaves in
its writable layer would run on the host as root. The store lives under a world-traversable base
here (pytest's tmp_path is 0700 and would hide the hole).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyctr_fixtures import (
    HostUser,
    Pyctr,
    RegistryServer,
    build_euid_probe,
    open_store_fixtures,
    unprivileged_user,
)

pytestmark = pytest.mark.requires("root", "cmd:docker-registry", "cmd:skopeo", "busybox",
                                  "cmd:cc", "cmd:useradd", "cmd:setpriv")


registry, pyctr = open_store_fixtures("p15-modes")


@pytest.fixture
def user() -> Iterator[HostUser]:
    with unprivileged_user("p15-nobody") as u:
        yield u


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_setuid_binary_in_writable_layer_is_out_of_reach(
        pyctr: Pyctr, registry: RegistryServer, user: HostUser, tmp_path: Path) -> None:
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    build_euid_probe(probe_dir / "euid")
    image = f"{registry.host}/test/busybox:v1"
    pyctr.run("pull", image)
    cid = pyctr.run("run", "-d", "--name", "p15-suid", "-v", f"{probe_dir}:/probe:ro", image,
                    "sh", "-c", "cp /probe/euid /euid && chmod 4755 /euid && touch /ready && "
                    "exec sleep 100").out.strip()
    cdir = pyctr.root / "containers" / cid
    deadline = time.monotonic() + 20
    while not (cdir / "upper" / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    planted = [cdir / "upper" / "euid", cdir / "rootfs" / "euid"]
    assert all(_mode(p) & stat.S_ISUID for p in planted)  # the container's root did plant it

    for path in planted:
        ran = user.run(str(path))
        assert "euid=0" not in ran.stdout, f"{path} ran as root for {user.name}"
        assert ran.returncode != 0
        listing = user.run("ls", "-l", str(path))
        assert listing.returncode != 0, f"{user.name} can see {path}: {listing.stdout}"
    assert _mode(pyctr.root) & 0o007 == 0
    assert _mode(cdir) == 0o700
    assert _mode(pyctr.root / "layers") == 0o700


def test_existing_store_is_fixed_on_start(pyctr: Pyctr, registry: RegistryServer,
                                          user: HostUser) -> None:
    image = f"{registry.host}/test/busybox:v1"
    pyctr.run("pull", image)
    pyctr.run("run", "--name", "p15-old", image, "true")
    cid = pyctr.run("ps", "-a", "-q").out.strip()
    cdir = next((pyctr.root / "containers").glob(cid + "*"))
    # A store as an older pyctr left it: everything 0755.
    for path in (pyctr.root, pyctr.root / "containers", pyctr.root / "layers", cdir):
        path.chmod(0o755)
    assert user.run("ls", str(cdir / "upper")).returncode == 0
    pyctr.run("images")
    assert _mode(pyctr.root) == 0o700
    assert _mode(pyctr.root / "containers") == 0o700
    assert _mode(pyctr.root / "layers") == 0o700
    assert _mode(cdir) == 0o700
    assert user.run("ls", str(cdir / "upper")).returncode != 0
