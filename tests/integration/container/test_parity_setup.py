"""runc parity of the process setup: cwd, environment, loopback, sessions and terminals,
procattrs, exec's capabilities and errors, and executables reachable through capabilities.

Every container here has its own pid, network, IPC, UTS and mount namespaces (runc's default
config): nothing it does reaches the host's. runc 1.1.5 is the reference for each expectation.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from proc_helpers import create

pytestmark = pytest.mark.requires("root", "busybox")

APP = {"uid": 1000, "gid": 1000}  # in testlib's /etc/passwd: home /tmp
CAP_NET_RAW = 13


@pytest.fixture
def cid() -> str:
    return "p3-" + uuid.uuid4().hex[:12]


def run_out(rt, bundle, cid, *flags):
    r = rt.run("run", *flags, "-b", str(bundle.path), cid)
    assert r.rc == 0, r
    return r.out


@pytest.fixture
def running(runtime, make_bundle, cid):
    """A started container whose init sleeps; `edit(process)` may change its process first."""

    def _start(edit=None):
        b = make_bundle("sleep", "600")
        if edit:
            edit(b)
        b.write()
        r = create(runtime, b.path, cid)
        assert r.rc == 0, r.err
        runtime.run("start", cid, check=True)
        return cid, b

    return _start


def stat_fields(line: str) -> tuple[int, int, int]:
    """(pid, pgrp, session) from a /proc/<pid>/stat line (comm has no spaces here)."""
    f = line.split()
    return int(f[0]), int(f[4]), int(f[5])


# --- 1. a missing cwd is created ----------------------------------------------------------------------
def test_missing_cwd_is_created_in_the_root_as_runc(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "pwd; stat -c '%u %g %a' /new /new/dir; id -u")
    b.process["cwd"] = "/new/../new/dir"
    b.process["user"] = APP
    b.write()
    assert b.config["root"]["readonly"]  # made before the root turns read-only
    assert run_out(runtime, b, cid).split("\n") == ["/new/dir", "0 0 755", "0 0 755", "1000", ""]


def test_missing_cwd_through_a_symlink_stays_in_the_root(runtime, make_bundle, cid):
    name = f"p3-sub-{uuid.uuid4().hex[:8]}"
    b = make_bundle("pwd")
    (b.rootfs / "esc").symlink_to("../../../../tmp")  # the root's /tmp, never the host's
    b.process["cwd"] = f"/esc/{name}"
    b.write()
    try:
        assert run_out(runtime, b, cid) == f"/tmp/{name}\n"
        assert (b.rootfs / "tmp" / name).is_dir()
        assert not os.path.exists(f"/tmp/{name}")
    finally:
        if os.path.isdir(f"/tmp/{name}"):
            os.rmdir(f"/tmp/{name}")


def test_missing_cwd_under_a_dangling_symlink_fails_as_runc(runtime, make_bundle, cid):
    outside = f"/tmp/p3-escape-{uuid.uuid4().hex[:8]}"
    b = make_bundle("pwd")
    (b.rootfs / "esc").symlink_to(outside)
    b.process["cwd"] = "/esc/sub"
    b.write()
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc == 1 and "process.cwd" in r.err, r
    assert not os.path.exists(outside)


# --- 2. HOME and repeated variables ---------------------------------------------------------------------
def test_empty_home_comes_from_passwd_and_later_entries_win(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "echo $HOME $A; env | grep -c '^A='")
    b.process["env"] = ["PATH=/bin", "HOME=", "A=1", "A=2"]
    b.process["user"] = APP
    b.write()
    assert run_out(runtime, b, cid).split() == ["/tmp", "2", "1"]


def test_given_home_is_kept(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "echo $HOME")
    b.process["env"] = ["PATH=/bin", "HOME=/x"]
    b.process["user"] = APP
    b.write()
    assert run_out(runtime, b, cid) == "/x\n"


# --- 3. loopback -------------------------------------------------------------------------------------------
def test_new_network_namespace_has_lo_up(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "cat /sys/class/net/lo/operstate /sys/class/net/lo/flags")
    state, flags = run_out(runtime, b, cid).split()
    assert state == "unknown"  # what a loopback that is up reports ("down" otherwise)
    assert int(flags, 16) & 1  # IFF_UP


# --- 4. sessions and terminals -----------------------------------------------------------------------------
def test_init_is_a_session_leader(runtime, make_bundle, cid):
    b = make_bundle("cat", "/proc/self/stat")
    pid, pgrp, sid = stat_fields(run_out(runtime, b, cid))
    assert pid == pgrp == sid == 1


def test_exec_is_a_session_leader(runtime, running):
    cid, _ = running()
    r = runtime.run("exec", cid, "cat", "/proc/self/stat")
    assert r.rc == 0, r
    pid, pgrp, sid = stat_fields(r.out)
    assert pid == pgrp == sid


def test_exec_tty_is_a_session_leader_owning_the_pty(runtime, running):
    cid, _ = running()
    r = runtime.run("exec", "-t", "--user", "1000:1000", cid, "sh", "-c",
                    "stat -L -c '%u %g' /proc/self/fd/0; exec cat /proc/self/stat", timeout=30)
    assert r.rc == 0, r
    owner, stat_line = r.out.replace("\r", "").strip().split("\n")
    assert owner == "1000 5"  # runc changes the owner only: devpts' gid=5 stays
    pid, pgrp, sid = stat_fields(stat_line)
    assert pid == pgrp == sid


def test_run_tty_pty_is_owned_by_the_process_user(runtime, make_bundle, cid):
    b = make_bundle("stat", "-L", "-c", "%u %g", "/proc/self/fd/0")
    b.process["terminal"] = True
    b.process["user"] = APP
    b.write()
    assert run_out(runtime, b, cid).strip() == "1000 5"


# --- 5. procattrs --------------------------------------------------------------------------------------------
def test_io_priority_idle_without_a_priority(runtime, make_bundle, cid):
    b = make_bundle("ionice", "-p", "1")
    b.process["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE"}
    b.write()
    assert run_out(runtime, b, cid).strip() == "idle"


# --- 6. exec: --cap and execve errors ------------------------------------------------------------------------
def test_exec_cap_is_ambient_when_the_process_has_inheritable_caps(runtime, running):
    def edit(b):
        caps = b.process["capabilities"]
        caps["bounding"].append("CAP_NET_RAW")
        caps["inheritable"] = list(caps["bounding"])

    cid, _ = running(edit)
    r = runtime.run("exec", "--cap", "CAP_NET_RAW", "--user", "1000:1000", cid,
                    "grep", "-E", "^Cap(Eff|Amb)", "/proc/self/status")
    assert r.rc == 0, r
    for line in r.out.splitlines():
        assert int(line.split()[1], 16) & 1 << CAP_NET_RAW, line


def test_exec_failed_execve_as_runc(runtime, running):
    def edit(b):
        (b.rootfs / "bin" / "badfmt").write_text("garbage")
        (b.rootfs / "bin" / "badfmt").chmod(0o755)

    cid, _ = running(edit)
    r = runtime.run("exec", cid, "/bin/badfmt")
    assert (r.rc, r.err) == (1, "exec /bin/badfmt: exec format error\n")


# --- 7. executables and cwd as the process user ---------------------------------------------------------------
def _owner_only_busybox(b) -> None:
    busybox = Path(b.rootfs / "bin" / "busybox")
    busybox.chmod(0o700)  # root's: user 1000 may exec it only with CAP_DAC_OVERRIDE


def test_run_executable_reachable_through_cap_dac_override(runtime, make_bundle, cid):
    b = make_bundle("/bin/busybox", "id", "-u")
    _owner_only_busybox(b)
    b.process["user"] = APP
    for key in ("bounding", "effective", "permitted"):
        b.process["capabilities"][key].append("CAP_DAC_OVERRIDE")
    b.write()
    assert run_out(runtime, b, cid) == "1000\n"


def test_run_executable_without_the_capability_is_refused(runtime, make_bundle, cid):
    b = make_bundle("/bin/busybox", "id", "-u")
    _owner_only_busybox(b)
    b.process["user"] = APP
    b.write()
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc != 0
    assert "permission denied" in r.err.lower()


def test_cwd_of_the_user_only(runtime, make_bundle, cid):
    b = make_bundle("pwd")
    home = b.rootfs / "home" / "app"
    home.mkdir(parents=True, mode=0o700)
    os.chown(home, 1000, 1000)
    b.process["user"] = APP
    b.process["cwd"] = "/home/app"
    b.write()
    assert run_out(runtime, b, cid) == "/home/app\n"
