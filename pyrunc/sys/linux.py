"""The syscall layer: the only module of pyrunc that touches ctypes (through `_ctypes`).

One libc handle with errno kept, every prototype declared once at import, wrappers of a few lines
that raise `OSError(errno, strerror, <what>)` naming the syscall and its path, and retry on EINTR
(ctypes does not). Syscalls without a libc wrapper in Debian 12's glibc (pivot_root, openat2,
open_tree, move_mount, mount_setattr, close_range; keyctl, which only libkeyutils wraps) go through
`syscall(2)` with the numbers of the running architecture.
"""

from __future__ import annotations

import _ctypes
from _ctypes import Structure as Structure
from _ctypes import byref as byref
from _ctypes import get_errno as get_errno
from _ctypes import sizeof as sizeof

from pyrunc.sys import oslite as os

# --- a minimal ctypes on the C module: `import ctypes` costs ~3 ms of every start -------------------
_FUNCFLAG_CDECL, _FUNCFLAG_PYTHONAPI, _FUNCFLAG_USE_ERRNO = 0x1, 0x4, 0x8


class c_int(_ctypes._SimpleCData):  # type: ignore[misc,type-arg]  # noqa: N801 (ctypes' names)
    _type_ = "i"


class c_uint(_ctypes._SimpleCData):  # type: ignore[misc,type-arg]  # noqa: N801
    _type_ = "I"


class c_long(_ctypes._SimpleCData):  # type: ignore[misc,type-arg]  # noqa: N801
    _type_ = "l"


class c_ulong(_ctypes._SimpleCData):  # type: ignore[misc,type-arg]  # noqa: N801
    _type_ = "L"


class c_char_p(_ctypes._SimpleCData):  # type: ignore[misc,type-arg]  # noqa: N801
    _type_ = "z"


class c_char(_ctypes._SimpleCData):  # type: ignore[misc,type-arg]  # noqa: N801
    _type_ = "c"


c_uint32, c_uint64, c_size_t = c_uint, c_ulong, c_ulong  # LP64 (x86_64, aarch64, riscv64)


class _Lib:
    """The symbols of the running program (libc, and the interpreter's C API), as ctypes.CDLL."""

    def __init__(self, flags: int, restype: object) -> None:
        self._handle = _ctypes.dlopen(None, 0)  # type: ignore[arg-type]  # NULL: this program
        self._flags = flags
        self._restype = restype

    def __getattr__(self, name: str) -> _ctypes.CFuncPtr:
        class _Func(_ctypes.CFuncPtr):  # type: ignore[misc]
            _flags_ = self._flags
            _restype_ = self._restype

        func = _Func((name, self))  # type: ignore[arg-type]
        setattr(self, name, func)
        return func


libc = _Lib(_FUNCFLAG_CDECL | _FUNCFLAG_USE_ERRNO, c_int)
pythonapi = _Lib(_FUNCFLAG_CDECL | _FUNCFLAG_PYTHONAPI, None)

# --- syscall numbers: generic table (aarch64, riscv64) and x86_64's own ---------------------------
_NR_X86_64 = {"pivot_root": 155, "setns": 308, "unshare": 272, "capget": 125, "capset": 126,
              "personality": 135, "ioprio_set": 251, "set_mempolicy": 238, "sched_setattr": 314,
              "seccomp": 317, "bpf": 321, "rt_sigaction": 13, "keyctl": 250}
_NR_GENERIC = {"pivot_root": 41, "setns": 268, "unshare": 97, "capget": 90, "capset": 91,
               "personality": 92, "ioprio_set": 30, "set_mempolicy": 237, "sched_setattr": 274,
               "seccomp": 277, "bpf": 280, "rt_sigaction": 134, "keyctl": 219}
# Numbers >= 424 are the same on every architecture.
_NR_COMMON = {"clone3": 435, "open_tree": 428, "move_mount": 429, "fsopen": 430,
              "fsconfig": 431, "fsmount": 432, "pidfd_open": 434, "close_range": 436, "openat2": 437,
              "mount_setattr": 442}
NR = {**(_NR_X86_64 if os.uname().machine == "x86_64" else _NR_GENERIC), **_NR_COMMON}

# --- constants ------------------------------------------------------------------------------------
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_POSIXACL = 1 << 16
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MS_NAMES = {v: k for k, v in globals().items() if k.startswith("MS_") and isinstance(v, int)}

MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
AT_RECURSIVE = 0x8000
AT_EMPTY_PATH = 0x1000
AT_SYMLINK_NOFOLLOW = 0x100
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4

CLONE_NEWTIME = 0x80
CLONE_NEWNS = 0x20000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

O_PATH = 0o10000000

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47

CLOSE_RANGE_CLOEXEC = 4

# --- prototypes -----------------------------------------------------------------------------------
libc.mount.argtypes = [c_char_p, c_char_p, c_char_p, c_ulong, c_char_p]
libc.umount2.argtypes = [c_char_p, c_int]
libc.sethostname.argtypes = [c_char_p, c_size_t]
libc.setdomainname.argtypes = [c_char_p, c_size_t]
libc.prctl.argtypes = [c_int, c_ulong, c_ulong, c_ulong, c_ulong]
libc.syscall.restype = c_long


class OpenHow(Structure):
    _fields_ = [("flags", c_uint64), ("mode", c_uint64), ("resolve", c_uint64)]


class MountAttr(Structure):
    _fields_ = [("attr_set", c_uint64), ("attr_clr", c_uint64),
                ("propagation", c_uint64), ("userns_fd", c_uint64)]


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def _check(ret: int, what: str, path: str | None = None) -> int:
    """Turn a -1 return into OSError naming the syscall; the caller loops on EINTR."""
    if ret == -1:
        err = get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return ret


def _call(fn: object, what: str, path: str | None, *args: object) -> int:
    while True:
        ret = fn(*args)  # type: ignore[operator]
        if ret != -1 or get_errno() != 4:  # EINTR
            return _check(ret, what, path)


def _sys(name: str, path: str | None, *args: object) -> int:
    return _call(libc.syscall, name, path, NR[name], *args)


def mount_flag_names(flags: int) -> str:
    """MS_BIND|MS_REC, for error messages."""
    names = [n for bit, n in sorted(MS_NAMES.items()) if flags & bit]
    return "|".join(names) or "0"


# --- mounts ---------------------------------------------------------------------------------------
def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    _call(libc.mount, "mount", target, _b(source), _b(target), _b(fstype), flags, _b(data))


def umount2(target: str, flags: int = 0) -> None:
    _call(libc.umount2, "umount2", target, _b(target), flags)


def pivot_root(new_root: str, put_old: str) -> None:
    _sys("pivot_root", new_root, _b(new_root), _b(put_old))


def open_tree(dirfd: int, path: str, flags: int) -> int:
    return _sys("open_tree", path, dirfd, _b(path), c_uint(flags))


def move_mount(from_fd: int, from_path: str, to_fd: int, to_path: str, flags: int) -> None:
    _sys("move_mount", to_path, from_fd, _b(from_path), to_fd, _b(to_path), c_uint(flags))


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = 0) -> None:
    attr = MountAttr(attr_set, attr_clr, propagation, userns_fd)
    _sys("mount_setattr", path, dirfd, _b(path), c_uint(flags), byref(attr),
         c_size_t(sizeof(attr)))


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    how = OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return _sys("openat2", path, dirfd, _b(path), byref(how), c_size_t(24))


# --- namespaces and identity ----------------------------------------------------------------------
def unshare(flags: int) -> None:
    _sys("unshare", None, c_int(flags))


def setns(fd: int, nstype: int) -> None:
    _sys("setns", None, c_int(fd), c_int(nstype))


def sethostname(name: str) -> None:
    b = name.encode()
    _call(libc.sethostname, "sethostname", name, b, len(b))


def setdomainname(name: str) -> None:
    b = name.encode()
    _call(libc.setdomainname, "setdomainname", name, b, len(b))


# --- processes ------------------------------------------------------------------------------------
def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _call(libc.prctl, "prctl", None, option, arg2, arg3, arg4, arg5)


class CloneArgs(Structure):
    _fields_ = [(name, c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size", "tls",
        "set_tid", "set_tid_size", "cgroup")]


CLONE_INTO_CGROUP = 0x200000000


