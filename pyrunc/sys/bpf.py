"""The bpf(2) calls a cgroup v2 device filter needs: load, attach, query, detach.

It lives in the syscall layer beside pyrunc.sys.linux: bpf(2) takes a union whose layout is
specific to each command, and nothing else in pyrunc uses it. `union bpf_attr` is built
as a zeroed byte buffer with the fields packed at their offsets (linux/bpf.h); the kernel accepts a
shorter attr than its own as long as the bytes it gets are consistent.
"""

from __future__ import annotations

import ctypes
import platform
import struct

from pyrunc.sys import oslite as os

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280}

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

_ATTR_SIZE = 128
_libc: list[ctypes.CDLL] = []


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    if not _libc:
        _libc.append(ctypes.CDLL(None, use_errno=True))
    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        raise OSError(0, f"bpf: unsupported architecture {platform.machine()}")
    while True:
        ret = int(_libc[0].syscall(ctypes.c_long(nr), ctypes.c_int(cmd), attr,
                                   ctypes.c_uint(_ATTR_SIZE)))
        if ret >= 0:
            return ret
        err = ctypes.get_errno()
        if err != 4:  # EINTR
            raise OSError(err, f"bpf({what}): {os.strerror(err)}")


def prog_load_device(insns: bytes, license: str = "Apache") -> int:
    """Load a BPF_PROG_TYPE_CGROUP_DEVICE program; returns its fd (the verifier log on failure)."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(65536)
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8,
                     ctypes.addressof(code), ctypes.addressof(lic), 1, len(log),
                     ctypes.addressof(log))
    try:
        return _bpf(BPF_PROG_LOAD, attr, "BPF_PROG_LOAD")
    except OSError as exc:
        text = log.value.decode(errors="replace").strip()
        raise OSError(exc.errno, f"{exc.strerror}{': ' + text if text else ''}") from None


def prog_attach(cgroup_fd: int, prog_fd: int) -> None:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<IIII", attr, 0, cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
    _bpf(BPF_PROG_ATTACH, attr, "BPF_PROG_ATTACH")


def prog_detach(cgroup_fd: int, prog_fd: int) -> None:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<III", attr, 0, cgroup_fd, prog_fd, BPF_CGROUP_DEVICE)
    _bpf(BPF_PROG_DETACH, attr, "BPF_PROG_DETACH")


def prog_query(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached directly to the cgroup."""
    ids = (ctypes.c_uint32 * 64)()
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<IIIIQI", attr, 0, cgroup_fd, BPF_CGROUP_DEVICE, 0, 0,
                     ctypes.addressof(ids), len(ids))
    _bpf(BPF_PROG_QUERY, attr, "BPF_PROG_QUERY")
    count = struct.unpack_from("<I", attr, 24)[0]
    return list(ids[:count])


def prog_fd_by_id(prog_id: int) -> int:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<I", attr, 0, prog_id)
    return _bpf(BPF_PROG_GET_FD_BY_ID, attr, "BPF_PROG_GET_FD_BY_ID")


def replace_device_filter(cgroup_dir: str, insns: bytes) -> None:
    """Attach the program to the cgroup, then detach the ones that were there (as runc does)."""
    cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old = prog_query(cg)
        prog = prog_load_device(insns)
        try:
            prog_attach(cg, prog)
        finally:
            os.close(prog)
        for prog_id in old:
            fd = prog_fd_by_id(prog_id)
            try:
                prog_detach(cg, fd)
            finally:
                os.close(fd)
    finally:
        os.close(cg)
