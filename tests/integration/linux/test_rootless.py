"""Rootless containers: pyrunc started by a real unprivileged user made for the test (with ranges
in /etc/subuid and /etc/subgid), as runc's and crun's rootless mode. The container's namespaces,
a user namespace first, are its own: nothing it does reaches the host's; the test checks the
files it leaves and that nothing of it is left behind."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from testlib import HostUser, base_config, rootless_user, user_tree

pytestmark = pytest.mark.requires("root", "busybox", "userns", "cmd:setpriv", "cmd:useradd",
                                  "cmd:newuidmap")

REPO = Path(__file__).resolve().parents[3]
PYRUNC = os.environ.get("PYRUNC") or str(REPO / ".venv" / "bin" / "pyrunc")


@pytest.fixture(scope="module")
def user() -> Iterator[HostUser]:
    with rootless_user("p19-" + uuid.uuid4().hex[:6], PYRUNC) as u:
        yield u


@pytest.fixture
def home(user: HostUser, busybox_rootfs: Path) -> Iterator[Path]:
    """The user's bundle, its own rootfs copy and its runtime dir, under a traversable dir."""
    with user_tree(user, busybox_rootfs, "p19-", "run") as top:
        yield top


def _config(user: HostUser, args: list[str], subids: bool) -> dict[str, object]:
    """`pyrunc spec --rootless`'s config (written by the user below), with `args`."""
    c = base_config(args)
    c.pop("hostname", None)
    linux = c["linux"]
    assert isinstance(linux, dict)
    maps: dict[str, list[dict[str, int]]] = {}
    for kind, own in (("uid", user.uid), ("gid", user.gid)):
        maps[kind] = [{"containerID": 0, "hostID": own, "size": 1}]
        if subids:
            start, count = user.subids(kind)
            maps[kind].append({"containerID": 1, "hostID": start, "size": count})
    return {"uidMappings": maps["uid"], "gidMappings": maps["gid"]}


def _rootless(user: HostUser, home: Path, args: list[str], subids: bool = False,
              edit: dict[str, object] | None = None) -> dict[str, object]:
    r = user.run(PYRUNC, "spec", "--rootless", "-b", str(home / "bundle"))
    assert r.returncode == 0, r.stderr
    config = json.loads((home / "bundle" / "config.json").read_text())
    config["process"].update(args=args, terminal=False)
    config["root"]["readonly"] = False
    config["linux"].update(_config(user, args, subids))
    config.update(edit or {})
    (home / "bundle" / "config.json").write_text(json.dumps(config))
    return config


def _run(user: HostUser, home: Path, cid: str) -> tuple[int, str, str]:
    env = {"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(home / "run")}
    r = user.run(PYRUNC, "run", "-b", str(home / "bundle"), cid, env=env)
    return r.returncode, r.stdout, r.stderr


def test_rootless_container_runs_in_its_user_namespace(user: HostUser, home: Path) -> None:
    _rootless(user, home, ["sh", "-c", "id -u; cat /proc/self/uid_map; touch /tmp/made"])
    rc, out, err = _run(user, home, "r1")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(user.uid), "1"]
    st = (home / "bundle" / "rootfs" / "tmp" / "made").stat()
    assert (st.st_uid, st.st_gid) == (user.uid, user.gid)
    # state under $XDG_RUNTIME_DIR/pyrunc (no --root), and gone after the foreground run
    assert (home / "run" / "pyrunc").is_dir()
    assert list((home / "run" / "pyrunc").iterdir()) == []


def test_rootless_with_subordinate_ids(user: HostUser, home: Path) -> None:
    """More than its own id: newuidmap/newgidmap map the user's /etc/subuid and /etc/subgid
    ranges; a file chowned to 1000 inside belongs to the subordinate id 1000 maps to."""
    config = _rootless(user, home, ["sh", "-c", "cat /proc/self/uid_map; touch /tmp/f; chown 1000:1000 /tmp/f"],
                       subids=True)
    caps = config["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        caps[kind].append("CAP_CHOWN")
    (home / "bundle" / "config.json").write_text(json.dumps(config))
    rc, out, err = _run(user, home, "r2")
    assert rc == 0, err
    start, _ = user.subids("uid")
    assert [line.split() for line in out.splitlines()][1] == ["1", str(start), str(user.subids("uid")[1])]
    st = (home / "bundle" / "rootfs" / "tmp" / "f").stat()
    assert (st.st_uid, st.st_gid) == (start + 999, user.subids("gid")[0] + 999)


def test_rootless_cannot_read_root_only_host_files(user: HostUser, home: Path) -> None:
    secret = home / "secret"
    secret.write_text("root only\n")
    secret.chmod(0o600)
    config = _rootless(user, home, ["sh", "-c", "cat /etc/secret || echo denied"])
    config["mounts"].append({"destination": "/etc/secret", "type": "bind", "source": str(secret),
                             "options": ["bind", "ro"]})
    (home / "bundle" / "config.json").write_text(json.dumps(config))
    rc, out, err = _run(user, home, "r3")
    assert (rc, out) == (0, "denied\n"), err  # bound, but not readable by the mapped root


def test_rootless_resources_without_a_delegated_cgroup_are_refused(user: HostUser, home: Path) -> None:
    config = _rootless(user, home, ["true"])
    config["linux"]["resources"] = {"memory": {"limit": 100 * 2**20}}
    (home / "bundle" / "config.json").write_text(json.dumps(config))
    rc, out, err = _run(user, home, "r4")
    assert rc == 1
    assert err.strip() == ("linux.resources.memory.limit: a rootless container has no writable "
                           "memory cgroup here (no delegated subtree)")
    assert list((home / "run" / "pyrunc").iterdir()) == []  # no state left
