"""The container's root filesystem: a mount plan made from the spec, then its application.

`plan()` is pure (unit-tested without root): each mount of config.json becomes a `MountOp` with its
flags split the way the kernel wants them (mount flags, propagation flags applied by separate calls,
recursive attributes applied with mount_setattr, and the data string for the filesystem).

The executor resolves every destination inside the root with openat2(RESOLVE_IN_ROOT), creating
missing directories one component at a time from the root fd, and mounts onto the resulting O_PATH
fd (`/proc/self/fd/N`): a symlink or `..` in the rootfs can never send a mount, a mkdir or a device
node to the host, even under a racing rename (CVE-2021-30465, CVE-2024-45310). After pivot_root,
masked paths get a clone of the host's /dev/null verified to be char 1:3 (CVE-2025-31133) moved in
with move_mount, never a path the container could have replaced.
"""

from __future__ import annotations

import errno
import stat

from pyrunc._typing import MYPY, Callable
from pyrunc.errors import MountError, SpecError
from pyrunc.records import dataclass, field
from pyrunc.sys import linux
from pyrunc.sys import oslite as os

if MYPY:
    from typing import TypedDict

    from pyrunc.spec.types import Config

    class MountContext(TypedDict, total=False):
        """What the init knows of its cgroups when it mounts `type: cgroup`."""

        cgroupns: bool  # a cgroup namespace of its own (new or joined)
        cgroup_dirs: list[str]  # the container's cgroup directories on the host

    class HostMounts(TypedDict):
        """`host_mounts`' record in state.json: [mount id, mount point] pairs."""

        mntns: int
        mounts: list[list[int | str]]

L = linux
# option -> (clear?, flag)
MOUNT_FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0), "ro": (False, L.MS_RDONLY), "rw": (True, L.MS_RDONLY),
    "suid": (True, L.MS_NOSUID), "nosuid": (False, L.MS_NOSUID),
    "dev": (True, L.MS_NODEV), "nodev": (False, L.MS_NODEV),
    "exec": (True, L.MS_NOEXEC), "noexec": (False, L.MS_NOEXEC),
    "sync": (False, L.MS_SYNCHRONOUS), "async": (True, L.MS_SYNCHRONOUS),
    "dirsync": (False, L.MS_DIRSYNC), "remount": (False, L.MS_REMOUNT),
    "mand": (False, L.MS_MANDLOCK), "nomand": (True, L.MS_MANDLOCK),
    "atime": (True, L.MS_NOATIME), "noatime": (False, L.MS_NOATIME),
    "diratime": (True, L.MS_NODIRATIME), "nodiratime": (False, L.MS_NODIRATIME),
    "bind": (False, L.MS_BIND), "rbind": (False, L.MS_BIND | L.MS_REC),
    "relatime": (False, L.MS_RELATIME), "norelatime": (True, L.MS_RELATIME),
    "strictatime": (False, L.MS_STRICTATIME), "nostrictatime": (True, L.MS_STRICTATIME),
    "lazytime": (False, L.MS_LAZYTIME), "nolazytime": (True, L.MS_LAZYTIME),
    "silent": (False, L.MS_SILENT), "loud": (True, L.MS_SILENT),
    "iversion": (False, L.MS_I_VERSION), "noiversion": (True, L.MS_I_VERSION),
    "nosymfollow": (False, L.MS_NOSYMFOLLOW), "symfollow": (True, L.MS_NOSYMFOLLOW),
}
PROPAGATION: dict[str, int] = {
    "shared": L.MS_SHARED, "rshared": L.MS_SHARED | L.MS_REC,
    "private": L.MS_PRIVATE, "rprivate": L.MS_PRIVATE | L.MS_REC,
    "slave": L.MS_SLAVE, "rslave": L.MS_SLAVE | L.MS_REC,
    "unbindable": L.MS_UNBINDABLE, "runbindable": L.MS_UNBINDABLE | L.MS_REC,
}
# recursive attributes (mount_setattr with AT_RECURSIVE): option -> (clear?, attr)
RECURSIVE_ATTRS: dict[str, tuple[bool, int]] = {
    "rro": (False, L.MOUNT_ATTR_RDONLY), "rrw": (True, L.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, L.MOUNT_ATTR_NOSUID), "rsuid": (True, L.MOUNT_ATTR_NOSUID),
    "rnodev": (False, L.MOUNT_ATTR_NODEV), "rdev": (True, L.MOUNT_ATTR_NODEV),
    "rnoexec": (False, L.MOUNT_ATTR_NOEXEC), "rexec": (True, L.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, L.MOUNT_ATTR_NODIRATIME), "rdiratime": (True, L.MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, L.MOUNT_ATTR_RELATIME), "rnorelatime": (True, L.MOUNT_ATTR__ATIME),
    "rnoatime": (False, L.MOUNT_ATTR_NOATIME), "ratime": (True, L.MOUNT_ATTR__ATIME),
    "rstrictatime": (False, L.MOUNT_ATTR_STRICTATIME), "rnostrictatime": (True, L.MOUNT_ATTR__ATIME),
    "rnosymfollow": (False, L.MOUNT_ATTR_NOSYMFOLLOW), "rsymfollow": (True, L.MOUNT_ATTR_NOSYMFOLLOW),
}
# options the runtime consumes itself (runc extensions); never passed to the kernel
EXTENSIONS = {"tmpcopyup", "idmap", "ridmap"}
UNSUPPORTED: set[str] = set()  # options parsed but refused with a clear error (none today)
MOUNT_OPTIONS = sorted({*MOUNT_FLAGS, *PROPAGATION, *RECURSIVE_ATTRS, *EXTENSIONS})

