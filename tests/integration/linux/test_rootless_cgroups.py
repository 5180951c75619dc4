"""Rootless containers in a delegated cgroup subtree: root chowns a cgroup to a user and places the
user's session in it (what systemd's `Delegate=` does for user@.service); pyrunc, run by that
user, makes the container's cgroup inside it and applies the limits there.

This host is cgroup v1 with a cgroup2 mount holding no controller but hugetlb: the test delegates a
v1 `pids` subtree (a limit, seen from outside and felt inside) and a cgroup2 subtree (membership,
freezing for pause/resume). A v1 subtree needs only its directory chowned (moving a task in v1
checks the task's owner, not the ancestors); a cgroup2 one needs `cgroup.procs` too, and the
process must already be inside it (a move needs write access to the common ancestor's).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from testlib import HostUser, unprivileged_user

pytestmark = pytest.mark.requires("root", "busybox", "userns", "cmd:setpriv", "cmd:useradd",
                                  "cgroup-v2")

REPO = Path(__file__).resolve().parents[3]
PYRUNC = os.environ.get("PYRUNC") or str(REPO / ".venv" / "bin" / "pyrunc")
V1_PIDS = Path("/sys/fs/cgroup/pids")
V1_DEVICES = Path("/sys/fs/cgroup/devices")
V2 = Path("/sys/fs/cgroup/unified")


@pytest.fixture(scope="module")
def user() -> Iterator[HostUser]:
    with unprivileged_user("rl-" + uuid.uuid4().hex[:6]) as u:
        if u.run(PYRUNC, "--version").returncode != 0:
            pytest.skip("pyrunc's checkout is not readable by other users here")
        yield u


def _kill_and_rmdir(top: Path) -> None:
    for d in sorted((Path(p) for p, _, _ in os.walk(top)), key=lambda p: -len(p.parts)):
        for pid in (d / "cgroup.procs").read_text().split():
            os.kill(int(pid), signal.SIGKILL)
        for _ in range(100):
            try:
                d.rmdir()
                break
            except OSError:  # EBUSY while the killed tasks are released
                time.sleep(0.05)


@pytest.fixture
def delegated(user: HostUser) -> Iterator[dict[str, Path]]:
    """A cgroup per hierarchy, /rl-<hex>, owned by the user (devices too: its rules are still
    not the user's to write)."""
    if not V1_PIDS.is_dir() or not V1_DEVICES.is_dir() or not (V2 / "cgroup.procs").exists():
        pytest.skip("needs cgroup v1 pids and devices hierarchies and a cgroup2 mount at " + str(V2))
    name = "rl-" + uuid.uuid4().hex[:8]
    dirs = {"pids": V1_PIDS / name, "devices": V1_DEVICES / name, "": V2 / name}
    try:
        for d in dirs.values():
            d.mkdir()
            os.chown(d, user.uid, user.gid)
        for f in ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
            os.chown(dirs[""] / f, user.uid, user.gid)
        yield dirs
    finally:
        for d in dirs.values():
            if d.is_dir():
                _kill_and_rmdir(d)


@pytest.fixture
def bundle(user: HostUser, busybox_rootfs: Path) -> Iterator[Path]:
    """`pyrunc spec --rootless` (written by the user), cgroupsPath `ctr`: relative, so inside
    the cgroup the user's session is in."""
    top = Path(tempfile.mkdtemp(prefix="rl-"))
    top.chmod(0o755)
    shutil.copytree(busybox_rootfs, top / "bundle" / "rootfs", symlinks=True)
    (top / "run").mkdir(mode=0o700)
    for path in [top, *top.rglob("*")]:
        os.lchown(path, user.uid, user.gid)
    r = user.run(PYRUNC, "spec", "--rootless", "-b", str(top / "bundle"))
    assert r.returncode == 0, r.stderr
    yield top
    shutil.rmtree(top)


def _config(top: Path, args: list[str], resources: dict[str, object]) -> None:
    path = top / "bundle" / "config.json"
    config = json.loads(path.read_text())
    config["process"].update(args=args, terminal=False)
    config["root"]["readonly"] = False
    config["linux"].update(cgroupsPath="ctr", resources=resources)
    path.write_text(json.dumps(config))


def _as_user_in(user: HostUser, dirs: dict[str, Path], top: Path, script: str
                ) -> subprocess.CompletedProcess[str]:
    """`script` run by the user in a session root placed in the delegated cgroups."""
    place = " && ".join(f"echo $$ > {d}/cgroup.procs" for d in dirs.values())
    env = {"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(top / "run"), "PYRUNC": PYRUNC,
           "BUNDLE": str(top / "bundle")}
    return subprocess.run(["sh", "-c", f'{place} && exec "$@"', "sh",
                           "setpriv", f"--reuid={user.uid}", f"--regid={user.gid}",
                           "--clear-groups", "--", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60, env=env,
                          stdin=subprocess.DEVNULL, check=False)


def test_pids_limit_in_a_delegated_v1_subtree(user: HostUser, delegated: dict[str, Path],
                                              bundle: Path) -> None:
    _config(bundle, ["sh", "-c", "grep -E ':pids:|^0::' /proc/self/cgroup; i=0; "
                     "while [ $i -lt 8 ]; do sleep 1 & i=$((i+1)); done; wait"],
            {"pids": {"limit": 5}})
    ctr = delegated["pids"] / "ctr"
    r = _as_user_in(user, delegated, bundle, f"""
"$PYRUNC" create -b "$BUNDLE" rl-pids </dev/null >"$BUNDLE/out" 2>&1 || exit 1
cat {ctr}/pids.max {ctr}/cgroup.procs
test -d {delegated["devices"]}/ctr || echo no-devices-cgroup
"$PYRUNC" state rl-pids | tr -d ' ,' | grep '"pid"'
"$PYRUNC" start rl-pids
while "$PYRUNC" state rl-pids | grep -q '"running"'; do sleep 0.1; done
"$PYRUNC" delete rl-pids
test -d {ctr} && echo left || echo removed
""")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "5"  # the limit, in the cgroup pyrunc made in the user's subtree
    # the device rules are left out: writing them needs CAP_SYS_ADMIN of the host
    assert lines[2] == "no-devices-cgroup"
    assert f'"pid":{lines[1]}' == lines[3]  # and the init in it
    assert lines[4] == "removed"
    out = (bundle / "bundle" / "out").read_text().splitlines()
    name = delegated["pids"].name
    assert out[:2] == [f"{out[0].split(':')[0]}:pids:/{name}/ctr", f"0::/{name}/ctr"]
    assert "can't fork" in "\n".join(out[2:])  # 8 sleeps do not fit in 5 pids


def test_pause_resume_in_a_delegated_cgroup2_subtree(user: HostUser, delegated: dict[str, Path],
                                                      bundle: Path) -> None:
    """No v1 freezer of the user's: pause freezes the cgroup2 directory pyrunc made."""
    _config(bundle, ["sleep", "60"], {})
    events = delegated[""] / "ctr" / "cgroup.events"
    r = _as_user_in(user, delegated, bundle, f"""
"$PYRUNC" create -b "$BUNDLE" rl-frz </dev/null >/dev/null 2>&1 || exit 1
"$PYRUNC" start rl-frz
"$PYRUNC" pause rl-frz && grep frozen {events}
"$PYRUNC" state rl-frz | grep -o '"paused"'
"$PYRUNC" resume rl-frz && grep frozen {events}
"$PYRUNC" delete --force rl-frz
""")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["frozen 1", '"paused"', "frozen 0"]
