"""The rarer syscalls, on full ctypes: imported only where a config asks for them (process
scheduler, I/O priority, memory policy, personality; the LSM's verified procfs).

Each prototype is declared here once; callers pass plain Python values.
"""

from __future__ import annotations

import ctypes

from pyrunc.sys import linux
from pyrunc.sys import oslite as os


class SchedAttr(ctypes.Structure):
    """struct sched_attr, SCHED_ATTR_SIZE_VER1 (56 bytes)."""

    _fields_ = [("size", ctypes.c_uint32), ("sched_policy", ctypes.c_uint32),
                ("sched_flags", ctypes.c_uint64), ("sched_nice", ctypes.c_int32),
                ("sched_priority", ctypes.c_uint32), ("sched_runtime", ctypes.c_uint64),
                ("sched_deadline", ctypes.c_uint64), ("sched_period", ctypes.c_uint64),
                ("sched_util_min", ctypes.c_uint32), ("sched_util_max", ctypes.c_uint32)]


def sched_attr(policy: int, flags: int, nice: int, priority: int, runtime: int, deadline: int,
               period: int) -> SchedAttr:
    return SchedAttr(ctypes.sizeof(SchedAttr), policy, flags, nice, priority, runtime, deadline,
                     period, 0, 0)


def sched_setattr(attr: SchedAttr) -> None:
    """sched_setattr(2) of the calling thread."""
    linux.syscall("sched_setattr", 0, ctypes.byref(attr), ctypes.c_uint(0))


_IOPRIO_WHO_PROCESS = 1


def ioprio_set(value: int) -> None:
    """ioprio_set(2) of the calling process; `value` is class << 13 | priority."""
    linux.syscall("ioprio_set", _IOPRIO_WHO_PROCESS, 0, value)


def nodemask(nodes: set[int]) -> tuple[ctypes.Array[ctypes.c_ulong], int]:
    """The nodemask array and the maxnode argument for set_mempolicy(2)."""
    words = max(nodes) // 64 + 1
    mask = (ctypes.c_ulong * words)()
    for n in nodes:
        mask[n // 64] |= 1 << (n % 64)
    return mask, words * 64 + 1  # the kernel reads maxnode - 1 bits


def set_mempolicy(mode: int, nodes: set[int] | None) -> None:
    if not nodes:
        linux.syscall("set_mempolicy", mode, None, ctypes.c_ulong(0))
        return
    mask, maxnode = nodemask(nodes)
    linux.syscall("set_mempolicy", mode, mask, ctypes.c_ulong(maxnode))


def personality(persona: int) -> None:
    linux.syscall("personality", ctypes.c_ulong(persona))


def fstatfs_type(fd: int) -> int:
    """f_type of fstatfs(2): which filesystem `fd` is on."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes; f_type comes first
    if linux.libc.fstatfs(fd, buf) == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"fstatfs: {os.strerror(err)}")
    return ctypes.c_long.from_buffer(buf).value


def gettid() -> int:
    return int(linux.libc.gettid())