DEFAULT_DEVICES = [  # path, major, minor (all char devices, 0666)
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
    ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
]
DEV_SYMLINKS = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
                ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr")]
_DEV_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


@dataclass
class MountOp:
    source: str
    destination: str
    fstype: str
    flags: int = 0
    clear: int = 0
    propagation: list[int] = field(default_factory=list)
    attr_set: int = 0
    attr_clr: int = 0
    data: str = ""
    extensions: set[str] = field(default_factory=set)
    source_tree: int = -1  # a bind source cloned by the parent (see clone_bind_sources)
    late_rdonly: bool = False  # a `ro` /dev: made read-only by `finish`, after its nodes
    uid_map: str = ""  # an idmapped mount's own mappings (uid_map text), else the container's
    gid_map: str = ""

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & L.MS_BIND)


def parse_options(options: list[str], field_name: str = "options") -> MountOp:
    op = MountOp("", "", "")
    data = []
    for opt in options:
        if opt in MOUNT_FLAGS:
            clear, flag = MOUNT_FLAGS[opt]
            if clear:
                op.flags &= ~flag
                op.clear |= flag
            else:
                op.flags |= flag
                op.clear &= ~flag
        elif opt in PROPAGATION:
            op.propagation.append(PROPAGATION[opt])
        elif opt in RECURSIVE_ATTRS:
            clear, attr = RECURSIVE_ATTRS[opt]
            if clear:
                op.attr_clr |= attr
            else:
                op.attr_set |= attr
                if attr & L.MOUNT_ATTR__ATIME or attr == L.MOUNT_ATTR_RELATIME:
                    op.attr_clr |= L.MOUNT_ATTR__ATIME  # the atime modes are one field
        elif opt in UNSUPPORTED:
            raise SpecError(f"{field_name}: {opt!r} (idmapped mounts) is not supported by pyrunc")
        elif opt in EXTENSIONS:
            op.extensions.add(opt)
        elif opt.startswith("mode=") or "=" in opt or opt.isidentifier() or opt.replace("-", "_").isidentifier():
            data.append(opt)
        else:
            raise SpecError(f"{field_name}: unknown mount option {opt!r}")
    op.data = ",".join(data)
    return op


def plan(config: Config, bundle: str) -> list[MountOp]:
    ops = []
    for i, m in enumerate(config.get("mounts", [])):
        op = parse_options(m.get("options", []), f"mounts[{i}].options")
        op.destination = os.path.normpath(m["destination"])
        op.fstype = m.get("type", "") or ("bind" if op.is_bind else "")
        if op.fstype == "bind" and not op.is_bind:
            op.flags |= L.MS_BIND
        source = m.get("source", "") or op.fstype
        if op.is_bind and not source.startswith("/"):
            source = os.path.normpath(os.path.join(bundle, source))  # filepath.Join, as runc
        op.source = source
        if not op.fstype and not op.is_bind:
            raise SpecError(f"mounts[{i}].type: missing (needed unless the mount is a bind mount)")
        if is_idmapped(op):
            if not op.is_bind:
                raise SpecError(f"mounts[{i}].options: idmapped mounts are bind mounts here "
                                f"(add bind or rbind)")
            from pyrunc.linux.namespaces import map_text

            op.uid_map = map_text(m.get("uidMappings") or [])
            op.gid_map = map_text(m.get("gidMappings") or [])
        if op.destination == "/dev" and not op.is_bind and op.flags & L.MS_RDONLY:
            op.flags &= ~L.MS_RDONLY  # devices and links go in first: `finish` makes it read-only
            op.late_rdonly = True
        ops.append(op)
    return ops


def needs_dev_setup(ops: list[MountOp]) -> bool:
    """Default devices go in unless /dev is a bind mount from the host (runc's rule)."""
    return not any(op.destination == "/dev" and op.is_bind for op in ops)


# --- in-root path resolution --------------------------------------------------------------------
def open_in_root(root_fd: int, path: str, flags: int = L.O_PATH) -> int:
    rel = path.lstrip("/") or "."
    return L.openat2(root_fd, rel, flags, L.RESOLVE_IN_ROOT | L.RESOLVE_NO_MAGICLINKS)


_MAXSYMLINKS = 40


