"""The seccomp filter is loaded as late as privileges allow (runc's order), so the runtime's own
syscalls need not be in the workload's profile: with noNewPrivileges, right before execve (the only
runtime syscall under the filter); without it, before the capability drop, after every fd is
closed or close-on-exec (no close_range under the filter)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import pytest
from testlib import Bundle, Runtime

pytestmark = pytest.mark.requires("root", "busybox", "seccomp")

# What busybox-static itself needs for `echo`, `sleep` and `cat` (strace); nothing for the runtime
# but execve.
WORKLOAD = ["execve", "exit_group", "arch_prctl", "brk", "getrandom", "getuid", "mprotect", "prctl",
            "prlimit64", "readlink", "rseq", "set_robust_list", "set_tid_address", "write",
            "nanosleep", "clock_nanosleep", "openat", "read", "close", "fstat", "newfstatat",
            "sendfile", "rt_sigaction", "rt_sigprocmask", "lseek", "ioctl"]


def strict(*extra: str) -> dict[str, object]:
    return {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": WORKLOAD + list(extra), "action": "SCMP_ACT_ALLOW"}]}


def refusing(*names: str) -> dict[str, object]:
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": list(names), "action": "SCMP_ACT_ERRNO"}]}


def _bundle(make_bundle: Callable[..., Bundle], args: list[str], profile: dict[str, object],
            nnp: bool) -> Bundle:
    b = make_bundle(*args)
    b.process["noNewPrivileges"] = nnp
    b.linux["seccomp"] = profile
    b.write()
    return b


def _create_start(runtime: Runtime, b: Bundle, cid: str) -> str:
    """create (the container's stdout is a file), start, wait until stopped: its output."""
    out = b.path / "out"
    with out.open("w") as f, (b.path / "err").open("w") as err:
        p = subprocess.run(runtime.argv("create", "-b", str(b.path), cid), stdout=f, stderr=err,
                           stdin=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 0, (b.path / "err").read_text()
    runtime.run("start", cid, check=True)
    for _ in range(500):
        if runtime.state(cid)["status"] == "stopped":
            break
        time.sleep(0.02)
    return out.read_text()


def test_strict_profile_with_nnp_create_start(runtime: Runtime, make_bundle: Callable[..., Bundle],
                                              cid: str) -> None:
    """Only execve is allowed to the runtime: the barrier loads the filter after `start`."""
    b = _bundle(make_bundle, ["echo", "strict ok"], strict(), nnp=True)
    assert _create_start(runtime, b, cid) == "strict ok\n"


def test_strict_profile_with_nnp_run(runtime: Runtime, make_bundle: Callable[..., Bundle],
                                     cid: str) -> None:
    b = _bundle(make_bundle, ["echo", "strict ok"], strict(), nnp=True)
    r = runtime.run("run", "-b", str(b.path), cid)
    assert (r.rc, r.out) == (0, "strict ok\n"), r.err


def test_strict_profile_applies_to_the_workload(runtime: Runtime, make_bundle: Callable[..., Bundle],
                                                cid: str) -> None:
    """The filter is really loaded: mkdir is not in the profile, so it fails with EPERM."""
    b = _bundle(make_bundle, ["mkdir", "/tmp/x"], strict(), nnp=True)
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc == 1 and "Operation not permitted" in r.out + r.err


def test_strict_profile_with_a_start_hook(runtime: Runtime, make_bundle: Callable[..., Bundle],
                                          cid: str) -> None:
    """A startContainer hook keeps the Python init waiting: it loads the filter after the hook."""
    b = _bundle(make_bundle, ["echo", "hooked ok"], strict(), nnp=True)
    b.config["hooks"] = {"startContainer": [{"path": "/bin/true"}]}
    b.write()
    r = runtime.run("run", "-b", str(b.path), cid)
    assert (r.rc, r.out) == (0, "hooked ok\n"), r.err


def test_strict_profile_with_nnp_exec(runtime: Runtime, make_bundle: Callable[..., Bundle],
                                      cid: str) -> None:
    b = _bundle(make_bundle, ["sleep", "30"], strict(), nnp=True)
    runtime.run("run", "-d", "-b", str(b.path), cid, check=True)
    r = runtime.run("exec", cid, "echo", "exec ok")
    assert (r.rc, r.out) == (0, "exec ok\n"), r.err


@pytest.mark.parametrize("nnp", [False, True])
def test_profile_refusing_close_range(runtime: Runtime, make_bundle: Callable[..., Bundle],
                                      cid: str, nnp: bool) -> None:
    """The runtime-tools suite's default profile lacks close_range: fds are closed before."""
    b = _bundle(make_bundle, ["echo", "no close_range"], refusing("close_range"), nnp=nnp)
    r = runtime.run("run", "-b", str(b.path), cid)
    assert (r.rc, r.out) == (0, "no close_range\n"), r.err
    b = _bundle(make_bundle, ["sleep", "30"], refusing("close_range"), nnp=nnp)
    runtime.run("run", "-d", "-b", str(b.path), cid + "x", check=True)
    r = runtime.run("exec", cid + "x", "echo", "exec too")
    assert (r.rc, r.out) == (0, "exec too\n"), r.err


def test_no_fd_reaches_the_workload_under_the_filter(runtime: Runtime,
                                                     make_bundle: Callable[..., Bundle],
                                                     cid: str) -> None:
    b = _bundle(make_bundle, ["ls", "/proc/self/fd"], refusing("close_range", "fcntl"), nnp=False)
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc == 0, r.err
    assert sorted(r.out.split()) == ["0", "1", "2", "3"]  # 3: ls's own directory fd


@pytest.mark.parametrize("user", [0, 1000])
def test_profile_refusing_what_the_runtime_does_before_the_cap_drop(
        runtime: Runtime, make_bundle: Callable[..., Bundle], cid: str, user: int) -> None:
    """Without no_new_privs the filter loads after the uid change, the cwd (getcwd checks it is
    inside the root) and the executable lookup: runtime-tools' linux_seccomp refuses getcwd."""
    b = _bundle(make_bundle, ["echo", "ok"],
                refusing("getcwd", "chdir", "setresuid", "setresgid", "setgroups", "close_range"),
                nnp=False)
    b.process["user"] = {"uid": user, "gid": user}
    b.process["cwd"] = "/tmp"
    b.write()
    r = runtime.run("run", "-b", str(b.path), cid)
    assert (r.rc, r.out) == (0, "ok\n"), r.err
