"""The session keyring: a new "_ses.<id>" per container (runc's default), the caller's with
--no-new-keyring, and the same one for the processes `exec` starts.

Each `pyrunc` here runs with a session keyring of its own, named for the test ("the caller's",
as containerd's or dockerd's would be), joined between fork and exec. The workload runs as uid
1000 and reads /proc/keys (unmasked), which lists to it only the keyrings it possesses (its
session keyring) or may view as that uid: the root-owned keyrings it does not hold stay hidden, so
what it lists says which session keyring it holds. From outside, root's /proc/keys shows the
ones host root owns. Every container has its own namespaces (runc's default spec). With
PYRUNC=/usr/sbin/runc (1.1.5) all pass but the user namespace's exec (see there).
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from proc_helpers import processes_mentioning, wait_for
from testlib import Bundle, Runtime

from pyrunc.sys import linux

pytestmark = pytest.mark.requires("root", "busybox")

KEY_OTH_SEARCH, KEY_USR_SEARCH = 0x08, 0x80000


@pytest.fixture
def kid() -> str:
    return "kr-" + uuid.uuid4().hex[:12]


def joining(name: str, record: Path) -> Callable[[], None]:
    """A preexec_fn: the runtime gets a new session keyring `name`; its serial goes to `record`."""

    def preexec() -> None:
        record.write_text(str(linux.keyctl_join_session_keyring(name)))

    return preexec


def keyrings(proc_keys: str) -> dict[str, list[tuple[int, int]]]:
    """/proc/keys' keyrings: description -> [(serial, perm)] (a name may be given twice)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for line in proc_keys.splitlines():
        # serial flags usage timeout ("perm": none) perm uid gid type description: summary
        f = line.split(None, 8)
        if len(f) == 9 and f[7] == "keyring":
            out.setdefault(f[8].rsplit(": ", 1)[0], []).append((int(f[0], 16), int(f[4], 16)))
    return out


def host_keyrings() -> dict[str, list[tuple[int, int]]]:
    with open("/proc/keys") as f:
        return keyrings(f.read())


def keys_bundle(b: Bundle, *args: str, uid: int = 1000) -> Bundle:
    b.process["args"] = list(args) or ["cat", "/proc/keys"]
    b.process["user"] = {"uid": uid, "gid": uid}
    b.linux["maskedPaths"] = [p for p in b.linux["maskedPaths"] if p != "/proc/keys"]
    b.write()
    return b


def test_the_init_joins_a_new_keyring_named_for_the_container(runtime, make_bundle, kid,
                                                               tmp_path):
    b = keys_bundle(make_bundle())
    caller = tmp_path / "caller"
    r = runtime.run("run", "-b", str(b.path), kid, preexec_fn=joining(f"{kid}-caller", caller))
    assert r.rc == 0, r.err
    inside = keyrings(r.out)
    assert f"{kid}-caller" not in inside, r.out  # it left the caller's session keyring...
    [(serial, perm)] = inside[f"_ses.{kid}"]  # ...for one of its own
    assert serial != int(caller.read_text())
    assert perm & KEY_USR_SEARCH  # runc's bits: its owner's uid may search it (exec joins it)
    assert not perm & KEY_OTH_SEARCH


def test_no_new_keyring_keeps_the_callers(runtime, make_bundle, kid, tmp_path):
    b = keys_bundle(make_bundle())
    caller = tmp_path / "caller"
    r = runtime.run("run", "--no-new-keyring", "-b", str(b.path), kid,
                    preexec_fn=joining(f"{kid}-caller", caller))
    assert r.rc == 0, r.err
    inside = keyrings(r.out)
    assert [s for s, _ in inside[f"{kid}-caller"]] == [int(caller.read_text())]
    assert f"_ses.{kid}" not in inside
    assert f"_ses.{kid}" not in host_keyrings()


def _started(runtime: Runtime, b: Bundle, kid: str, record: Path, *flags: str) -> None:
    r = runtime.run("create", *flags, "-b", str(b.path), kid,
                    preexec_fn=joining(f"{kid}-caller", record))
    assert r.rc == 0, r.err
    runtime.run("start", kid, check=True)


def test_exec_joins_the_containers_keyring(runtime, make_bundle, kid, tmp_path):
    _started(runtime, keys_bundle(make_bundle(), "sleep", "600"), kid, tmp_path / "caller")
    [(init_serial, _)] = host_keyrings()[f"_ses.{kid}"]
    r = runtime.run("exec", kid, "cat", "/proc/keys",
                    preexec_fn=joining(f"{kid}-exec-caller", tmp_path / "exec-caller"))
    assert r.rc == 0, r.err
    inside = keyrings(r.out)
    assert f"{kid}-exec-caller" not in inside
    # The init's, found by its name: not a new one of that name (the init let it be searched).
    assert [s for s, _ in inside[f"_ses.{kid}"]] == [init_serial]
    assert [s for s, _ in host_keyrings()[f"_ses.{kid}"]] == [init_serial]