def resolve_in_root(root_fd: int, path: str) -> str:
    """`path` with every existing symlink followed as if the root were `/` (securejoin's rule).

    openat2(RESOLVE_IN_ROOT) does this for paths that exist; a mount destination may run through
    a dangling symlink (`/evil -> /host/dir`), whose target must then be made inside the root.
    Past the first missing component nothing exists, so the rest is resolved lexically.
    """
    todo = [p for p in path.split("/") if p and p != "."]
    done: list[str] = []
    links = 0
    while todo:
        name = todo.pop(0)
        if name == "..":
            if done:
                done.pop()
            continue
        try:
            pfd = open_in_root(root_fd, "/".join(done), L.O_PATH | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            done.append(name)  # lexical from here on
            continue
        try:
            target = os.readlink(name, dir_fd=pfd)
        except OSError:  # not a symlink, or missing
            done.append(name)
            continue
        finally:
            os.close(pfd)
        links += 1
        if links > _MAXSYMLINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        if target.startswith("/"):
            done = []
        todo[:0] = [p for p in target.split("/") if p and p != "."]
    return "/" + "/".join(done)


def mkdir_in_root(root_fd: int, path: str, mode: int = 0o755) -> int:
    """mkdir -p inside the root; returns an O_PATH fd of the directory."""
    parts = [p for p in resolve_in_root(root_fd, path).split("/") if p]
    fd = os.dup(root_fd)
    try:
        for i, name in enumerate(parts):
            try:
                nxt = open_in_root(root_fd, "/".join(parts[: i + 1]), L.O_PATH | os.O_DIRECTORY)
            except FileNotFoundError:
                try:
                    os.mkdir(name, mode, dir_fd=fd)
                except FileExistsError:
                    pass
                nxt = open_in_root(root_fd, "/".join(parts[: i + 1]), L.O_PATH | os.O_DIRECTORY)
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def make_target(root_fd: int, path: str, is_file: bool) -> int:
    """Create (if missing) a mount point inside the root; returns its O_PATH fd."""
    try:
        return open_in_root(root_fd, path)
    except FileNotFoundError:
        pass
    path = resolve_in_root(root_fd, path)
    if not is_file:
        return mkdir_in_root(root_fd, path)
    parent, name = os.path.split(path)
    pfd = mkdir_in_root(root_fd, parent)
    try:
        try:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644, dir_fd=pfd))
        except FileExistsError:
            pass
    finally:
        os.close(pfd)
    return open_in_root(root_fd, path)


