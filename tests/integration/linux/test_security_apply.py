"""caps.apply and seccomp.load in a forked child, checked after execve from /proc/self/status and
from what busybox sees. These run without the CLI, so they hold while the init is being built."""

from __future__ import annotations

import ctypes
import errno
import json
import os
from collections.abc import Callable

import pytest

from pyrunc.linux import caps, seccomp
from pyrunc.sys import linux

pytestmark = pytest.mark.requires("root", "busybox")

BUSYBOX = "/usr/bin/busybox"
THREE = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
THREE_MASK = 1 << 29 | 1 << 5 | 1 << 10
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000


def in_child(setup: Callable[[], None], argv: list[str] | None = None) -> tuple[int, str]:
    """Fork; the child runs `setup`, then execs `argv` (or exits 0); returns (status, output)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.dup2(w, 1)
            os.dup2(w, 2)
            setup()
            if argv:
                os.execv(argv[0], argv)
            os._exit(0)
        except BaseException as exc:  # noqa: B036 - reported to the parent through the pipe
            os.write(2, f"child failed: {exc!r}\n".encode())
        os._exit(127)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode()


def status_of(out: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines())}


def cat_status(setup: Callable[[], None]) -> dict[str, str]:
    rc, out = in_child(setup, [BUSYBOX, "cat", "/proc/self/status"])
    assert rc == 0, out
    return status_of(out)


def become(uid: int, plan: caps.CapPlan) -> Callable[[], None]:
    def setup() -> None:
        caps.keep_caps()
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        caps.apply(plan)
    return setup


def mask(line: str) -> int:
    return int(line, 16)


def test_root_with_runc_defaults() -> None:
    plan = caps.plan({k: THREE for k in ("bounding", "effective", "permitted", "ambient")})
    st = cat_status(become(0, plan))
    assert mask(st["CapBnd"]) == THREE_MASK
    # execve as root: permitted = inheritable | bounding, effective = permitted
    assert mask(st["CapPrm"]) == THREE_MASK and mask(st["CapEff"]) == THREE_MASK
    assert mask(st["CapInh"]) == 0 and mask(st["CapAmb"]) == 0
    assert st["Uid"].split()[0] == "0"


def test_non_root_keeps_exactly_its_ambient_caps() -> None:
    plan = caps.plan({"bounding": THREE, "effective": THREE, "permitted": THREE,
                      "inheritable": ["CAP_NET_BIND_SERVICE"],
                      "ambient": ["CAP_NET_BIND_SERVICE"]})
    st = cat_status(become(1000, plan))
    assert st["Uid"].split() == ["1000"] * 4
    assert mask(st["CapBnd"]) == THREE_MASK
    assert mask(st["CapAmb"]) == 1 << 10
    assert mask(st["CapInh"]) == 1 << 10
    assert mask(st["CapPrm"]) == 1 << 10 and mask(st["CapEff"]) == 1 << 10


def test_non_root_without_ambient_has_nothing() -> None:
    plan = caps.plan({k: THREE for k in ("bounding", "effective", "permitted")})
    st = cat_status(become(1000, plan))
    assert mask(st["CapBnd"]) == THREE_MASK
    assert mask(st["CapPrm"]) == 0 and mask(st["CapEff"]) == 0 and mask(st["CapAmb"]) == 0


def test_apply_before_exec_sets_the_exact_sets() -> None:
    """Without an execve in between, the sets are exactly the plan's (and keepcaps is off)."""
    plan = caps.plan({"bounding": THREE, "effective": ["CAP_KILL"], "permitted": THREE,
                      "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]})
    rc, out = in_child(lambda: (become(1000, plan)(), _print_status()) and None)
    assert rc == 0, out
    st = status_of(out)
    assert mask(st["CapEff"]) == 1 << 5 and mask(st["CapPrm"]) == THREE_MASK
    assert mask(st["CapInh"]) == 1 << 5 and mask(st["CapAmb"]) == 1 << 5
    assert st["keepcaps"] == "0"


def _print_status() -> None:
    with open("/proc/self/status") as f:
        os.write(1, f.read().encode())
    os.write(1, f"keepcaps:{linux.prctl(7)}\n".encode())  # PR_GET_KEEPCAPS


def test_no_capabilities_object_leaves_the_bounding_set() -> None:
    st = cat_status(become(0, caps.plan(None)))
    assert mask(st["CapBnd"]) == caps.host_bounding()


def nnp_and(f: seccomp.Filter, before: Callable[[], None] = lambda: None) -> Callable[[], None]:
    def setup() -> None:
        before()
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        seccomp.load(f)
    return setup


def filter_of(sc: dict[str, object]) -> seccomp.Filter:
    f = seccomp.prepare(sc)
    assert f is not None
    return f


@pytest.mark.requires("seccomp")
@pytest.mark.parametrize("errno_ret, message", [(None, "Operation not permitted"),
                                                (38, "Function not implemented")])
def test_denied_mkdir(tmp_path: object, errno_ret: int | None, message: str) -> None:
    rule: dict[str, object] = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    f = filter_of({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]})
    target = f"{tmp_path}/made"
    rc, out = in_child(nnp_and(f), [BUSYBOX, "mkdir", target])
    assert rc == 1 and message in out, out
    assert not os.path.exists(target)
    st = cat_status(nnp_and(f))
    assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1"


@pytest.mark.requires("seccomp")
def test_without_no_new_privs_load_needs_cap_sys_admin() -> None:
    """Why the init loads the filter before dropping caps when noNewPrivileges is false."""
    f = filter_of({"defaultAction": "SCMP_ACT_ALLOW"})
    plan = caps.plan({k: THREE for k in ("bounding", "effective", "permitted")})
    rc, out = in_child(lambda: (become(1000, plan)(), seccomp.load(f)) and None)
    assert rc == 127 and "SeccompError" in out and "loading the seccomp filter" in out


@pytest.mark.requires("seccomp")
def test_kill_process_action() -> None:
    f = filter_of({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]})
    rc, _ = in_child(nnp_and(f), [BUSYBOX, "mkdir", "/nonexistent/x"])
    assert rc == -31  # SIGSYS


