"""pyrunc.container.barrier: the embedded waiting program is exactly what its assembly source builds to,
and it does its job (wait for one byte, close the fifo, exec) — run here without a container."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyrunc.container import barrier

SRC = Path(barrier.__file__).with_name("barrier_x86_64.S")


@pytest.mark.skipif(not shutil.which("as") or not shutil.which("ld"), reason="needs binutils")
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 program")
def test_embedded_bytes_match_the_source(tmp_path: Path) -> None:
    subprocess.run(["as", "--64", "-o", tmp_path / "w.o", SRC], check=True)
    subprocess.run(["ld", "-static", "-nostdlib", "-N", "-s", "-o", tmp_path / "w", tmp_path / "w.o"],
                   check=True, capture_output=True)
    assert (tmp_path / "w").read_bytes() == barrier.PROGRAM_X86_64


@pytest.mark.skipif(not barrier.available(), reason="x86_64 only")
def test_waits_for_one_byte_then_execs_with_args_and_env(tmp_path: Path) -> None:
    r, w = os.pipe()
    out = tmp_path / "out"
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); from pyrunc.container import barrier; "
        "fd = barrier.make(); r = int(sys.argv[2]); "
        "barrier.exec_waiting(fd, r, '/bin/sh', ['sh', '-c', 'echo \"$0 $1 $X\"; ls /proc/self/fd', 'a b', 'c'], {'X': 'env ok'})"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(Path(barrier.__file__).parents[2]), str(r)],
                         pass_fds=(r,), stdout=out.open("w"))
    os.close(r)
    assert p.poll() is None  # blocked on the fifo/pipe until the byte comes
    os.write(w, b"0")
    assert p.wait(timeout=30) == 0
    lines = out.read_text().split("\n")
    assert lines[0] == "a b c env ok"
    assert sorted(lines[1:-1]) == ["0", "1", "2", "3"]  # the read end was closed before exec; 3 is ls's own dir fd
    os.close(w)


@pytest.mark.skipif(not barrier.available(), reason="x86_64 only")
def test_failed_exec_exits_127_with_a_message(tmp_path: Path) -> None:
    r, w = os.pipe()
    os.write(w, b"0")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pyrunc.container import barrier; "
            "barrier.exec_waiting(barrier.make(), int(sys.argv[2]), '/no/such', ['x'], {})")
    p = subprocess.run([sys.executable, "-c", code, str(Path(barrier.__file__).parents[2]), str(r)],
                       pass_fds=(r,), capture_output=True, text=True, timeout=30)
    assert p.returncode == 127
    assert "exec of the container process failed" in p.stderr


def _barrier_with_filter(filter_code: str, argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    r, w = os.pipe()
    os.write(w, b"0")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pyrunc.container import barrier; from pyrunc.linux import seccomp; from pyrunc.sys import linux; "
            f"bpf = {filter_code}; "
            f"barrier.exec_waiting(barrier.make(), int(sys.argv[2]), {argv[0]!r}, {argv!r}, {{}}, bpf)")
    p = subprocess.run([sys.executable, "-c", code, str(Path(barrier.__file__).parents[2]), str(r)],
                       pass_fds=(r,), capture_output=True, text=True, timeout=30, cwd=tmp_path)
    os.close(r)
    os.close(w)
    return p


@pytest.mark.skipif(not barrier.available(), reason="x86_64 only")
@pytest.mark.requires("seccomp")
def test_loads_the_filter_after_the_wait(tmp_path: Path) -> None:
    """mkdir refused with EPERM by the exported filter; the same command without it works."""
    sc = {"defaultAction": "SCMP_ACT_ALLOW",
          "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    argv = ["/usr/bin/busybox", "mkdir", str(tmp_path / "d")]
    p = _barrier_with_filter(f"seccomp.export(seccomp.prepare({sc!r}))", argv, tmp_path)
    assert p.returncode == 1 and "Operation not permitted" in p.stderr
    assert not (tmp_path / "d").exists()
    p = _barrier_with_filter("None", argv, tmp_path)
    assert p.returncode == 0 and (tmp_path / "d").is_dir()


@pytest.mark.skipif(not barrier.available(), reason="x86_64 only")
def test_a_filter_the_kernel_refuses_exits_127(tmp_path: Path) -> None:
    # One BPF instruction that is not a return: the kernel's checker refuses the program.
    p = _barrier_with_filter("(linux.sealed_memfd('bad', bytes(8)), 0)", ["/bin/true"], tmp_path)
    assert p.returncode == 127
    assert "loading the seccomp filter failed" in p.stderr