def fdpath(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


# --- the executor -------------------------------------------------------------------------------
def _mount(source: str | None, target_fd: int, fstype: str | None, flags: int, data: str | None,
           what: str) -> None:
    try:
        L.mount(source, fdpath(target_fd), fstype, flags, data or None)
    except OSError as exc:
        raise MountError(f"mounting {source or fstype} on {what} ({fstype or 'bind'}, "
                         f"{L.mount_flag_names(flags)}{', ' + data if data else ''}): "
                         f"{exc.strerror}") from exc


_REMOUNT_KEEP = L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC | L.MS_NOATIME | L.MS_NODIRATIME | L.MS_RELATIME


def _locked_flags(fd: int) -> int:
    """The flags a bind remount must keep (statvfs bits of the mounted tree)."""
    f = os.statvfs(fdpath(fd)).f_flag
    bits = {os.ST_NOSUID: L.MS_NOSUID, os.ST_NODEV: L.MS_NODEV, os.ST_NOEXEC: L.MS_NOEXEC,
            os.ST_NOATIME: L.MS_NOATIME, os.ST_NODIRATIME: L.MS_NODIRATIME,
            os.ST_RELATIME: L.MS_RELATIME, os.ST_RDONLY: L.MS_RDONLY}
    return sum(ms for st, ms in bits.items() if f & st)


def is_idmapped(op: MountOp) -> bool:
    return "idmap" in op.extensions or "ridmap" in op.extensions


def clone_bind_sources(ops: list[MountOp], userns: bool, uid_map: str, gid_map: str) -> list[int]:
    """In the parent: bind sources as detached mount trees (open_tree(OPEN_TREE_CLONE)) that the
    init attaches.

    - With a user namespace, every bind source: the init's mapped root may not be allowed to reach
      one (a 0700 directory on its path), as runc's mount sources.
    - An idmapped mount (`idmap`, `ridmap`: recursive) gets MOUNT_ATTR_IDMAP with a user namespace
      made from its own uidMappings/gidMappings, or from the container's (`uid_map`, `gid_map`).
    Returns the fds to close once the init has them.
    """
    fds: list[int] = []
    try:
        for op in ops:
            if not (op.is_bind and op.source.startswith("/") and (userns or is_idmapped(op))):
                continue
            flags = L.OPEN_TREE_CLONE | L.OPEN_TREE_CLOEXEC
            if op.flags & L.MS_REC or "ridmap" in op.extensions:
                flags |= L.AT_RECURSIVE
            try:
                op.source_tree = L.open_tree(-100, op.source, flags)
            except OSError as exc:
                raise MountError(f"bind mount source {op.source} of {op.destination}: "
                                 f"{exc.strerror}") from exc
            fds.append(op.source_tree)
            if is_idmapped(op):
                _idmap(op, op.uid_map or uid_map, op.gid_map or gid_map)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def _idmap(op: MountOp, uid_map: str, gid_map: str) -> None:
    from pyrunc.linux import namespaces

    if os.geteuid() != 0:
        raise MountError(f"idmapped mount {op.destination}: needs a runtime started as root")
    if not uid_map or not gid_map:
        raise MountError(f"idmapped mount {op.destination}: needs uidMappings and gidMappings "
                         "(its own, or the container's user namespace)")
    userns = namespaces.userns_fd(uid_map, gid_map)
    recursive = L.AT_RECURSIVE if "ridmap" in op.extensions else 0
    try:
        L.mount_setattr(op.source_tree, "", L.AT_EMPTY_PATH | recursive, L.MOUNT_ATTR_IDMAP,
                        userns_fd=userns)
    except OSError as exc:
        raise MountError(f"idmapped mount {op.destination} of {op.source}: {exc.strerror} (the "
                         "filesystem may not support idmapped mounts)") from exc
    finally:
        os.close(userns)


def _bind(root_fd: int, op: MountOp, fd: int) -> None:
    if op.source_tree >= 0:
        try:
            _move(op.source_tree, fd)
        except OSError as exc:
            raise MountError(f"attaching {op.source} on {op.destination}: {exc.strerror}") from exc
    else:
        _mount(op.source, fd, None, op.flags & (L.MS_BIND | L.MS_REC), None, op.destination)
    extra = op.flags & ~(L.MS_BIND | L.MS_REC | L.MS_REMOUNT)
    if not extra:
        return
    # `fd` still names the directory under the new mount; a remount needs the mount's root.
    _reopen(root_fd, op.destination, fd)
    flags = L.MS_BIND | L.MS_REMOUNT | extra
    try:
        L.mount(None, fdpath(fd), None, flags, None)
    except PermissionError:  # locked flags of the source (user namespaces): keep them
        _mount(None, fd, None, flags | (_locked_flags(fd) & _REMOUNT_KEEP), None, op.destination)
    except OSError as exc:
        raise MountError(f"remounting {op.destination} ({L.mount_flag_names(flags)}): "
                         f"{exc.strerror}") from exc


def _setattr(op: MountOp, fd: int) -> None:
    if op.attr_set or op.attr_clr:
        try:
            L.mount_setattr(fd, "", L.AT_EMPTY_PATH | L.AT_RECURSIVE, op.attr_set, op.attr_clr)
        except OSError as exc:
            raise MountError(f"mount_setattr on {op.destination}: {exc.strerror}") from exc
    for prop in op.propagation:
        _mount(None, fd, None, prop, None, op.destination)


def _source_is_file(op: MountOp) -> bool:
    if not op.is_bind:
        return False
    try:
        st = os.fstat(op.source_tree) if op.source_tree >= 0 else os.stat(op.source)
        return not stat.S_ISDIR(st.st_mode)
    except FileNotFoundError as exc:
        raise MountError(f"bind mount source {op.source} of {op.destination}: no such file or directory") from exc


def _check_ordinary_dir(root_fd: int, op: MountOp) -> None:
    """procfs and sysfs only on a real directory, never on or through a link of the rootfs's last
    component (the CVE-2019-16884 / CVE-2019-19921 class: a fake /proc would take the writes of
    LSM labels and the like). runc refuses the same."""
    try:
        fd = open_in_root(root_fd, op.destination, L.O_PATH | os.O_NOFOLLOW)
    except FileNotFoundError:
        return  # made below, as a directory
    try:
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    if not stat.S_ISDIR(mode):
        what = "a symlink" if stat.S_ISLNK(mode) else "not a directory"
        raise MountError(f"{op.destination}: {op.fstype} must be mounted on an ordinary directory, "
                         f"and {op.destination} in the rootfs is {what}")


def mount_one(root_fd: int, op: MountOp, ctx: MountContext) -> None:
    if op.fstype == "cgroup" or op.fstype == "cgroup2":
        mount_cgroups(root_fd, op, ctx)
        return
    if op.fstype in ("proc", "sysfs") and not op.is_bind:
        _check_ordinary_dir(root_fd, op)
    try:
        fd = make_target(root_fd, op.destination, _source_is_file(op))
    except OSError as exc:
        raise MountError(f"creating mount point {op.destination} in the rootfs: {exc.strerror}") from exc
    try:
        if op.is_bind:
            _bind(root_fd, op, fd)
        elif "tmpcopyup" in op.extensions and op.fstype == "tmpfs":
            _tmpfs_copyup(root_fd, op, fd)
        else:
            try:
                _mount(op.source, fd, op.fstype, op.flags & ~L.MS_REMOUNT, op.data, op.destination)
            except MountError:
                if op.fstype != "sysfs":
                    raise
                # sysfs cannot be mounted without an own network namespace under a user
                # namespace: bind the host's /sys instead, read-only as runc does.
                _bind(root_fd, MountOp("/sys", op.destination, "bind",
                                       L.MS_BIND | L.MS_REC | (op.flags & L.MS_RDONLY)), fd)
        _setattr(op, _reopen(root_fd, op.destination, fd))
    finally:
        os.close(fd)


def _reopen(root_fd: int, path: str, old: int) -> int:
    """After a mount, the old O_PATH fd still names the covered directory: reopen the top."""
    new = open_in_root(root_fd, path)
    os.dup2(new, old)
    os.close(new)
    return old


def _tmpfs_copyup(root_fd: int, op: MountOp, fd: int) -> None:
    """runc's `tmpcopyup`: the tmpfs starts with a copy of what it covers (podman's --tmpfs)."""
    below = os.open(fdpath(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the covered dir
    try:
        flags = op.flags & ~(L.MS_REMOUNT | L.MS_RDONLY)  # writable while we fill it
        _mount(op.source, fd, op.fstype, flags, op.data, op.destination)
        top = open_in_root(root_fd, op.destination, os.O_RDONLY | os.O_DIRECTORY)
        old = os.umask(0)
        try:
            _copy_tree(below, top)
        except OSError as exc:
            raise MountError(f"tmpcopyup into {op.destination}: {exc.strerror}: {exc.filename}") from exc
        finally:
            os.umask(old)
            os.close(top)
        if op.flags & L.MS_RDONLY:
            _mount(None, _reopen(root_fd, op.destination, fd), None,
                   L.MS_REMOUNT | (op.flags & ~L.MS_REMOUNT), op.data, op.destination)
    finally:
        os.close(below)


def _copy_tree(src: int, dst: int) -> None:
    """Copy a directory's entries by fd, never following a symlink; owners and modes kept."""
    for entry in os.scandir(src):
        st = entry.stat(follow_symlinks=False)
        name, mode = entry.name, stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(name, mode, dir_fd=dst)
            s = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
            d = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst)
            try:
                _copy_tree(s, d)
            finally:
                os.close(s)
                os.close(d)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        elif stat.S_ISREG(st.st_mode):
            _copy_file(src, dst, name, mode, st.st_size)
        else:  # devices, fifos, sockets
            os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst)
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)


