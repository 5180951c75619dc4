"""The create/start barrier's waiting half, as a 760-byte static program instead of Python.

Between `create` and `start` the init only has to block on exec.fifo, load the seccomp filter
(when no_new_privs lets it load there) and execve the workload. Doing that in the Python init costs a resident interpreter (~11 MB VmRSS, ~5.5 MB Pss)
for as long as the container stays created. So, once everything is set up, the init execs this
program from a sealed memfd: it reads one byte from the fifo, closes it, loads the filter's raw
BPF (exported by libseccomp into another sealed memfd) with seccomp(2) and execs the workload
(source: barrier_x86_64.S, assembled with `as --64` + `ld -static -nostdlib -N -s`; the unit
tests check these bytes against the source). A double execve changes nothing for capabilities (the
exec transformation is idempotent: root keeps inheritable|bounding, others their ambient set), and
the only syscall left under the filter is the workload's own execve. Its /proc/<pid>/exe is the
sealed memfd, never a host file. Where it cannot run (other architectures, startContainer hooks, a
filter loaded earlier that refuses execveat) the Python init waits, loads the filter and execs.
"""

from __future__ import annotations

import binascii

from pyrunc.sys import linux
from pyrunc.sys import oslite as os

PROGRAM_X86_64 = binascii.a2b_base64(
    "f0VMRgIBAQAAAAAAAAAAAAIAPgABAAAAeABAAAAAAABAAAAAAAAAAPgBAAAAAAAAAAAAAEAAOAABAEAABAADAAEAAAAHAAAAeAAAAAAAAAB4AEAAAAAAAHgAQAAAAAAAYwEAAAAAAABogQAAAAAAAAgAAAAAAAAASInjTIsjSYP8Bg+MswAAAEiLcxDo3AAAAEGJ/UiD7BBEie9Iiea6AQAAADHADwVIg/j8dOtEie+4AwAAAA8FSItzGIA+LXRn6KgAAABBif5Ii3Mg6JwAAABBif9EifdIjTUCAQAAugCAAABFMdK4EQAAAA8FSIXAfldIwegDZokEJEiNDd8AAABIiUwkCESJ97gDAAAADwW/AQAAAESJ/kiJ4rg9AQAADwVIhcB1IkiLeyhIjXMwSo1U4xC4OwAAAA8FSI01QgAAALotAAAA6wxIjTVhAAAAuioAAAC/AgAAALgBAAAADwW/fwAAALjnAAAADwUx/w+2BoTAdA2D6DBr/woBx0j/xuvsw3B5cnVuYzogZXhlYyBvZiB0aGUgY29udGFpbmVyIHByb2Nlc3MgZmFpbGVkCnB5cnVuYzogbG9hZGluZyB0aGUgc2VjY29tcCBmaWx0ZXIgZmFpbGVkCgAuc2hzdHJ0YWIALnRleHQALmJzcwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAsAAAABAAAABwAAAAAAAAB4AEAAAAAAAHgAAAAAAAAAYwEAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAARAAAACAAAAAMAAAAAAAAA4AFAAAAAAADbAQAAAAAAAACAAAAAAAAAAAAAAAAAAAAIAAAAAAAAAAAAAAAAAAAAAQAAAAMAAAAAAAAAAAAAAAAAAAAAAAAA2wEAAAAAAAAWAAAAAAAAAAAAAAAAAAAAAQAAAAAAAAAAAAAAAAAAAA==")

def available() -> bool:
    return os.uname().machine == "x86_64"


def make() -> int:
    """The program's memfd (made before seccomp and pivot_root)."""
    return linux.sealed_memfd("pyrunc-init", PROGRAM_X86_64)


def exec_waiting(program_fd: int, fifo_fd: int, path: str, args: list[str],
                 env: dict[str, str], bpf: tuple[int, int] | None = None) -> None:
    """execveat(program_fd); `bpf` is (memfd of the raw filter, seccomp flags) to load after the
    wait. Returns only if the execveat failed (then the caller waits in Python)."""
    fds = [fifo_fd] if bpf is None else [fifo_fd, bpf[0]]
    for fd in fds:
        os.set_inheritable(fd, True)
    filt = ["-", "0"] if bpf is None else [str(bpf[0]), str(bpf[1])]
    try:
        os.execve(program_fd, ["pyrunc-init", str(fifo_fd), *filt, path, *args], env)
    except OSError:
        for fd in fds:
            os.set_inheritable(fd, False)
