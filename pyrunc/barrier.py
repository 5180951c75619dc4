"""The create/start barrier's waiting half, as a 504-byte static program instead of Python.

Between `create` and `start` the init only has to block on exec.fifo and then execve the
workload. Doing that in the Python init costs a resident interpreter (~11 MB VmRSS, ~5.5 MB Pss)
for as long as the container stays created. So, once everything is set up, the init execs this
program from a sealed memfd: it reads one byte from the fifo, closes it and execs the workload
(source: barrier_x86_64.S, assembled with `as --64` + `ld -static -nostdlib -N -s`; the unit
tests check these bytes against the source). A double execve changes nothing for capabilities (the
exec transformation is idempotent: root keeps inheritable|bounding, others their ambient set), and
the seccomp filter allows what the workload's own execve needs. Its /proc/<pid>/exe is the sealed
memfd, never a host file. Where it cannot run (other architectures, startContainer hooks, a
seccomp profile refusing execveat) the Python init waits as before.
"""

from __future__ import annotations

import binascii
import fcntl

from pyrunc import oslite as os

PROGRAM_X86_64 = binascii.a2b_base64(
    "f0VMRgIBAQAAAAAAAAAAAAIAPgABAAAAeABAAAAAAABAAAAAAAAAADgBAAAAAAAAAAAAAEAAOAABAEAAAwACAAEAAAAHAAAAeAAAAAAAAAB4AEAAAAAAAHgAQAAAAAAAqwAAAAAAAACrAAAAAAAAAAEAAAAAAAAASInjTIsjSItzEDH/D7YGhMB0DYPoMGv/CgHHSP/G6+xBif1Ig+wQRInvSInmugEAAAAxwA8FSIP4/HTrRInvuAMAAAAPBUiLexhIjXMgSo1U4xC4OwAAAA8FvwIAAABIjTUYAAAAui0AAAC4AQAAAA8Fv38AAAC45wAAAA8FcHlydW5jOiBleGVjIG9mIHRoZSBjb250YWluZXIgcHJvY2VzcyBmYWlsZWQKAC5zaHN0cnRhYgAudGV4dAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAsAAAABAAAABwAAAAAAAAB4AEAAAAAAAHgAAAAAAAAAqwAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAABAAAAAwAAAAAAAAAAAAAAAAAAAAAAAAAjAQAAAAAAABEAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAA")

_F_ADD_SEALS = 1033
_SEALS = 1 | 2 | 4 | 8  # F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE


def available() -> bool:
    return os.uname().machine == "x86_64"


def make() -> int:
    """A sealed, close-on-exec memfd holding the program (made before seccomp and pivot_root)."""
    fd = os.memfd_create("pyrunc-init", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, PROGRAM_X86_64)
        fcntl.fcntl(fd, _F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def exec_waiting(program_fd: int, fifo_fd: int, path: str, args: list[str],
                 env: dict[str, str]) -> None:
    """execveat(program_fd): returns only if that failed (then the caller waits in Python)."""
    os.set_inheritable(fifo_fd, True)
    try:
        os.execve(program_fd, ["pyrunc-init", str(fifo_fd), path, *args], env)
    except OSError:
        os.set_inheritable(fifo_fd, False)