def _copy_file(src: int, dst: int, name: str, mode: int, size: int) -> None:
    i = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
    try:
        o = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    mode, dir_fd=dst)
        try:
            while size > 0:
                n = os.sendfile(o, i, None, size)
                if n == 0:
                    break
                size -= n
        finally:
            os.close(o)
    finally:
        os.close(i)


def _cgroup_hierarchies() -> list[tuple[str, str, str]]:
    """(mount point, fstype, super options) of the host's cgroup mounts under /sys/fs/cgroup."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, pfields = pre.split(), post.split()
            if pfields[0] in ("cgroup", "cgroup2") and fields[4].startswith("/sys/fs/cgroup"):
                out.append((fields[4], pfields[0], pfields[2]))
    return out


def mount_cgroups(root_fd: int, op: MountOp, ctx: MountContext) -> None:
    """`type: cgroup`: the host's layout again, each hierarchy rooted at the container's cgroup."""
    flags = op.flags & ~(L.MS_RDONLY | L.MS_REMOUNT)
    hier = _cgroup_hierarchies()
    if any(m == "/sys/fs/cgroup" and t == "cgroup2" for m, t, _ in hier):  # unified host
        hier = [h for h in hier if h[0] == "/sys/fs/cgroup"]
    tmpfs = not (len(hier) == 1 and hier[0][0] == "/sys/fs/cgroup")
    rdonly = bool(op.flags & L.MS_RDONLY)
    # Each hierarchy gets the mount's flags (a bind keeps its source's: set them on it, as runc)
    attrs = sum(a for f, a in ((L.MS_RDONLY, L.MOUNT_ATTR_RDONLY), (L.MS_NOSUID, L.MOUNT_ATTR_NOSUID),
                               (L.MS_NODEV, L.MOUNT_ATTR_NODEV), (L.MS_NOEXEC, L.MOUNT_ATTR_NOEXEC))
                if op.flags & f)
    fd = make_target(root_fd, op.destination, False)
    top = -1
    try:
        if tmpfs:
            _mount("tmpfs", fd, "tmpfs", flags, "mode=755", op.destination)
            top = open_in_root(root_fd, op.destination, L.O_PATH | os.O_DIRECTORY)
        for mnt, fstype, sopts in hier:
            sub = op.destination + mnt[len("/sys/fs/cgroup"):]
            sfd = _hierarchy_dir(root_fd, top, sub, mnt)
            try:
                _mount_hierarchy(sfd, mnt, sub, fstype, sopts, flags, ctx)
                if attrs:
                    L.mount_setattr(_reopen(root_fd, sub, sfd), "", L.AT_EMPTY_PATH, attrs)
            finally:
                os.close(sfd)
        if rdonly and tmpfs:
            L.mount_setattr(_reopen(root_fd, op.destination, fd), "", L.AT_EMPTY_PATH, L.MOUNT_ATTR_RDONLY)
    except OSError as exc:
        raise MountError(f"mounting cgroups on {op.destination}: {exc.strerror}") from exc
    finally:
        os.close(fd)
        if top >= 0:
            os.close(top)


def _hierarchy_dir(root_fd: int, top: int, sub: str, mnt: str) -> int:
    """The mount point of one hierarchy. In the tmpfs we just mounted (nothing of the container's
    is in it yet) a direct child is made with one mkdirat; anything else goes through in-root
    resolution."""
    name = mnt[len("/sys/fs/cgroup/"):]
    if top < 0 or not name or "/" in name:
        return make_target(root_fd, sub, False)
    os.mkdir(name, 0o755, dir_fd=top)
    return os.open(name, L.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=top)


_NOT_CONTROLLERS = {"rw", "ro", "xattr", "noprefix", "clone_children", "nsdelegate",
                    "memory_recursiveprot", "memory_localevents", "favordynmods"}


def _mount_hierarchy(fd: int, mnt: str, sub: str, fstype: str, sopts: str, flags: int,
                     ctx: MountContext) -> None:
    opts = [o for o in sopts.split(",") if o not in ("rw", "ro")]
    if ctx.get("cgroupns"):
        _mount(fstype, fd, fstype, flags, ",".join(opts) if fstype == "cgroup" else None, sub)
        return
    # No cgroup namespace: bind the container's own cgroup directory of this hierarchy: the one
    # the parent is putting us in (it may not have finished: the join overlaps our setup), or,
    # for a hierarchy it does not manage, the one we inherited.
    src = next((d for d in ctx.get("cgroup_dirs", []) if d == mnt or d.startswith(mnt + "/")), None)
    if src is None:
        ctrls = {o for o in opts if o not in _NOT_CONTROLLERS}
        own = "/"
        for key, path in own_cgroup_paths().items():
            if (fstype == "cgroup2" and key == "") or (key and set(key.split(",")) == ctrls):
                own = path
        src = mnt + own
    _mount(src, fd, None, L.MS_BIND | L.MS_REC, None, sub)


def own_cgroup_paths() -> dict[str, str]:
    """hierarchy key (controllers of a v1 mount, "" for v2) -> this process's cgroup path."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            out[ctrls] = path
    return out


