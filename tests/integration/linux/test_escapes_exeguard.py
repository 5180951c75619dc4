"""exeguard: the read-only interpreter mount (CVE-2019-5736 for a Python runtime), and the
non-dumpable init. The mount is made in a private mount namespace on a private /run/pyrunc, so the
test starts from nothing and leaves nothing behind."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from pyrunc.linux import exeguard

pytestmark = pytest.mark.requires("root", "busybox")

REPO = Path(__file__).resolve().parents[3]
PY = sys.executable

PROBE = textwrap.dedent("""
    import json, os, sys
    sys.path[0:0] = [{repo!r}, os.path.dirname(os.path.abspath(__file__))]
    from pyrunc.linux import exeguard
    from pyrunc.sys import linux

    def main(argv):
        if os.readlink("/proc/self/exe") != exeguard.TARGET:
            # first run: a private mount namespace with an empty /run/pyrunc
            linux.unshare(linux.CLONE_NEWNS)
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
            os.makedirs("/run/pyrunc", exist_ok=True)
            linux.mount("tmpfs", "/run/pyrunc", "tmpfs", 0, "mode=755")
        exeguard.ensure(entry="probe")
        fd = os.open("/proc/self/exe", os.O_PATH)
        os.set_inheritable(fd, True)
        print(json.dumps({{"argv": argv, "exe": os.readlink("/proc/self/exe"),
                          "ro": bool(os.statvfs("/proc/self/exe").f_flag & os.ST_RDONLY),
                          "source": open(exeguard.SOURCE_RECORD).read().strip(),
                          "guarded": exeguard.is_guarded()}}), flush=True)
        # the attack: once this interpreter no longer runs, reopen it for writing (nothing is
        # written: `true` only opens)
        os.execv("/usr/bin/busybox", ["sh", "-c", f"true >> /proc/self/fd/{{fd}}; echo rc=$?"])

    if __name__ == "__main__":
        sys.exit(main(sys.argv[1:]))
""")


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def test_ensure_reexecs_from_a_read_only_mount(tmp_path: Path) -> None:
    import shutil
    import subprocess  # noqa: TID251 - tests may pay for it

    # A private copy of the interpreter: while pytest runs /usr/bin/python3.11 a write-open of it
    # fails with ETXTBSY anyway, which would hide a missing guard.
    interp = tmp_path / "python3"
    shutil.copy2(os.path.realpath(PY), interp)
    (tmp_path / "probe.py").write_text(PROBE.format(repo=str(REPO)))
    before = sha256(str(interp))
    p = subprocess.run([str(interp), "-I", "-S", str(tmp_path / "probe.py"), "a b", "--x"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    first, rc = p.stdout.splitlines()[0], p.stdout.splitlines()[-1]
    facts = json.loads(first)
    assert facts == {"argv": ["a b", "--x"], "exe": exeguard.TARGET, "ro": True,
                     "source": str(interp), "guarded": True}
    assert rc == "rc=1" and "Read-only file system" in p.stderr
    assert sha256(str(interp)) == before


def test_the_probe_attack_works_without_the_guard(tmp_path: Path) -> None:
    """The control: the same reopen on an unguarded copy succeeds (nothing is written)."""
    import shutil
    import subprocess  # noqa: TID251

    interp = tmp_path / "python3"
    shutil.copy2(os.path.realpath(PY), interp)
    before = sha256(str(interp))
    code = ("import os; fd = os.open('/proc/self/exe', os.O_PATH); os.set_inheritable(fd, True);"
            "os.execv('/usr/bin/busybox', ['sh', '-c', f'true >> /proc/self/fd/{fd}; echo rc=$?'])")
    p = subprocess.run([str(interp), "-I", "-S", "-c", code], capture_output=True, text=True,
                       timeout=30)
    assert p.stdout.strip() == "rc=0", p.stderr
    assert sha256(str(interp)) == before


def test_unguarded_interpreter_is_detected() -> None:
    """The venv's interpreter (/usr/bin/python3.11 on a writable root) is not guarded."""
    if os.statvfs(PY).f_flag & os.ST_RDONLY:
        pytest.skip("the interpreter is on a read-only filesystem here")
    if os.readlink("/proc/self/exe") == exeguard.TARGET:
        pytest.skip("pytest itself runs from the guard mount")
    assert not exeguard.is_guarded()


def test_set_nondumpable() -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        from pyrunc.sys import linux

        before = linux.prctl(3)  # PR_GET_DUMPABLE
        exeguard.set_nondumpable()
        os.write(w, f"{before} {linux.prctl(3)}".encode())
        os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    out = os.read(r, 64).decode()
    os.close(r)
    assert status == 0 and out == "1 0"