def fork_into_cgroup(cgroup_fd: int) -> int:
    """fork(2), but the child is born in the cgroup2 directory `cgroup_fd` (clone3
    CLONE_INTO_CGROUP): no migration, so no wait on the cgroup threadgroup lock. Python's own
    before/after-fork work runs as for os.fork. Only for a single-threaded caller."""
    api = pythonapi
    args = CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=17, cgroup=cgroup_fd)  # SIGCHLD
    api.PyOS_BeforeFork()
    pid = libc.syscall(NR["clone3"], byref(args), c_size_t(sizeof(args)))
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    err = get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone3: {os.strerror(err)}")
    return int(pid)


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    _sys("close_range", None, c_uint(first), c_uint(last), c_uint(flags))


def syscall(name: str, *args: object) -> int:
    """Escape hatch for the mechanisms (capset, personality, ioprio_set, ...)."""
    return _sys(name, None, *args)


_F_ADD_SEALS = 1033
_SEALS = 1 | 2 | 4 | 8  # F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE


def sealed_memfd(name: str, data: bytes) -> int:
    """A sealed, close-on-exec memfd holding `data` (nothing can change it once made)."""
    import fcntl

    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, data)
        fcntl.fcntl(fd, _F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


# --- keyrings ------------------------------------------------------------------------------------
KEYCTL_GET_KEYRING_ID = 0
KEYCTL_JOIN_SESSION_KEYRING = 1
KEYCTL_SETPERM = 5
KEYCTL_DESCRIBE = 6
KEY_SPEC_SESSION_KEYRING = -3


def keyctl_join_session_keyring(name: str | None) -> int:
    """Join the session keyring `name` (made if none of that name can be searched); its serial."""
    return _sys("keyctl", name, c_int(KEYCTL_JOIN_SESSION_KEYRING), _b(name))


def keyctl_get_keyring_id(key: int, create: bool = False) -> int:
    return _sys("keyctl", None, c_int(KEYCTL_GET_KEYRING_ID), c_long(key), c_int(create))


def keyctl_describe(key: int) -> str:
    """"type;uid;gid;perm;description" (perm in hex)."""
    size = 256
    while True:
        buf = (c_char * size)()  # type: ignore[operator]
        n = _sys("keyctl", None, c_int(KEYCTL_DESCRIBE), c_long(key), buf, c_size_t(size))
        if n <= size:  # the length with its NUL; a longer one was not copied
            return bytes(buf[:max(n - 1, 0)]).decode(errors="replace")
        size = n


def keyctl_setperm(key: int, perm: int) -> None:
    _sys("keyctl", None, c_int(KEYCTL_SETPERM), c_long(key), c_uint(perm))


# --- capabilities ------------------------------------------------------------------------------
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(Structure):
    _fields_ = [("version", c_uint32), ("pid", c_int)]


class _CapData(Structure):
    _fields_ = [("effective", c_uint32), ("permitted", c_uint32),
                ("inheritable", c_uint32)]


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of the calling thread."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()  # type: ignore[operator]
    syscall("capget", byref(hdr), data)
    lo, hi = data[0], data[1]
    return (lo.effective | hi.effective << 32, lo.permitted | hi.permitted << 32,
            lo.inheritable | hi.inheritable << 32)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()  # type: ignore[operator]
    for i in (0, 1):
        data[i].effective = effective >> (32 * i) & 0xFFFFFFFF
        data[i].permitted = permitted >> (32 * i) & 0xFFFFFFFF
        data[i].inheritable = inheritable >> (32 * i) & 0xFFFFFFFF
    syscall("capset", byref(hdr), data)


class _KernelSigaction(Structure):
    # x86_64's layout; aarch64's has no restorer, which only moves fields after the handler.
    _fields_ = [("handler", c_uint64), ("flags", c_uint64), ("restorer", c_uint64),
                ("mask", c_uint64)]


_SIG_IGN = 1


def default_if_ignored(sig: int) -> bool:
    """Give `sig` its default action if it is ignored; True if it was.

    rt_sigaction itself, not sigaction(3): glibc refuses its internal signals 32 and 33, which a
    Go parent (containerd) can leave ignored, and an ignored signal survives execve.
    """
    old = _KernelSigaction()
    syscall("rt_sigaction", c_int(sig), None, byref(old), c_size_t(8))
    if old.handler != _SIG_IGN:
        return False
    syscall("rt_sigaction", c_int(sig), byref(_KernelSigaction()), None, c_size_t(8))
    return True