def make_device(root_fd: int, path: str, kind: str, major: int, minor: int, mode: int,
                uid: int, gid: int, bind: bool) -> None:
    parent, name = os.path.split(path)
    pfd = mkdir_in_root(root_fd, parent)
    try:
        try:
            os.unlink(name, dir_fd=pfd)
        except FileNotFoundError:
            pass
        if bind:  # no mknod in a user namespace: bind the host's node over an empty file
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644, dir_fd=pfd))
            tfd = open_in_root(root_fd, path)
            try:
                _mount(path, tfd, None, L.MS_BIND, None, path)
            finally:
                os.close(tfd)
            return
        os.mknod(name, (mode & 0o7777) | _DEV_TYPES[kind], os.makedev(major, minor), dir_fd=pfd)
        os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
    except OSError as exc:
        raise MountError(f"creating device {path}: {exc.strerror}") from exc
    finally:
        os.close(pfd)


def setup_dev(root_fd: int, config: Config, ops: list[MountOp], userns: bool) -> None:
    old = os.umask(0)
    try:
        if needs_dev_setup(ops):
            for path, major, minor in DEFAULT_DEVICES:
                make_device(root_fd, path, "c", major, minor, 0o666, 0, 0, userns)
        for i, d in enumerate(config.get("linux", {}).get("devices", [])):
            kind = d.get("type")
            if kind not in _DEV_TYPES or not str(d.get("path", "")).startswith("/"):
                raise SpecError(f"linux.devices[{i}]: needs a type c/b/u/p and an absolute path")
            # "/dev/x/" is /dev/x, as runc's filepath.Clean makes it
            make_device(root_fd, os.path.normpath(d["path"]), kind, d.get("major", 0), d.get("minor", 0),
                        d.get("fileMode", 0o666), d.get("uid", 0), d.get("gid", 0), userns)
        if needs_dev_setup(ops):
            _dev_links(root_fd, any(op.destination == "/dev/pts" for op in ops))
    finally:
        os.umask(old)


def _dev_links(root_fd: int, devpts: bool) -> None:
    links = list(DEV_SYMLINKS) + ([("pts/ptmx", "/dev/ptmx")] if devpts else [])
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    dfd = mkdir_in_root(root_fd, "/dev")
    try:
        for target, link in links:
            name = os.path.basename(link)
            try:
                os.unlink(name, dir_fd=dfd)
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                continue
            os.symlink(target, name, dir_fd=dfd)
    except OSError as exc:
        raise MountError(f"creating /dev symlinks: {exc.strerror}") from exc
    finally:
        os.close(dfd)


# --- the sequence -------------------------------------------------------------------------------
def prepare(config: Config, rootfs: str, ops: list[MountOp], userns: bool,
            ctx: MountContext, before_pivot: Callable[[], None] | None = None,
            shared_mnt: bool = False) -> None:
    """Everything up to pivot_root, in the container's new mount namespace.

    With `shared_mnt` (no mount namespace of its own: the runtime's is the container's), nothing
    outside the bundle is touched: no propagation change of /, no bind of the rootfs onto itself;
    the config's mounts go under the rootfs (resolved inside it) and `pivot` chroots.
    """
    if not shared_mnt:
        _bind_root(config, rootfs)
    for op in ops:
        if is_root_bind(op):
            _bind_on_root(rootfs, op, shared_mnt)
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for op in ops:
            if not is_root_bind(op):
                mount_one(root_fd, op, ctx)
        setup_dev(root_fd, config, ops, userns)
        if before_pivot:
            before_pivot()
    finally:
        os.close(root_fd)


