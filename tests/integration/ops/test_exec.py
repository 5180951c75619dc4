"""`exec`: the new process joins the init's namespaces, cgroup, seccomp filter and capabilities.

Checked from outside (/proc/<pid>/ns, cgroup, status of the exec'd process) and from inside
(busybox commands run by `exec` print what they see).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from proc_helpers import create, detached, ns_links, status_field, wait_for

pytestmark = pytest.mark.requires("root", "busybox")

CAP_NET_RAW = 13
SECCOMP = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}


@pytest.fixture
def running(runtime, make_bundle, cid):
    """A started container whose init sleeps; returns (cid, init pid)."""
    b = make_bundle("sleep", "600")
    b.process["noNewPrivileges"] = False
    b.linux["seccomp"] = SECCOMP
    b.write()
    r = create(runtime, b.path, cid)
    assert r.rc == 0, r.err
    runtime.run("start", cid, check=True)
    return cid, int(runtime.state(cid)["pid"])


def _exec_detached(runtime, cid, tmp_path, *args, flags=()):
    pid_file = tmp_path / f"exec-{len(os.listdir(tmp_path))}.pid"
    r = detached(runtime, runtime.argv("exec", "-d", "--pid-file", str(pid_file), *flags, cid,
                                       *args))
    assert r.rc == 0, r.err
    text = pid_file.read_text()
    assert text.isdigit(), repr(text)  # decimal, no newline: containerd parses it strictly
    return int(text)


@pytest.mark.requires("seccomp")
def test_detached_exec_joins_everything_of_the_init(runtime, running, tmp_path):
    cid, init = running
    pid = _exec_detached(runtime, cid, tmp_path, "sleep", "600")
    assert ns_links(pid) == ns_links(init)
    with open(f"/proc/{pid}/cgroup") as a, open(f"/proc/{init}/cgroup") as b:
        assert a.read() == b.read()
    assert status_field(pid, "Seccomp") == "2"
    assert status_field(init, "Seccomp") == "2"
    assert status_field(pid, "CapEff") == status_field(init, "CapEff")
    assert status_field(pid, "CapBnd") == status_field(init, "CapBnd")
    assert int(status_field(pid, "CapEff"), 16) & (1 << CAP_NET_RAW) == 0


def test_cap_flag_adds_a_capability(runtime, running, tmp_path):
    cid, init = running
    pid = _exec_detached(runtime, cid, tmp_path, "sleep", "600", flags=("-c", "CAP_NET_RAW"))
    eff = int(status_field(pid, "CapEff"), 16)
    assert eff & (1 << CAP_NET_RAW)
    assert eff & ~(1 << CAP_NET_RAW) == int(status_field(init, "CapEff"), 16)
    r = runtime.run("exec", "--cap", "CAP_NET_RAW", cid, "grep", "CapEff", "/proc/self/status")
    assert int(r.out.split()[1], 16) == eff


def test_foreground_exit_status_and_output(runtime, running):
    cid, _ = running
    r = runtime.run("exec", cid, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (r.rc, r.out, r.err) == (7, "out\n", "err\n")
    r = runtime.run("exec", cid, "sh", "-c", "kill -TERM $$")
    assert r.rc == 128 + 15


def test_exec_sees_the_init_as_pid_1(runtime, running):
    cid, _ = running
    r = runtime.run("exec", cid, "cat", "/proc/1/cmdline", check=True)
    assert r.out.split("\0")[:2] == ["sleep", "600"]


def test_env_cwd_user_and_groups(runtime, running):
    cid, _ = running
    r = runtime.run("exec", "-e", "FOO=bar", "--env", "PATH=/bin", "--cwd", "/tmp",
                    "-u", "1000:1000", "-g", "2000", "-g", "3000", cid,
                    "sh", "-c", 'echo "$FOO $PATH $(pwd) $(id -u) $(id -g) $(id -G)"', check=True)
    assert r.out.split() == ["bar", "/bin", "/tmp", "1000", "1000", "1000", "2000", "3000"]


def test_no_new_privs_flag(runtime, running):
    cid, _ = running
    r = runtime.run("exec", cid, "grep", "NoNewPrivs", "/proc/self/status", check=True)
    assert r.out.split() == ["NoNewPrivs:", "0"]
    r = runtime.run("exec", "--no-new-privs", cid, "grep", "NoNewPrivs", "/proc/self/status",
                    check=True)
    assert r.out.split() == ["NoNewPrivs:", "1"]


def test_process_file(runtime, running, tmp_path):
    cid, _ = running
    proc = {"args": ["sh", "-c", 'echo "$A $(pwd) $(id -u)"; exit 4'], "env": ["A=from-file"],
            "cwd": "/etc", "user": {"uid": 65534, "gid": 65534}, "terminal": False}
    (tmp_path / "process.json").write_text(json.dumps(proc))
    r = runtime.run("exec", "--process", str(tmp_path / "process.json"), cid)
    assert (r.rc, r.out.split()) == (4, ["from-file", "/etc", "65534"]), r.err
    r = runtime.run("exec", "-p", str(tmp_path / "missing.json"), cid)
    assert r.rc != 0 and "missing.json" in r.err


def test_missing_executable_is_reported_by_exec(runtime, running):
    cid, _ = running
    r = runtime.run("exec", cid, "no-such-binary")
    assert r.rc != 0
    assert "no-such-binary" in r.err and "not found" in r.err


@pytest.mark.requires("cgroup-v1")
def test_cgroup_flag_puts_the_process_in_a_sub_cgroup(runtime, running, tmp_path):
    cid, init = running
    with open(f"/proc/{init}/cgroup") as f:
        memory = next(line.split(":")[2].strip() for line in f if line.split(":")[1] == "memory")
    sub = f"/sys/fs/cgroup/memory{memory}/sub"
    os.mkdir(sub)
    try:
        pid = _exec_detached(runtime, cid, tmp_path, "sleep", "600",
                             flags=("--cgroup", "memory:sub"))
        with open(f"/proc/{pid}/cgroup") as f:
            mine = next(line.split(":")[2].strip() for line in f if line.split(":")[1] == "memory")
        assert mine == memory + "/sub"
    finally:
        runtime.run("kill", "--all", cid, "KILL")
        wait_for(lambda: not open(f"{sub}/cgroup.procs").read().strip(), "sub cgroup empty")
        os.rmdir(sub)


def test_exec_into_a_stopped_container_fails(runtime, make_bundle, cid):
    b = make_bundle("true")
    assert create(runtime, b.path, cid).rc == 0
    runtime.run("start", cid, check=True)
    wait_for(lambda: runtime.state(cid)["status"] == "stopped", "the container to stop")
    r = runtime.run("exec", cid, "true")
    assert r.rc != 0
    assert "cannot exec in a stopped container" in r.err


def test_exec_into_a_created_container_works(runtime, make_bundle, cid):
    b = make_bundle("sleep", "600")
    assert create(runtime, b.path, cid).rc == 0
    r = runtime.run("exec", cid, "sh", "-c", "echo $$", check=True)
    assert int(r.out) > 1
    assert runtime.state(cid)["status"] == "created"


def test_paused_container_needs_ignore_paused(runtime, running, tmp_path):
    cid, init = running
    runtime.run("pause", cid, check=True)
    r = runtime.run("exec", cid, "true")
    assert r.rc != 0 and "paused" in r.err
    # With --ignore-paused the process joins the frozen cgroup (and freezes): it is let in, and
    # finishes once the container is resumed.
    with open(f"/proc/{init}/cgroup") as f:
        freezer = next(line.split(":")[2].strip() for line in f if line.split(":")[1] == "freezer")
    procs = f"/sys/fs/cgroup/freezer{freezer}/cgroup.procs"
    p = subprocess.Popen(runtime.argv("exec", "--ignore-paused", cid, "echo", "let-in"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(open(procs).read().split()) == 2 or p.poll() is not None,
                 "the exec'd process in the frozen cgroup")
        assert p.poll() is None, p.communicate()
        runtime.run("resume", cid, check=True)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert (p.returncode, out) == (0, "let-in\n"), err


def test_cwd_through_a_leaked_directory_fd_fails(runtime, running, tmp_path):
    """CVE-2024-21626: a host directory fd must not become the process's cwd."""
    cid, _ = running
    fd = os.open("/sys/fs/cgroup", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for extra in ((), ("--preserve-fds", str(fd - 2))):
            r = subprocess.run(
                runtime.argv("exec", *extra, "--cwd", f"/proc/self/fd/{fd}", cid, "sh", "-c",
                             "echo ran in $(pwd); ls"),
                capture_output=True, text=True, pass_fds=(fd,), timeout=60)
            assert r.returncode != 0, (extra, r.stdout)
            assert "ran in" not in r.stdout
            assert "cwd" in r.stderr, r.stderr
    finally:
        os.close(fd)


@pytest.mark.parametrize("case", ["not-found", "stopped", "unknown-id"])
def test_exec_failures_exit_255_as_runc(runtime, make_bundle, cid, case):
    """runc exits 255 with "exec failed: ..." when the exec itself fails, so callers can tell it
    from the process's own exit status; a usage error stays 1."""
    b = make_bundle("sleep", "600" if case != "stopped" else "0")
    assert create(runtime, b.path, cid).rc == 0
    runtime.run("start", cid, check=True)
    if case == "stopped":
        wait_for(lambda: runtime.state(cid)["status"] == "stopped", "the container to stop")
    target = "nope-" + cid if case == "unknown-id" else cid
    r = runtime.run("exec", target, "/no/such/binary")
    assert r.rc == 255, r
    assert r.err.startswith("exec failed: "), r.err
    assert runtime.run("exec").rc == 1
