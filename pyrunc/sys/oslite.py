"""`os` for pyrunc: the C module `posix`, and posixpath's few helpers for str paths.

`import os` costs ~1.3 ms of every call (it builds collections.abc's ABCs, which os.environ and
posixpath need): a tenth of a whole `pyrunc start`. Every function here is `posix`'s own, or a short
copy of what os/posixpath do for str paths. pyrunc's modules import it as
`from pyrunc.sys import oslite as os`, so the code reads as it would with `os`; a name missing here fails
the type check (mypy --strict), not silently at run time.
"""

import builtins
import posix
from posix import (
    F_OK,
    MFD_ALLOW_SEALING,
    MFD_CLOEXEC,
    O_APPEND,
    O_CLOEXEC,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_NOCTTY,
    O_NOFOLLOW,
    O_NONBLOCK,
    O_PATH,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    POSIX_SPAWN_CLOSE,
    POSIX_SPAWN_DUP2,
    POSIX_SPAWN_OPEN,
    R_OK,
    ST_NOATIME,
    ST_NODEV,
    ST_NODIRATIME,
    ST_NOEXEC,
    ST_NOSUID,
    ST_RDONLY,
    ST_RELATIME,
    W_OK,
    WNOHANG,
    X_OK,
    _exit,
    access,
    chdir,
    chmod,
    chown,
    chroot,
    close,
    dup,
    dup2,
    execv,
    execve,
    fchdir,
    fchmod,
    fchown,
    fork,
    fstat,
    fsync,
    get_inheritable,
    getcwd,
    getegid,
    geteuid,
    getgid,
    getgroups,
    getpgid,
    getpid,
    getppid,
    getuid,
    isatty,
    kill,
    killpg,
    listdir,
    login_tty,
    lstat,
    major,
    makedev,
    memfd_create,
    minor,
    mkdir,
    mkfifo,
    mknod,
    open,
    openpty,
    pidfd_open,
    pipe,
    pipe2,
    posix_spawn,
    pread,
    read,
    readlink,
    rename,
    rmdir,
    scandir,
    sched_setaffinity,
    sendfile,
    set_inheritable,
    setgroups,
    setpgid,
    setresgid,
    setresuid,
    setsid,
    stat,
    statvfs,
    strerror,
    symlink,
    sysconf,
    tcgetpgrp,
    tcsetpgrp,
    ttyname,
    umask,
    uname,
    unlink,
    waitpid,
    waitstatus_to_exitcode,
    write,
)
from posix import environ as _environb

from pyrunc import MYPY

if MYPY:
    from collections.abc import Callable, Iterator
    from posix import stat_result
    from typing import TextIO

    from _typeshed import OpenTextMode

__all__ = [  # os's names, re-exported
    "F_OK", "MFD_ALLOW_SEALING", "MFD_CLOEXEC", "O_APPEND", "O_CLOEXEC", "O_CREAT",
    "O_DIRECTORY", "O_EXCL", "O_NOCTTY", "O_NOFOLLOW", "O_NONBLOCK", "O_PATH", "O_RDONLY",
    "O_RDWR", "O_TRUNC", "O_WRONLY", "POSIX_SPAWN_CLOSE", "POSIX_SPAWN_DUP2",
    "POSIX_SPAWN_OPEN", "R_OK", "ST_NOATIME", "ST_NODEV", "ST_NODIRATIME", "ST_NOEXEC",
    "ST_NOSUID", "ST_RDONLY", "ST_RELATIME", "W_OK", "WNOHANG", "X_OK", "_exit", "access",
    "chdir", "chmod", "chown", "chroot", "close", "dup", "dup2", "execv", "execve", "fchdir",
    "fchmod", "fchown", "fork", "fstat", "fsync", "get_inheritable", "getcwd", "getegid",
    "geteuid", "getgid", "getgroups", "getpgid", "getpid", "getppid", "getuid", "isatty",
    "kill", "killpg", "listdir", "login_tty", "lstat", "major", "makedev", "memfd_create",
    "minor", "mkdir", "mkfifo", "mknod", "open", "openpty", "pidfd_open", "pipe", "pipe2",
    "posix_spawn", "pread", "read", "readlink", "rename", "rmdir", "scandir", "sched_setaffinity",
    "sendfile", "set_inheritable", "setgroups", "setpgid", "setresgid", "setresuid", "setsid",
    "stat", "statvfs", "strerror", "symlink", "sysconf", "tcgetpgrp", "tcsetpgrp", "ttyname",
    "umask", "uname", "unlink", "waitpid", "waitstatus_to_exitcode", "write", "getenv",
    "fsencode", "fdopen", "makedirs", "walk", "path", "read_bytes", "write_existing",
    "write_replace",
]

# posixpath.normpath's own C implementation (3.11+); an interpreter without it gets posixpath's.
_path_normpath: "Callable[[str], str] | None" = getattr(posix, "_path_normpath", None)
_ENC = ("utf-8", "surrogateescape")  # os's filesystem encoding and error handler on Linux



def getenv(key: str, default: str | None = None) -> str | None:
    """os.getenv: pyrunc only reads its own environment, one variable at a time (building a
    str copy of all of it, as os.environ does, is work every call would pay)."""
    value = _environb.get(key.encode(*_ENC))
    return default if value is None else value.decode(*_ENC)