def is_root_bind(op: MountOp) -> bool:
    """A bind mount whose destination is / itself: it becomes the container's root (crun >= 1.22
    takes it so). With `idmap`, this is how a config asks for an idmapped rootfs: runtime-spec
    1.3's `root` has no mappings, the mount of its path onto / carries them."""
    return op.is_bind and op.destination.rstrip("/") == ""


def _bind_on_root(rootfs: str, op: MountOp, shared_mnt: bool) -> None:
    """Before anything else is mounted in the rootfs: what follows goes on top of this mount."""
    if shared_mnt:
        raise MountError(f"bind mount of {op.source} on /: needs a mount namespace of its own")
    fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if op.source_tree >= 0:
            try:
                _move(op.source_tree, fd)
            except OSError as exc:
                raise MountError(f"attaching {op.source} on /: {exc.strerror}") from exc
        else:
            _mount(op.source, fd, None, op.flags & (L.MS_BIND | L.MS_REC), None, "/")
    finally:
        os.close(fd)
    extra = op.flags & ~(L.MS_BIND | L.MS_REC | L.MS_REMOUNT)
    if extra:
        try:
            L.mount(None, rootfs, None, L.MS_BIND | L.MS_REMOUNT | extra, None)
        except OSError as exc:
            raise MountError(f"remounting / ({L.mount_flag_names(extra)}): {exc.strerror}") from exc
    fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # the new mount's root
    try:
        _setattr(op, fd)
    finally:
        os.close(fd)


def _bind_root(config: Config, rootfs: str) -> None:
    """/ slave (or as rootfsPropagation says), the rootfs bound onto itself for pivot_root."""
    want = PROPAGATION.get(config.get("linux", {}).get("rootfsPropagation", ""))
    # An unbindable / would refuse the bind below: it is applied by `finish`, after pivot_root.
    prop = L.MS_SLAVE | L.MS_REC if want is None or want & L.MS_UNBINDABLE else want
    try:
        L.mount(None, "/", None, prop)
        if prop & L.MS_SHARED:
            # pivot_root refuses a shared new root or parent; made private *before* the bind,
            # the bind is private too (a bind of a shared mount joins its peer group). `finish`
            # makes / shared again after pivot_root.
            L.mount(None, _mountpoint_of(rootfs), None, L.MS_PRIVATE)
        L.mount(rootfs, rootfs, "bind", L.MS_BIND | L.MS_REC)
    except OSError as exc:
        raise MountError(f"preparing rootfs {rootfs}: {exc.strerror}") from exc


def _mountpoint_of(path: str) -> str:
    best = "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
                best = mp
    return best


def pivot(rootfs: str, no_pivot: bool, shared_mnt: bool = False) -> None:
    """pivot_root into the rootfs; with --no-pivot, move it over / and chroot; in the runtime's
    own mount namespace (`shared_mnt`), only chroot: pivot_root or a move there would detach the
    caller's own /proc and /sys."""
    try:
        if shared_mnt:
            os.chroot(rootfs)
            os.chdir("/")
            return
        if no_pivot:
            _detach_host_proc_sys(rootfs)
            os.chdir(rootfs)
            L.mount(rootfs, "/", None, L.MS_MOVE)
            os.chroot(".")
            os.chdir("/")
            return
        old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new)
            L.pivot_root(".", ".")
            os.fchdir(old)
            # The old root sits on top of the new one; detach it without propagating to the host.
            L.mount(None, ".", None, L.MS_SLAVE | L.MS_REC)
            L.umount2(".", L.MNT_DETACH)
            os.chdir("/")
        finally:
            os.close(old)
            os.close(new)
    except OSError as exc:
        raise MountError(f"pivot_root to {rootfs}: {exc.strerror}") from exc


def _detach_host_proc_sys(rootfs: str) -> None:
    """--no-pivot: chroot leaves the old root's /proc and /sys in our mount namespace, and a fully
    visible procfs there lets the container mount a fresh, unmasked one (runc masks them too).
    Detach every procfs and sysfs outside the rootfs first (this namespace is the container's)."""
    prefix = rootfs.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()
    targets = []
    for line in lines:
        fields = line.split()
        mp, fstype = _unescape(fields[4]), fields[fields.index("-") + 1]
        if fstype in ("proc", "sysfs") and mp != rootfs and not mp.startswith(prefix):
            targets.append(mp)
    for mp in reversed(targets):
        try:
            L.umount2(mp, L.MNT_DETACH)
        except OSError:
            pass  # gone with a parent already