# --- real-world profiles ----------------------------------------------------------------------------
PODMAN_PROFILE = "/usr/share/containers/seccomp.json"
_NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}  # includes/excludes name arches the Go way


def docker_to_oci(profile: dict, capabilities: list[str]) -> dict:  # type: ignore[type-arg]
    """What docker/podman do with their profile format: pick the native arch and its
    sub-architectures, keep the rules whose includes/excludes match the capabilities."""
    native, goarch = _NATIVE[os.uname().machine], _GOARCH[os.uname().machine]
    arches = [native]
    for m in profile.get("archMap", []):
        if m["architecture"] == native:
            arches += m["subArchitectures"]
    rules = []
    for r in profile["syscalls"]:
        inc, exc = r.get("includes", {}), r.get("excludes", {})
        if inc.get("caps") and not set(inc["caps"]) <= set(capabilities):
            continue
        if inc.get("arches") and goarch not in inc["arches"]:
            continue
        if set(exc.get("caps", [])) & set(capabilities) or goarch in exc.get("arches", []):
            continue
        rules.append({k: v for k, v in r.items() if k in ("names", "action", "errnoRet", "args")})
    out = {"defaultAction": profile["defaultAction"], "architectures": arches, "syscalls": rules}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    return out


def docker_like_profile() -> dict:  # type: ignore[type-arg]
    """Docker's default profile, inverted into a deny list: its documented "significant syscalls
    blocked" (https://docs.docker.com/engine/security/seccomp/), EPERM, and clone(2) refused when
    it asks for a new namespace (one MASKED_EQ rule per flag: the repeated-index path)."""
    blocked = ["acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
               "delete_module", "finit_module", "get_kernel_syms", "get_mempolicy", "init_module",
               "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
               "lookup_dcookie", "mbind", "mount", "move_pages", "name_to_handle_at",
               "nfsservctl", "open_by_handle_at", "perf_event_open", "pivot_root",
               "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl",
               "reboot", "request_key", "set_mempolicy", "setns", "settimeofday", "stime",
               "swapon", "swapoff", "sysfs", "_sysctl", "umount", "umount2", "unshare", "uselib",
               "userfaultfd", "ustat", "vm86", "vm86old", "clone3"]
    ns_flags = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                0x40000000, 0x00000080]
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": blocked, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM},
            {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM,
             "args": [{"index": 0, "op": "SCMP_CMP_MASKED_EQ", "value": f, "valueTwo": f}
                      for f in ns_flags]},
        ],
    }


