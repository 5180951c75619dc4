"""seccomp.compile_profile/validate: the JSON to kernel values, and errors naming the field."""

from __future__ import annotations

import pytest

from pyrunc.errors import SeccompError
from pyrunc.linux import seccomp

ALLOW = 0x7FFF0000
ERRNO = 0x00050000


def profile(**kw: object) -> dict[str, object]:
    return {"defaultAction": "SCMP_ACT_ALLOW", **kw}


def test_actions_and_errno() -> None:
    p = seccomp.compile_profile(profile(syscalls=[
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
        {"names": ["kexec_load"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["reboot"], "action": "SCMP_ACT_KILL"},
        {"names": ["acct"], "action": "SCMP_ACT_LOG"},
    ]))
    assert p.default_action == ALLOW
    assert [r.action for r in p.rules] == [ERRNO | 38, ERRNO | 1, 0x7FF00007, 0x80000000, 0,
                                           0x7FFC0000]


def test_default_errno_ret() -> None:
    p = seccomp.compile_profile({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38})
    assert p.default_action == ERRNO | 38


def test_args_are_tuples_of_index_op_values() -> None:
    p = seccomp.compile_profile(profile(syscalls=[{
        "names": ["personality"], "action": "SCMP_ACT_ERRNO",
        "args": [{"index": 0, "op": "SCMP_CMP_MASKED_EQ", "value": 0xFF, "valueTwo": 8},
                 {"index": 1, "op": "SCMP_CMP_EQ", "value": 2**64 - 1}]}]))
    assert p.rules[0].args == ((0, 7, 0xFF, 8), (1, 4, 2**64 - 1, 0))


@pytest.mark.parametrize("sc, where", [
    ({"defaultAction": "SCMP_ACT_NOPE"}, "linux.seccomp.defaultAction: unknown action"),
    ({}, "linux.seccomp.defaultAction: unknown action None"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1},
     "linux.seccomp.defaultAction: SCMP_ACT_ALLOW does not take an errno"),
    (profile(syscalls=[{"names": ["a"], "action": "SCMP_ACT_ALLOW"},
                       {"names": ["b"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]),
     r"linux.seccomp.syscalls\[1\].action: SCMP_ACT_KILL does not take"),
    (profile(syscalls=[{"names": [], "action": "SCMP_ACT_ALLOW"}]),
     r"linux.seccomp.syscalls\[0\].names"),
    (profile(syscalls=[{"names": ["x"], "action": "SCMP_ACT_ERRNO", "errnoRet": -1}]),
     r"syscalls\[0\].action errnoRet: must be an unsigned 16-bit"),
    (profile(syscalls=[{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 6, "op": "SCMP_CMP_EQ", "value": 1}]}]),
     r"syscalls\[0\].args\[0\].index"),
    (profile(syscalls=[{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "op": "SCMP_CMP_XX", "value": 1}]}]),
     r"syscalls\[0\].args\[0\].op: unknown operator"),
    (profile(syscalls=[{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 2**64}]}]),
     r"syscalls\[0\].args\[0\].value"),
    (profile(architectures=["SCMP_ARCH_Z80"]), r"linux.seccomp.architectures\[0\]"),
    (profile(flags=["SECCOMP_FILTER_FLAG_NOPE"]), r"linux.seccomp.flags\[0\]"),
    (profile(listenerMetadata="x"), "listenerMetadata: set without listenerPath"),
    (profile(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]),
     "listenerPath: SCMP_ACT_NOTIFY is used"),
    (profile(listenerPath="/tmp/x", syscalls=[{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]),
     "cannot be used for write"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}, "cannot be the default"),
    ([], "linux.seccomp: must be an object"),
])
def test_bad_input_names_the_field(sc: object, where: str) -> None:
    with pytest.raises(SeccompError, match=where):
        seccomp.validate(sc)  # type: ignore[arg-type]


def test_spec_lists_are_accepted() -> None:
    seccomp.validate(profile(
        architectures=["SCMP_ARCH_" + a for a in seccomp.ARCHES], flags=list(seccomp.FLAGS),
        listenerPath="/run/agent.sock", listenerMetadata="m",
        syscalls=[{"names": ["mkdir"], "action": a} for a in seccomp.ACTIONS]))


def test_none_is_fine() -> None:
    seccomp.validate(None)
    assert seccomp.prepare(None) is None


def test_notify_detected() -> None:
    p = seccomp.compile_profile(profile(listenerPath="/a", syscalls=[
        {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]))
    assert p.notify


def test_missing_bindings_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "seccomp", None)  # makes `import seccomp` raise ImportError
    with pytest.raises(SeccompError, match=r"python3-seccomp\) are not installed"):
        seccomp.prepare(profile())
