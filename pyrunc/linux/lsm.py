"""Linux security modules: process.apparmorProfile, process.selinuxLabel, linux.mountLabel.

`check` runs in the parent during create: a label for an LSM the host does not run is an error
(runc's wording and rule for selinuxLabel; AppArmor likewise). linux.mountLabel is ignored when
SELinux is off, as runc does (its label helpers return the mount options unchanged).

`apply_exec_label` runs in the init just before execve: the label is written to the thread's
attr/exec file, which the kernel applies at the next execve. The file is opened beneath a verified
procfs root (fstatfs says proc, it is the mount's root inode) with openat2 refusing symlinks and
mount crossings, so a container that mounts or links something over /proc cannot make the write
land elsewhere (CVE-2019-16884: an AppArmor label written to a fake procfs).
"""

from __future__ import annotations

from pyrunc._typing import MYPY
from pyrunc.errors import LsmError
from pyrunc.sys import calls, linux
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.spec.types import Linux, Process

PROC_SUPER_MAGIC = 0x9FA0
_PROC_ROOT_INO = 1


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().startswith("Y") and os.path.isdir("/sys/kernel/security/apparmor")
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def check(process: Process, linux_cfg: Linux) -> None:
    if process.get("apparmorProfile") and not apparmor_enabled():
        raise LsmError("process.apparmorProfile: apparmor profile is specified but AppArmor is "
                       "not enabled on this host")
    if process.get("selinuxLabel") and not selinux_enabled():
        raise LsmError("process.selinuxLabel: selinux label is specified in config, but selinux "
                       "is disabled or not supported")


# --- a verified procfs ----------------------------------------------------------------------------
def fstatfs_type(fd: int) -> int:
    return calls.fstatfs_type(fd)


def open_proc_root() -> int:
    fd = os.open("/proc", linux.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if fstatfs_type(fd) != PROC_SUPER_MAGIC or os.fstat(fd).st_ino != _PROC_ROOT_INO:
            raise LsmError("/proc is not the root of a procfs mount")
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_thread_attr(name: str, flags: int = os.O_WRONLY) -> int:
    """Open /proc/<pid>/task/<tid>/attr/<name> of the calling thread, through a verified procfs."""
    root = open_proc_root()
    try:
        path = f"{os.getpid()}/task/{_gettid()}/attr/{name}"
        fd = linux.openat2(root, path, flags, linux.RESOLVE_BENEATH | linux.RESOLVE_NO_SYMLINKS
                           | linux.RESOLVE_NO_MAGICLINKS | linux.RESOLVE_NO_XDEV)
    finally:
        os.close(root)
    if fstatfs_type(fd) != PROC_SUPER_MAGIC:
        os.close(fd)
        raise LsmError(f"/proc/{path} is not on procfs")
    return fd


def _write_attr(names: tuple[str, ...], value: str, field: str) -> None:
    last: OSError | None = None
    for name in names:
        try:
            fd = open_thread_attr(name)
        except FileNotFoundError as exc:
            last = exc
            continue
        try:
            os.write(fd, value.encode())
            return
        except OSError as exc:
            raise LsmError(f"{field}: writing {value!r} to attr/{name}: {exc.strerror}") from exc
        finally:
            os.close(fd)
    raise LsmError(f"{field}: no attr/{names[0]} file: {last}")


def apply_exec_label(process: Process) -> None:
    """Just before execve: set the AppArmor profile / SELinux label the exec will switch to."""
    profile = process.get("apparmorProfile")
    if profile:
        _write_attr(("apparmor/exec", "exec"), f"exec {profile}", "process.apparmorProfile")
    label = process.get("selinuxLabel")
    if label:
        _write_attr(("exec",), label, "process.selinuxLabel")


def _gettid() -> int:
    return calls.gettid()
