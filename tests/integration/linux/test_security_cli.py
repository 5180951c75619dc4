"""Process security through the real CLI on busybox bundles: capability sets, no_new_privs,
seccomp, and a refused unknown capability."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

pytestmark = pytest.mark.requires("root", "busybox")

THREE_MASK = 1 << 29 | 1 << 5 | 1 << 10
SYS_RESOURCE = 1 << 24


def status_lines(out: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines()) if v}


def run_status(runtime, make_bundle: Callable[..., object], cid: str, edit=None) -> dict[str, str]:  # type: ignore[no-untyped-def]
    b = make_bundle("cat", "/proc/self/status")
    if edit:
        edit(b)
    b.write()
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc == 0, r.err
    return status_lines(r.out)


def test_default_caps_and_no_new_privs(runtime, make_bundle, cid) -> None:  # type: ignore[no-untyped-def]
    st = run_status(runtime, make_bundle, cid)
    for line in ("CapBnd", "CapPrm", "CapEff"):
        assert int(st[line], 16) == THREE_MASK, line
    assert int(st["CapInh"], 16) == 0 and int(st["CapAmb"], 16) == 0
    assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "0"


def test_non_root_user_gets_its_ambient_caps(runtime, make_bundle, cid) -> None:  # type: ignore[no-untyped-def]
    def edit(b):  # type: ignore[no-untyped-def]
        b.process["user"] = {"uid": 1000, "gid": 1000}
        b.process["capabilities"]["inheritable"] = ["CAP_NET_BIND_SERVICE"]
        b.process["capabilities"]["ambient"] = ["CAP_NET_BIND_SERVICE"]
    st = run_status(runtime, make_bundle, cid, edit)
    assert st["Uid"].split() == ["1000"] * 4
    assert int(st["CapBnd"], 16) == THREE_MASK
    assert int(st["CapAmb"], 16) == 1 << 10 and int(st["CapEff"], 16) == 1 << 10


def test_no_new_privileges_false(runtime, make_bundle, cid) -> None:  # type: ignore[no-untyped-def]
    st = run_status(runtime, make_bundle, cid,
                    lambda b: b.process.__setitem__("noNewPrivileges", False))
    assert st["NoNewPrivs"] == "0"


def test_unknown_capability_fails_create_and_leaves_no_state(runtime, bundle, cid) -> None:  # type: ignore[no-untyped-def]
    bundle.process["capabilities"]["bounding"].append("CAP_TEST")
    bundle.write()
    r = runtime.run("create", "-b", str(bundle.path), cid)
    assert r.rc != 0
    assert 'unknown capability "CAP_TEST"' in r.err
    assert not (runtime.root / cid).exists()
    assert runtime.run("state", cid).rc != 0


@pytest.mark.skipif(bool(int(open("/proc/self/status").read().split("CapBnd:")[1].split()[0], 16)
                         & SYS_RESOURCE), reason="the host's bounding set has CAP_SYS_RESOURCE")
def test_unavailable_capability_is_dropped_with_a_warning(runtime, make_bundle, cid) -> None:  # type: ignore[no-untyped-def]
    b = make_bundle("cat", "/proc/self/status")
    for key in ("bounding", "effective", "permitted"):
        b.process["capabilities"][key].append("CAP_SYS_RESOURCE")
    b.write()
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc == 0, r.err
    assert "CAP_SYS_RESOURCE" in r.err
    assert int(status_lines(r.out)["CapBnd"], 16) == THREE_MASK


@pytest.mark.requires("seccomp")
@pytest.mark.parametrize("errno_ret, message", [(None, "Operation not permitted"),
                                                (38, "Function not implemented")])
def test_seccomp_denies_mkdir(runtime, make_bundle, cid, errno_ret, message) -> None:  # type: ignore[no-untyped-def]
    b = make_bundle("sh", "-c", "grep Seccomp: /proc/self/status; mkdir /tmp/made; echo rc=$?; "
                    "ls /tmp")
    rule = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}
    b.config["root"]["readonly"] = False
    b.write()
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc == 0, r.err
    assert "Seccomp:\t2" in r.out and "rc=1" in r.out and message in r.err
    assert not (b.rootfs / "tmp" / "made").exists()


@pytest.mark.requires("seccomp")
def test_seccomp_bad_action_fails_create(runtime, bundle, cid) -> None:  # type: ignore[no-untyped-def]
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["rmdir"], "action": "SCMP_ACT_NOPE"}]}
    bundle.write()
    r = runtime.run("create", "-b", str(bundle.path), cid)
    assert r.rc != 0 and "linux.seccomp.syscalls[1].action" in r.err
    assert not (runtime.root / cid).exists()


def test_waiting_init_exe_is_not_writable(runtime, make_bundle, cid, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """While the init waits for start, its /proc/<pid>/exe is the sealed memfd of pyrunc.container.barrier
    (or, where that cannot run, the read-only interpreter mount): never a writable host file."""
    import subprocess  # noqa: TID251

    b = make_bundle("true")
    with open(tmp_path / "out", "w+") as out:
        # the init keeps its stdio: files, not pipes, or create's output never reaches EOF
        p = subprocess.run(runtime.argv("create", "-b", str(b.path), cid), stdin=subprocess.DEVNULL,
                           stdout=out, stderr=out, timeout=60)
        out.seek(0)
        assert p.returncode == 0, out.read()
    pid = runtime.state(cid)["pid"]
    exe = os.readlink(f"/proc/{pid}/exe")
    if exe.startswith("/memfd:pyrunc-init"):
        import fcntl

        with pytest.raises(OSError):  # ETXTBSY while it runs, EPERM (F_SEAL_WRITE) after
            os.open(f"/proc/{pid}/exe", os.O_WRONLY)
        fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY)
        try:
            seals = fcntl.fcntl(fd, 1034)  # F_GET_SEALS
        finally:
            os.close(fd)
        assert seals & 8 and seals & 1, seals  # F_SEAL_WRITE, F_SEAL_SEAL
    else:
        assert os.statvfs(f"/proc/{pid}/exe").f_flag & os.ST_RDONLY
        assert exe == "/run/pyrunc/exe/python3"
