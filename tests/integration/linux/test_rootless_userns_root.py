"""pyrunc run by root of a user namespace that is not the initial one, as rootless podman runs it:
conmon and the runtime are uid 0 of the user namespace podman's pause process holds (the user's
own id and its /etc/subuid range), the config asks for no user namespace of its own.

runc's rules apply there (rootless_linux.go): rootless cgroups, state under $XDG_RUNTIME_DIR,
device nodes bound from the host (no mknod), and that root may make a pid namespace but not setns
back into its own. The test makes a real unprivileged user; `unshare` as that user gives the user
namespace (through newuidmap/newgidmap) and private mount, uts, ipc and network namespaces, with
a read-only empty /run/pyrunc: nothing of the host's /run is that root's to write.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from testlib import HostUser, base_config, rootless_user, user_tree

pytestmark = pytest.mark.requires("root", "busybox", "userns", "cmd:setpriv", "cmd:useradd",
                                  "cmd:newuidmap", "cmd:unshare")

REPO = Path(__file__).resolve().parents[3]
PYRUNC = os.environ.get("PYRUNC") or str(REPO / ".venv" / "bin" / "pyrunc")

# Run as the user: unshare maps root to the user and 1..65536 to its subordinate range, as
# podman's pause process does; the script hides /run/pyrunc and notes the runtime's pid namespace.
WRAPPER = """set -e
mount -t tmpfs -o ro,mode=755 tmpfs /run/pyrunc
readlink /proc/self/ns/pid > "$TOP/runtime-pidns"
exec "$@"
"""


@pytest.fixture(scope="module")
def user() -> Iterator[HostUser]:
    with rootless_user("rl-" + uuid.uuid4().hex[:6], PYRUNC) as u:
        yield u


@pytest.fixture
def top(user: HostUser, busybox_rootfs: Path) -> Iterator[Path]:
    """The user's bundle (its own rootfs copy), its XDG_RUNTIME_DIR and the wrapper script."""
    with user_tree(user, busybox_rootfs, "rl-", "xdg", own_top=True) as path:
        (path / "wrapper.sh").write_text(WRAPPER)
        os.lchown(path / "wrapper.sh", user.uid, user.gid)
        yield path


def _run_as_userns_root(user: HostUser, top: Path, args: list[str],
                        hooks: dict[str, object] | None = None,
                        script: str | None = None) -> tuple[int, str, str]:
    """`pyrunc run` of a container running `args` as root of the user namespace, or `script`
    (sh, with $PYRUNC and $BUNDLE) to drive it."""
    config = base_config(args)
    config["linux"]["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")]
    config["root"]["readonly"] = False
    if hooks:
        config["hooks"] = hooks
    (top / "bundle" / "config.json").write_text(json.dumps(config))
    start, count = user.subids("uid")
    gstart, gcount = user.subids("gid")
    env = {"PATH": os.environ["PATH"], "USER": user.name, "TOP": str(top),
           "XDG_RUNTIME_DIR": str(top / "xdg"), "PYRUNC": PYRUNC, "BUNDLE": str(top / "bundle")}
    command = (["sh", "-c", script] if script else
               [PYRUNC, "run", "-b", str(top / "bundle"), "rl-" + uuid.uuid4().hex[:8]])
    r = user.run("unshare", "--map-root-user", f"--map-users={start},1,{count}",
                 f"--map-groups={gstart},1,{gcount}", "--mount", "--uts", "--ipc", "--net",
                 "--fork", "sh", str(top / "wrapper.sh"), *command, env=env)
    return r.returncode, r.stdout, r.stderr


def test_root_of_a_user_namespace_runs_a_container(user: HostUser, top: Path) -> None:
    rc, out, err = _run_as_userns_root(user, top, [
        "sh", "-c", "id -u; cat /proc/self/uid_map; echo pid=$$; ls -ln /dev/null"])
    assert rc == 0, err
    lines = out.splitlines()
    start, count = user.subids("uid")
    assert lines[0] == "0"
    assert [line.split() for line in lines[1:3]] == [["0", str(user.uid), "1"],
                                                     ["1", str(start), str(count)]]
    assert lines[3] == "pid=1"  # its own pid namespace, made by a first child
    assert lines[4].startswith("c") and "1,   3" in lines[4]  # the host's /dev/null, bound
    # state under $XDG_RUNTIME_DIR/pyrunc (/run/pyrunc is read-only), gone after the run
    assert (top / "xdg" / "pyrunc").is_dir()
    assert list((top / "xdg" / "pyrunc").iterdir()) == []


def test_hooks_run_in_the_runtimes_pid_namespace(user: HostUser, top: Path) -> None:
    """The init's pid namespace is made by a first child: the runtime itself, and the hooks it
    forks afterwards, stay in their own."""
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"readlink /proc/self/ns/pid > {top}/hook-pidns"]}
    rc, _, err = _run_as_userns_root(user, top, ["true"], {"createRuntime": [hook],
                                                           "poststop": [hook]})
    assert rc == 0, err
    assert (top / "hook-pidns").read_text() == (top / "runtime-pidns").read_text()


def test_exec_into_a_container_of_root_of_a_user_namespace(user: HostUser, top: Path) -> None:
    """`exec` enters the container's pid namespace through a middle child (the runtime could not
    setns back into its own) and still waits for the process and returns its status."""
    script = """set -e
"$PYRUNC" create -b "$BUNDLE" rl-ex >/dev/null 2>&1 </dev/null
"$PYRUNC" start rl-ex
rc=0; "$PYRUNC" exec rl-ex sh -c 'echo exec-pid=$$; cat /proc/self/uid_map; exit 5' || rc=$?
echo rc=$rc
"$PYRUNC" exec rl-ex readlink /proc/self/ns/pid
readlink /proc/self/ns/pid
"$PYRUNC" delete --force rl-ex
"""
    rc, out, err = _run_as_userns_root(user, top, ["sleep", "60"], script=script)
    assert rc == 0, err
    lines = out.splitlines()
    start, count = user.subids("uid")
    assert lines[0].startswith("exec-pid=") and lines[0] != "exec-pid=1"
    assert [line.split() for line in lines[1:3]] == [["0", str(user.uid), "1"],
                                                     ["1", str(start), str(count)]]
    assert lines[3] == "rc=5"
    assert lines[4] != lines[5]  # the exec'd process was in the container's pid namespace
    assert list((top / "xdg" / "pyrunc").iterdir()) == []