def test_exec_in_a_no_new_keyring_container_keeps_its_callers(runtime, make_bundle, kid,
                                                               tmp_path):
    # create records the flag: exec's processes keep their own caller's keyring too (runc's).
    _started(runtime, keys_bundle(make_bundle(), "sleep", "600"), kid, tmp_path / "caller",
             "--no-new-keyring")
    exec_caller = tmp_path / "exec-caller"
    r = runtime.run("exec", kid, "cat", "/proc/keys",
                    preexec_fn=joining(f"{kid}-exec-caller", exec_caller))
    assert r.rc == 0, r.err
    inside = keyrings(r.out)
    assert [s for s, _ in inside[f"{kid}-exec-caller"]] == [int(exec_caller.read_text())]
    assert f"{kid}-caller" not in inside
    assert f"_ses.{kid}" not in inside
    assert f"_ses.{kid}" not in host_keyrings()


@pytest.fixture
def open_bundle(busybox_rootfs: Path) -> Iterator[Callable[[], Bundle]]:
    """A bundle under a directory any uid can traverse (the user namespace's root must)."""
    top = tempfile.mkdtemp(prefix="kr-userns-")
    os.chmod(top, 0o711)
    (Path(top) / "b").mkdir()
    yield lambda: Bundle(Path(top) / "b", busybox_rootfs, ["true"])
    shutil.rmtree(top)


@pytest.mark.requires("userns")
def test_a_user_namespaced_container_gets_one_too(runtime, open_bundle, kid, tmp_path):
    b = keys_bundle(open_bundle(), "sh", "-c", "cat /proc/keys >/tmp/keys.tmp; mv /tmp/keys.tmp "
                    "/tmp/keys; exec sleep 600")
    b.config["root"]["readonly"] = False
    b.linux["namespaces"].append({"type": "user"})
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.write()
    _started(runtime, b, kid, tmp_path / "caller")
    wait_for((b.rootfs / "tmp" / "keys").exists, "the init's /proc/keys")
    # Made in the user namespace by its root, searchable by others: runc's bits with a user
    # namespace. An exec'd process joins it still as the host's root, before its setuid, so it
    # may search it. (runc 1.1.5 becomes the namespace's root first, is refused the search as
    # the owner, and makes a second keyring of that name: this test fails with it there.)
    [(serial, perm)] = keyrings((b.rootfs / "tmp" / "keys").read_text())[f"_ses.{kid}"]
    assert perm & KEY_OTH_SEARCH and not perm & KEY_USR_SEARCH
    r = runtime.run("exec", kid, "cat", "/proc/keys")
    assert r.rc == 0, r.err
    assert [s for s, _ in keyrings(r.out)[f"_ses.{kid}"]] == [serial]


def refusing_keyctl(err: int) -> Callable[[], None]:
    """A preexec_fn: the runtime (and what it forks) gets `err` from every keyctl(2)."""

    def preexec() -> None:
        import seccomp

        f = seccomp.SyscallFilter(seccomp.ALLOW)
        f.set_attr(seccomp.Attr.CTL_NNP, 0)  # root: no no_new_privs needed, none left behind
        f.add_rule(seccomp.ERRNO(err), "keyctl")
        f.load()

    return preexec


@pytest.mark.requires("seccomp")
def test_a_kernel_without_keyrings_is_no_error(runtime, make_bundle, kid):
    # ENOSYS: keyrings compiled out (or an LXC-like sandbox); the container runs all the same.
    b = keys_bundle(make_bundle(), "echo", "ran")
    r = runtime.run("run", "-b", str(b.path), kid, preexec_fn=refusing_keyctl(errno.ENOSYS))
    assert (r.rc, r.out, r.err) == (0, "ran\n", "")
    assert f"_ses.{kid}" not in host_keyrings()


@pytest.mark.requires("seccomp")
def test_another_keyctl_error_fails_the_init_at_its_step(runtime, make_bundle, kid):
    b = keys_bundle(make_bundle(), "echo", "ran")
    r = runtime.run("run", "-b", str(b.path), kid, preexec_fn=refusing_keyctl(errno.EPERM))
    assert r.rc == 1 and r.out == "", r
    [line] = r.err.splitlines()
    assert "keyring" in line and "operation not permitted" in line.lower(), line
    assert not (runtime.root / kid).exists()
    assert runtime.run("state", kid).rc == 1
    assert glob.glob(f"/sys/fs/cgroup/*/pyrunc/{kid}") + glob.glob(f"/sys/fs/cgroup/pyrunc/{kid}") == []
    assert processes_mentioning(kid) == []
    # With --no-new-keyring no keyctl is made: the same container runs.
    r = runtime.run("run", "--no-new-keyring", "-b", str(b.path), kid,
                    preexec_fn=refusing_keyctl(errno.EPERM))
    assert (r.rc, r.out) == (0, "ran\n"), r.err
