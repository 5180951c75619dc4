"""Keep containers from overwriting the host's Python: CVE-2019-5736, for a runtime that is a script.

The attack, against runc: a container whose binary is `#!/proc/self/exe` makes the runtime's
process that execs it (the init, or `exec`'s joining process) run the host's runtime binary inside
the container. That process keeps an fd to /proc/self/exe and, once no host process runs the file
any more (no ETXTBSY), reopens it for writing and plants code that the next `runc` run executes as
root on the host. For pyrunc the file is the interpreter: /usr/bin/python3.11.

The defence here: every pyrunc process that forks a container process runs its interpreter from a
read-only bind mount of it, `/run/pyrunc/exe/python3`. /proc/<pid>/exe and /proc/<pid>/fd/<n> carry
that mount, so reopening them for writing fails with EROFS. `ensure` checks this on every
create/run/exec (a statvfs, a readlink and two stats) and otherwise makes the mount once per boot,
under a lock, then re-executes the command from it; bin/pyrunc prefers the mount when it exists, so
that is rare. `set_nondumpable` covers the other half: while the init or a joining process holds
host resources (mapped host libraries, which /proc/<pid>/map_files would hand out), it is not
dumpable, so processes in the container cannot open its /proc/<pid>/{exe,map_files,fd,mem}.
"""

from __future__ import annotations

import sys

from pyrunc import log
from pyrunc.errors import MountError
from pyrunc.sys import linux
from pyrunc.sys import oslite as os

EXE_DIR = "/run/pyrunc/exe"
TARGET = EXE_DIR + "/python3"
SOURCE_RECORD = TARGET + ".source"  # the file the mount was made from, to spot a stale mount
_LOCK = EXE_DIR + ".lock"
_ST_RDONLY = os.ST_RDONLY

# Re-executed from the mount, the interpreter gets our sys.path as argv[1] and runs `main` again.
_BOOT = ("import sys; sys.path[:0] = sys.argv.pop(1).split(':'); "
         "from {entry} import main; sys.exit(main(sys.argv[1:]))")


def set_nondumpable() -> None:
    """PR_SET_DUMPABLE 0: container processes may not ptrace us or open /proc/<pid>/* of ours.
    execve(2) of the container's binary resets it."""
    linux.prctl(linux.PR_SET_DUMPABLE, 0)


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _recorded_source() -> str | None:
    try:
        with open(SOURCE_RECORD) as f:
            return f.read().strip() or None
    except OSError:
        return None


def is_guarded() -> bool:
    """Running from a read-only mount of an interpreter that is still the installed one."""
    if not os.statvfs("/proc/self/exe").f_flag & _ST_RDONLY:
        return False
    if os.readlink("/proc/self/exe") != TARGET:
        return True  # the interpreter lives on a read-only filesystem of its own
    source = _recorded_source()
    # After an upgrade of the interpreter package the mount still holds the old, deleted file.
    return source is None or _same_file(TARGET, source)


def ensure(entry: str = "pyrunc.cli") -> None:
    """At the start of create/run/exec, before any fork: re-exec from a read-only interpreter,
    calling `entry`'s main(sys.argv[1:]) again."""
    if is_guarded():
        return
    if os.geteuid() != 0:
        log.debug("not root: cannot make the read-only interpreter mount; running unguarded")
        return
    if os.readlink("/proc/self/exe") == TARGET and _recorded_source() is None:
        raise MountError(f"{TARGET} is not a read-only mount after setting it up")
    source = _interpreter()
    try:
        _setup_once(source)
    except (MountError, OSError):
        if not _cannot_write(source):
            raise
        # Root of a user namespace (rootless podman runs us so) may not own the host's /run; the
        # interpreter is then not its to write either, as for a user other than root.
        log.debug("root of a user namespace: no read-only interpreter mount; running unguarded")
        return
    boot = _BOOT.format(entry=entry)
    os.execv(TARGET, [TARGET, "-I", "-S", "-c", boot, ":".join(sys.path), *sys.argv[1:]])


def _cannot_write(source: str) -> bool:
    from pyrunc.linux.rootless import in_user_namespace

    return in_user_namespace() and not os.access(source, os.W_OK)


def _interpreter() -> str:
    exe = os.readlink("/proc/self/exe")
    if exe == TARGET or exe.endswith(" (deleted)"):
        # Running from a stale mount: the installed interpreter is the one recorded, or ours.
        exe = _recorded_source() or os.path.realpath(sys.executable)
    return os.path.realpath(exe)


def _setup_once(source: str) -> None:
    import fcntl

    os.makedirs(EXE_DIR, mode=0o755, exist_ok=True)
    fd = os.open(_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not (_is_ro_mount(TARGET) and _same_file(TARGET, source)):
            _bind_read_only(source)
    finally:
        os.close(fd)


def _is_ro_mount(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & _ST_RDONLY)
    except OSError:
        return False


def _bind_read_only(source: str) -> None:
    try:
        for _ in range(16):  # stacked mounts: a stale interpreter, or a half-made mount
            if not _is_mountpoint(TARGET):
                break
            linux.umount2(TARGET, linux.MNT_DETACH)
        # The placeholder is not executable, so bin/pyrunc never execs it before the mount lands.
        os.close(os.open(TARGET, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        linux.mount(source, TARGET, None, linux.MS_BIND)
        linux.mount(None, TARGET, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
        linux.mount(None, TARGET, None, linux.MS_PRIVATE)
        _write_record(source)
    except OSError as exc:
        raise MountError(f"making the read-only interpreter mount {TARGET} of {source}: "
                         f"{exc.strerror}") from exc


def _is_mountpoint(path: str) -> bool:
    """A file bind mount from another filesystem (mountinfo would also list shadowed mounts)."""
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except OSError:
        return False


def _write_record(source: str) -> None:
    tmp = SOURCE_RECORD + ".tmp"
    with open(tmp, "w") as f:
        f.write(source + "\n")
    os.rename(tmp, SOURCE_RECORD)
