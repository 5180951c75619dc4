"""An idmapped rootfs (issue 19), asked for as crun takes it: runtime-spec 1.3's `root` has no
mappings, so the config binds the rootfs path onto `/` with `idmap` (and the mount's own
uidMappings/gidMappings, or the container's). A root-owned image then shows as owned by the
container's root inside a user namespace mapping 0 -> 100000, and what it writes is owned by
root on disk, without a chown of the image. Each run is inside private mount, uts, ipc and network
namespaces.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from testlib import base_config

pytestmark = pytest.mark.requires("root", "busybox", "userns", "cmd:unshare")

REPO = Path(__file__).resolve().parents[3]
PYRUNC = os.environ.get("PYRUNC") or str(REPO / ".venv" / "bin" / "pyrunc")
MAPS = [{"containerID": 0, "hostID": 100000, "size": 65536}]
PROBE = ("stat -c '%u %g' /bin/busybox; touch /tmp/made && echo wrote; "
         "grep -c ' / .*idmapped' /proc/self/mountinfo || true")


@pytest.fixture
def top(busybox_rootfs: Path) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rl-"))
    path.chmod(0o755)
    shutil.copytree(busybox_rootfs, path / "bundle" / "rootfs", symlinks=True)
    yield path
    shutil.rmtree(path)


def _run(top: Path, args: list[str], mounts: list[dict[str, object]],
         userns: bool = True) -> subprocess.CompletedProcess[str]:
    config = base_config(args)
    config["root"]["readonly"] = False
    config["mounts"] = mounts + config["mounts"]
    if userns:
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"].update(uidMappings=MAPS, gidMappings=MAPS)
    (top / "bundle" / "config.json").write_text(json.dumps(config))
    return subprocess.run(["unshare", "-m", "--propagation", "private", "-u", "-i", "-n",
                           PYRUNC, "--root", str(top / "state"), "run", "-b",
                           str(top / "bundle"), "rl-" + uuid.uuid4().hex[:8]],
                          capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)


def test_idmapped_rootfs_shows_the_image_owned_by_the_containers_root(top: Path) -> None:
    rootfs = top / "bundle" / "rootfs"
    r = _run(top, ["sh", "-c", PROBE], [{"destination": "/", "type": "bind",
                                         "source": str(rootfs), "options": ["rbind", "idmap"]}])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["0 0", "wrote", "1"]
    st = (rootfs / "tmp" / "made").stat()
    assert (st.st_uid, st.st_gid) == (0, 0)  # written as 100000, stored as the image's root


def test_without_idmap_the_image_is_the_overflow_id(top: Path) -> None:
    r = _run(top, ["sh", "-c", PROBE], [])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["65534 65534", "wrote", "0"]
    st = (top / "bundle" / "rootfs" / "tmp" / "made").stat()
    assert (st.st_uid, st.st_gid) == (100000, 100000)


def test_the_mounts_own_mappings_win(top: Path) -> None:
    """uidMappings on the mount: the image's root (0) shows as 7 (0 -> 100007 -> 7)."""
    own = [{"containerID": 0, "hostID": 100007, "size": 1}]
    r = _run(top, ["stat", "-c", "%u %g", "/bin/busybox"],
             [{"destination": "/", "type": "bind", "source": str(top / "bundle" / "rootfs"),
               "options": ["rbind", "idmap"], "uidMappings": own, "gidMappings": own}])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "7 7\n"


def test_a_bind_mount_on_root_becomes_the_root(top: Path, busybox_rootfs: Path) -> None:
    """Without idmap too: another directory bound onto / is what the container sees, read-only
    as the mount asks; the other mounts (/proc) go on top of it."""
    other = top / "other"
    shutil.copytree(busybox_rootfs, other, symlinks=True)
    (other / "marker").write_text("other\n")
    r = _run(top, ["sh", "-c", "cat /marker; touch /x 2>/dev/null || echo ro; "
                   "test -e /proc/self/status && echo proc"],
             [{"destination": "/", "type": "bind", "source": str(other),
               "options": ["rbind", "ro"]}], userns=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["other", "ro", "proc"]
    assert not (top / "bundle" / "rootfs" / "marker").exists()
