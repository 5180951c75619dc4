"""seccomp.prepare: the libseccomp filter built from a profile, checked through its PFC export."""

from __future__ import annotations

import os
import tempfile

import pytest

from pyrunc.linux import seccomp

pytestmark = pytest.mark.requires("seccomp")


def pfc(sc: dict[str, object]) -> str:
    f = seccomp.prepare(sc)
    assert f is not None
    with tempfile.TemporaryFile("w+") as out:
        f.ctx.export_pfc(out)
        out.seek(0)
        return out.read()


def test_rules_land_in_the_filter() -> None:
    text = pfc({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "no_such_syscall_at_all"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},  # the default: skipped
    ]})
    assert "if ($syscall == 83)" in text or "mkdir" in text
    assert "action ERRNO(1)" in text
    assert "action ALLOW;" in text


def test_architectures_are_added() -> None:
    text = pfc({"defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                                  "SCMP_ARCH_LOONGARCH64"],
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})
    if os.uname().machine == "x86_64":
        assert "x86_64" in text and "x86" in text and "x32" in text


def test_repeated_argument_index_becomes_separate_rules() -> None:
    text = pfc({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{
        "names": ["personality"], "action": "SCMP_ACT_ERRNO",
        "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 8},
                 {"index": 0, "op": "SCMP_CMP_EQ", "value": 0x20008}]}]})
    assert "$a0.lo32 == 8)" in text and "$a0.lo32 == 131080)" in text


def test_unsupported_flag_is_an_error() -> None:
    with pytest.raises(seccomp.SeccompError, match="WAIT_KILLABLE_RECV is not supported"):
        seccomp.prepare({"defaultAction": "SCMP_ACT_ALLOW",
                         "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]})