def fsencode(name: str | bytes) -> bytes:
    return name.encode(*_ENC) if isinstance(name, str) else name


def fdopen(fd: int, mode: "OpenTextMode" = "r") -> "TextIO":
    """os.fdopen in a text mode (pyrunc writes no binary file through it)."""
    return builtins.open(fd, mode)  # it takes an fd, as os.fdopen passes it on (`open` here is posix's)


def makedirs(name: str, mode: int = 0o777, exist_ok: bool = False) -> None:
    head, tail = path.split(name)
    if not tail:
        head, tail = path.split(head)
    if head and tail and not path.exists(head):
        try:
            makedirs(head, mode, exist_ok=True)
        except FileExistsError:
            pass
    try:
        mkdir(name, mode)
    except OSError:
        if not exist_ok or not path.isdir(name):
            raise


def walk(top: str, topdown: bool = True) -> "Iterator[tuple[str, list[str], list[str]]]":
    """os.walk's defaults: symlinks to directories listed as dirs but not entered, unreadable
    directories skipped."""
    try:
        entries = list(scandir(top))
    except OSError:
        return
    dirs = [e.name for e in entries if e.is_dir()]
    files = [e.name for e in entries if not e.is_dir()]
    enter = [e.name for e in entries if e.is_dir() and not e.is_symlink()]
    if topdown:
        yield top, dirs, files
    for d in enter:
        yield from walk(path.join(top, d), topdown)
    if not topdown:
        yield top, dirs, files


def _file_type(how: "Callable[[str], stat_result]", p: str) -> int | None:
    """S_IFMT of `p` by stat or lstat, None when it cannot be had (as posixpath's queries)."""
    try:
        return int(how(p).st_mode) & 0o170000
    except (OSError, ValueError):
        return None


class path:  # noqa: N801 — read as os.path
    """posixpath's functions that pyrunc uses, for str paths."""

    @staticmethod
    def join(a: str, *p: str) -> str:
        out = a
        for b in p:
            if b.startswith("/"):
                out = b
            elif not out or out.endswith("/"):
                out += b
            else:
                out += "/" + b
        return out

    @staticmethod
    def split(p: str) -> tuple[str, str]:
        i = p.rfind("/") + 1
        head, tail = p[:i], p[i:]
        if head and head != "/" * len(head):
            head = head.rstrip("/")
        return head, tail

    @staticmethod
    def dirname(p: str) -> str:
        return path.split(p)[0]

    @staticmethod
    def basename(p: str) -> str:
        return p[p.rfind("/") + 1:]

    @staticmethod
    def normpath(p: str) -> str:
        if _path_normpath is None:
            import posixpath

            return posixpath.normpath(p)
        return str(_path_normpath(p)) or "."

    @staticmethod
    def abspath(p: str) -> str:
        return path.normpath(p if p.startswith("/") else path.join(getcwd(), p))

    @staticmethod
    def exists(p: str) -> bool:
        return _file_type(stat, p) is not None

    @staticmethod
    def lexists(p: str) -> bool:
        return _file_type(lstat, p) is not None

    @staticmethod
    def isdir(p: str) -> bool:
        return _file_type(stat, p) == 0o040000

    @staticmethod
    def islink(p: str) -> bool:
        return _file_type(lstat, p) == 0o120000

    @staticmethod
    def relpath(p: str, start: str) -> str:
        a = [x for x in path.abspath(start).split("/") if x]
        b = [x for x in path.abspath(p).split("/") if x]
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        rel = [".."] * (len(a) - n) + b[n:]
        return "/".join(rel) or "."

    @staticmethod
    def realpath(p: str) -> str:
        """Symlinks resolved; a part that does not exist is kept as it is (posixpath's default)."""
        # The parts as given ("a/../b" is resolved after "a", which may be a symlink).
        out, parts, hops = "/", (p if p.startswith("/") else getcwd() + "/" + p).split("/"), 0
        while parts:
            part = parts.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                out = path.dirname(out)
                continue
            candidate = path.join(out, part)
            try:
                target = readlink(candidate)
            except OSError:  # not a symlink, or missing
                out = candidate
                continue
            hops += 1
            if hops > 40:
                raise OSError(40, "Too many levels of symbolic links", p)  # ELOOP
            parts[:0] = target.split("/")
            if target.startswith("/"):
                out = "/"
        return out


# ---- whole small files, with posix calls only (open() builds a buffered reader: an fstat, an
# ioctl, an lseek and three objects per file) ------------------------------------------------------

def read_bytes(p: str) -> bytes:
    """A whole (small) file. /proc and cgroup files report size 0: read until the end."""
    fd = open(p, O_RDONLY | O_CLOEXEC)
    try:
        data = read(fd, 65536)
        while True:
            more = read(fd, 65536)
            if not more:
                return data
            data += more
    finally:
        close(fd)


def write_existing(p: str, value: str) -> None:
    """value written, in one write, to a file that must exist (a cgroup or /proc file)."""
    fd = open(p, O_WRONLY | O_CLOEXEC)
    try:
        write(fd, value.encode())
    finally:
        close(fd)


def write_replace(p: str, text: str, tmp: str) -> None:
    """text to p whole or not at all: written to tmp (mode 0600), which then replaces p."""
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    try:
        write(fd, text.encode())
    finally:
        close(fd)
    rename(tmp, p)
