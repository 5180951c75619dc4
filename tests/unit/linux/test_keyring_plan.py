"""keyring: runc's permission bits, the perm computation, the step's place. No privileges needed."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from pyrunc.container.process import Init
from pyrunc.linux import keyring
from pyrunc.ops.exec import ExecChild
from pyrunc.sys import linux

REPO = Path(__file__).resolve().parents[3]


def test_the_init_plan_is_runcs() -> None:
    assert keyring.plan("abc", userns=False) == keyring.Plan("_ses.abc", 0xFFFFFFFF, 0x80000)
    assert keyring.plan("abc", userns=True) == keyring.Plan("_ses.abc", 0xFFFFFFFF, 0x8)
    # exec's processes only join: the init set the permissions
    assert keyring.plan("abc", userns=True, exec_process=True).setbits == 0


@pytest.mark.parametrize(("description", "mask", "setbits", "want"), [
    ("keyring;0;0;3f130000;_ses.abc", 0xFFFFFFFF, 0x80000, 0x3F1B0000),
    ("keyring;100000;100000;3f130000;_ses.abc", 0xFFFFFFFF, 0x8, 0x3F130008),
    ("keyring;0;0;3f1b0000;_ses.abc", 0xFFFFFFFF, 0x80000, 0x3F1B0000),  # joined: unchanged
    ("keyring;0;0;3f3f3f3f;_ses.abc", 0x3F000000, 0x80000, 0x3F080000),  # the mask clears
    ("keyring;0;0;3f130000;a;b;c", 0xFFFFFFFF, 0x8, 0x3F130008),  # ";" in the description
])
def test_new_perm(description: str, mask: int, setbits: int, want: int) -> None:
    assert keyring.new_perm(description, mask, setbits) == want


def test_a_malformed_description_is_an_error() -> None:
    with pytest.raises(ValueError, match="unexpected key description"):
        keyring.new_perm("keyring;0;0", 0xFFFFFFFF, 0x8)


def _fake_keyctl(monkeypatch: pytest.MonkeyPatch, join_errno: int = 0) -> list[tuple[str, object]]:
    calls: list[tuple[str, object]] = []

    def join(name: str | None) -> int:
        calls.append(("join", name))
        if join_errno:
            raise OSError(join_errno, "keyctl: " + errno.errorcode[join_errno], name)
        return 42

    monkeypatch.setattr(linux, "keyctl_join_session_keyring", join)
    monkeypatch.setattr(linux, "keyctl_describe", lambda key: "keyring;0;0;3f130000;_ses.abc")
    monkeypatch.setattr(linux, "keyctl_setperm", lambda key, perm: calls.append(("setperm", perm)))
    return calls


def test_apply_joins_then_sets_the_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_keyctl(monkeypatch)
    keyring.apply(keyring.plan("abc", userns=False))
    assert calls == [("join", "_ses.abc"), ("setperm", 0x3F1B0000)]
    calls.clear()
    keyring.apply(keyring.plan("abc", userns=False, exec_process=True))
    assert calls == [("join", "_ses.abc")]


def test_apply_tolerates_enosys_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_keyctl(monkeypatch, errno.ENOSYS)
    keyring.apply(keyring.plan("abc", userns=False))
    assert calls == [("join", "_ses.abc")]
    _fake_keyctl(monkeypatch, errno.EACCES)
    with pytest.raises(PermissionError):
        keyring.apply(keyring.plan("abc", userns=False))


def test_the_step_comes_after_the_namespaces_and_before_privileges_drop() -> None:
    for steps in (Init.STEPS, ExecChild.STEPS):
        at = steps.index("keyring")
        assert steps.index("namespaces") == at - 1
        for later in ("user", "seccomp_early", "capabilities", "no_new_privs", "seccomp_late"):
            assert steps.index(later) > at


def test_describe_reads_the_session_keyring() -> None:
    try:
        serial = linux.keyctl_get_keyring_id(linux.KEY_SPEC_SESSION_KEYRING)
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            pytest.skip("no keyrings in this kernel")
        raise
    kind, uid, gid, perm, _name = linux.keyctl_describe(serial).split(";", 4)
    assert kind == "keyring"
    assert int(uid) >= 0 and int(gid) >= 0 and int(perm, 16) > 0


def test_only_the_init_and_exec_children_load_it() -> None:
    # The verbs' own modules (the short ones, create's and exec's parents) leave it to the child.
    verbs = ("pyrunc.cli, pyrunc.container.start, pyrunc.container.destroy, pyrunc.ops.kill, "
             "pyrunc.container, pyrunc.container.create, pyrunc.ops.exec")
    prog = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import {verbs}; "
            "print(' '.join(sorted(sys.modules)))")
    p = subprocess.run([sys.executable, "-I", "-S", "-c", prog], capture_output=True, text=True,
                       check=True)
    loaded = set(p.stdout.split())
    assert "pyrunc.ops.exec" in loaded
    assert "pyrunc.linux.keyring" not in loaded