def open_devnull() -> int:
    """Before pivot: a detached bind mount of the host's /dev/null, verified to be char 1:3.

    open_tree(OPEN_TREE_CLONE) only copies mounts of our own mount namespace, and after pivot_root
    the host's are gone: so the clone is made here and moved onto the first masked file later.
    """
    fd = os.open("/dev/null", L.O_PATH | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
            raise MountError("/dev/null of the host is not the char device 1:3")
        return L.open_tree(fd, "", L.OPEN_TREE_CLONE | L.OPEN_TREE_CLOEXEC | L.AT_EMPTY_PATH)
    finally:
        os.close(fd)


def _move(tree: int, dst_fd: int) -> None:
    L.move_mount(tree, "", dst_fd, "", L.MOVE_MOUNT_F_EMPTY_PATH | 0x40)  # 0x40: T_EMPTY_PATH


def _move_clone(src_fd: int, dst_fd: int, recursive: bool = False, rdonly: bool = False) -> None:
    flags = L.OPEN_TREE_CLONE | L.OPEN_TREE_CLOEXEC | L.AT_EMPTY_PATH | (L.AT_RECURSIVE if recursive else 0)
    tree = L.open_tree(src_fd, "", flags)
    try:
        if rdonly:
            L.mount_setattr(tree, "", L.AT_EMPTY_PATH | L.AT_RECURSIVE, L.MOUNT_ATTR_RDONLY)
        _move(tree, dst_fd)
    finally:
        os.close(tree)


def _each_in_root(paths: list[str], what: str, action: Callable[[int, str, int], None]) -> None:
    """action(root fd, path, O_PATH fd) for each path that exists, resolved inside the root."""
    root = os.open("/", L.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for path in paths:
            try:
                fd = open_in_root(root, path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                action(root, path, fd)
            except OSError as exc:
                raise MountError(f"{what} {path}: {exc.strerror}") from exc
            finally:
                os.close(fd)
    finally:
        os.close(root)


def mask_paths(paths: list[str], devnull_tree: int) -> None:
    """Directories get an empty read-only tmpfs, files the verified /dev/null."""
    first: list[int] = []  # the first masked file: later ones clone its (now attached) mount

    def mask(root: int, path: str, fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            L.mount("tmpfs", fdpath(fd), "tmpfs", L.MS_RDONLY, None)
        elif not first:
            _move(devnull_tree, fd)
            first.append(open_in_root(root, path))
        else:
            _move_clone(first[0], fd)

    try:
        _each_in_root(paths, "masking", mask)
    finally:
        for fd in first:
            os.close(fd)


def readonly_paths(paths: list[str]) -> None:
    _each_in_root(paths, "making read-only",
                  lambda _root, _path, fd: _move_clone(fd, fd, recursive=True, rdonly=True))


def finish(config: Config, ops: list[MountOp], devnull_fd: int) -> None:
    """After pivot_root: masked and read-only paths, root propagation, a read-only root."""
    linux_cfg = config.get("linux", {})
    mask_paths(linux_cfg.get("maskedPaths", []), devnull_fd)
    readonly_paths(linux_cfg.get("readonlyPaths", []))
    prop = linux_cfg.get("rootfsPropagation")
    try:
        if prop:
            L.mount(None, "/", None, PROPAGATION[prop])
        if config.get("root", {}).get("readonly"):
            L.mount_setattr(-100, "/", 0, L.MOUNT_ATTR_RDONLY)  # AT_FDCWD; the root mount alone
        if any(op.late_rdonly for op in ops):
            L.mount_setattr(-100, "/dev", 0, L.MOUNT_ATTR_RDONLY)  # /dev alone, not /dev/pts...
    except OSError as exc:
        raise MountError(f"finishing the root mount: {exc.strerror}") from exc


# --- mounts left in the runtime's own mount namespace -------------------------------------------
def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(path: str) -> list[tuple[int, str]]:
    """(mount id, mount point) of every mount at or below `path` here, in mount order."""
    prefix = path.rstrip("/") + "/"
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = _unescape(fields[4])
            if mp == path or mp.startswith(prefix):
                out.append((int(fields[0]), mp))
    return out


def _mntns() -> int:
    return os.stat("/proc/self/ns/mnt").st_ino


def host_mounts(rootfs: str, before: list[tuple[int, str]]) -> HostMounts | None:
    """The mounts a container without a mount namespace of its own made under its rootfs (those
    not in `before`), to record in its state: `delete` unmounts exactly these."""
    known = {mid for mid, _ in before}
    made: list[list[int | str]] = [[mid, mp] for mid, mp in mounts_under(rootfs)
                                   if mid not in known]
    return {"mntns": _mntns(), "mounts": made} if made else None


def unmount_recorded(record: HostMounts) -> None:
    """Detach the mounts `host_mounts` recorded, newest first; only in the namespace they were
    made in, and only a mount whose id still stands at its recorded place."""
    try:
        if record.get("mntns") != _mntns():
            return
        here = set(mounts_under("/"))
        for mid, mp in reversed(record.get("mounts", [])):
            if (mid, mp) in here and isinstance(mp, str):
                try:
                    L.umount2(mp, L.MNT_DETACH)
                except OSError:
                    pass  # detached already with a parent
    except (OSError, TypeError, ValueError):
        pass