def probe_errnos(f: seccomp.Filter, calls: dict[str, tuple[object, ...]]) -> dict[str, int]:
    """Load `f` in a child (root caps kept), make raw syscalls, return each call's errno (0: ok)."""
    def setup() -> None:
        nnp_and(f)()
        libc = ctypes.CDLL(None, use_errno=True)
        res = {}
        for name, args in calls.items():
            ret = libc.syscall(linux.NR[name] if name in linux.NR else _NR[name], *args)
            res[name] = ctypes.get_errno() if ret == -1 else 0
        os.write(1, json.dumps(res).encode())

    rc, out = in_child(setup)
    assert rc == 0, out
    return json.loads(out)  # type: ignore[no-any-return]


_NR = {"keyctl": 250, "add_key": 248, "getpid": 39, "mkdirat": 258, "acct": 163,
       "kexec_load": 246, "io_uring_setup": 425}


@pytest.mark.requires("seccomp")
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers are x86_64's")
def test_docker_like_profile_blocks_unshare_and_keyctl() -> None:
    f = filter_of(docker_like_profile())
    got = probe_errnos(f, {"unshare": (CLONE_NEWNS,), "keyctl": (0, 0, 0, 0, 0),
                           "getpid": ()})
    assert got == {"unshare": errno.EPERM, "keyctl": errno.EPERM, "getpid": 0}
    # and busybox's unshare applet, as a user would see it
    rc, out = in_child(nnp_and(f), [BUSYBOX, "unshare", "-m", "true"])
    assert rc != 0 and "Operation not permitted" in out


@pytest.mark.requires("seccomp")
@pytest.mark.skipif(not os.path.exists(PODMAN_PROFILE), reason="needs podman's seccomp.json")
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers are x86_64's")
def test_podman_default_profile() -> None:
    with open(PODMAN_PROFILE) as fp:
        profile = docker_to_oci(json.load(fp), THREE)
    seccomp.validate(profile)
    f = filter_of(profile)
    got = probe_errnos(f, {"acct": (0,), "kexec_load": (0, 0, 0, 0), "add_key": (0, 0, 0, 0, 0),
                           "io_uring_setup": (0, 0), "getpid": (),
                           "mkdirat": (-100, b"/proc/nonexistent/x", 0o755)})
    # acct: EPERM without CAP_SYS_PACCT; kexec_load: EPERM always; add_key and io_uring_setup are
    # not listed: the default ENOSYS (unfiltered they fail with EFAULT/EINVAL, not ENOSYS).
    assert got["acct"] == errno.EPERM and got["kexec_load"] == errno.EPERM
    assert got["add_key"] == errno.ENOSYS and got["io_uring_setup"] == errno.ENOSYS
    assert got["getpid"] == 0 and got["mkdirat"] == errno.ENOENT
    rc, out = in_child(nnp_and(f), [BUSYBOX, "sh", "-c", "echo hi; grep Seccomp: /proc/self/status"])
    assert rc == 0 and "hi" in out and "Seccomp:\t2" in out, out
