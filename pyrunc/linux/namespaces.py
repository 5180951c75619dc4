"""Namespaces: which to create, which to join by path, and the user namespace's id maps.

Ordering constraints (config-linux.md and the kernel):
- a user namespace comes first, so every other new namespace is owned by it; its maps are written
  by the parent (from outside), with `setgroups` denied first when the kernel requires it;
- pid and time namespaces apply to children only: whoever unshares them must fork the init after;
- the cgroup namespace is unshared after the init joined its cgroup, so that cgroup is its root.
"""

from __future__ import annotations

from pyrunc._typing import MYPY
from pyrunc.errors import NamespaceError
from pyrunc.records import dataclass, field
from pyrunc.spec import rules
from pyrunc.sys import linux
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.spec.types import Config, IDMapping, TimeOffset

CLONE_FLAGS = {
    "pid": linux.CLONE_NEWPID, "network": linux.CLONE_NEWNET, "mount": linux.CLONE_NEWNS,
    "ipc": linux.CLONE_NEWIPC, "uts": linux.CLONE_NEWUTS, "user": linux.CLONE_NEWUSER,
    "cgroup": linux.CLONE_NEWCGROUP, "time": linux.CLONE_NEWTIME,
}
PROC_NAMES = rules.NS_LINK_NAMES  # type -> name under /proc/<pid>/ns
# Joining order: user first (it grants the rights for the rest), mount last (paths change).
JOIN_ORDER = ["user", "ipc", "uts", "network", "pid", "time", "cgroup", "mount"]


@dataclass
class NsPlan:
    new: set[str] = field(default_factory=set)
    join: dict[str, str] = field(default_factory=dict)  # type -> path
    uid_map: str = ""
    gid_map: str = ""
    time_offsets: dict[str, TimeOffset] = field(default_factory=dict)
    # Types the container shares with the runtime (not listed, or a path to the runtime's own):
    # nothing in them may be changed (no hostname, sysctl, pivot_root or remount of /).
    shared: set[str] = field(default_factory=set)

    @property
    def userns(self) -> bool:
        return "user" in self.new or "user" in self.join

    def unshare_flags(self, *types: str) -> int:
        flags = 0
        for t in types:
            if t in self.new:
                flags |= CLONE_FLAGS[t]
        return flags


def map_text(mappings: list[IDMapping]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def plan(config: Config) -> NsPlan:
    linux_cfg = config.get("linux", {})
    p = NsPlan()
    for ns in linux_cfg.get("namespaces", []):
        if ns.get("path"):
            p.join[ns["type"]] = ns["path"]
        else:
            p.new.add(ns["type"])
    p.uid_map = map_text(linux_cfg.get("uidMappings", []))
    p.gid_map = map_text(linux_cfg.get("gidMappings", []))
    p.time_offsets = linux_cfg.get("timeOffsets", {})
    p.shared = {t for t in CLONE_FLAGS
                if t not in p.new and (t not in p.join or rules.is_own_ns(t, p.join[t]))}
    return p


def open_ns(path: str, nstype: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NamespaceError(f"opening {nstype} namespace {path}: {exc.strerror}") from exc


def join(nstype: str, path: str) -> None:
    fd = open_ns(path, nstype)
    try:
        linux.setns(fd, CLONE_FLAGS[nstype])
    except OSError as exc:
        raise NamespaceError(f"joining {nstype} namespace {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def join_all(p: NsPlan, types: list[str]) -> None:
    for t in JOIN_ORDER:
        if t in types and t in p.join:
            join(t, p.join[t])


def unshare(flags: int, what: str) -> None:
    if not flags:
        return
    try:
        linux.unshare(flags)
    except OSError as exc:
        raise NamespaceError(f"unshare {what}: {exc.strerror}") from exc


def write_id_maps(pid: int, p: NsPlan) -> None:
    """From the parent: the child's uid_map/gid_map.

    Root writes them. A user other than root may map only its own ids itself (with setgroups
    denied first); more (its subordinate ranges of /etc/subuid and /etc/subgid) go through the
    setuid helpers newuidmap/newgidmap, as runc and podman do.
    """
    if os.geteuid() != 0 and not (_only_own(p.uid_map, os.geteuid())
                                  and _only_own(p.gid_map, os.getegid())):
        _helper_maps(pid, p)
        return
    try:
        if os.geteuid() != 0:
            with open(f"/proc/{pid}/setgroups", "w") as f:
                f.write("deny")
        with open(f"/proc/{pid}/uid_map", "w") as f:
            f.write(p.uid_map)
        with open(f"/proc/{pid}/gid_map", "w") as f:
            f.write(p.gid_map)
    except OSError as exc:
        raise NamespaceError(f"writing id mappings of pid {pid}: {exc.strerror}") from exc


def _only_own(text: str, ident: int) -> bool:
    lines = [line.split() for line in text.splitlines() if line.strip()]
    return len(lines) == 1 and lines[0][1:] == [str(ident), "1"]


def _helper_maps(pid: int, p: NsPlan) -> None:
    import posix
    import shutil  # rootless with subordinate ids only

    for tool, text in (("newuidmap", p.uid_map), ("newgidmap", p.gid_map)):
        argv = [tool, str(pid), *text.split()]
        path = shutil.which(tool)
        if path is None:
            raise NamespaceError(f"{tool} not found: a rootless container mapping more than its "
                                 "own id needs it (Debian's uidmap package)")
        child = os.posix_spawn(path, argv, posix.environ)
        status = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
        if status != 0:
            raise NamespaceError(f"{tool} {' '.join(argv[1:])} failed (status {status}): are the "
                                 "ranges in /etc/subuid and /etc/subgid?")


_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def loopback_up() -> None:
    """`ip link set lo up` in the calling task's network namespace, with two ioctls on an
    AF_INET socket (no netlink library on the init's path)."""
    import _socket
    import fcntl
    import struct

    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        ifr = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, struct.pack("16sh22x", b"lo", 0))
        flags = struct.unpack_from("16sh", ifr)[1]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | _IFF_UP))
    except OSError as exc:
        raise NamespaceError(f"bringing up lo in the new network namespace: {exc.strerror}") from exc
    finally:
        sock.close()


_CLOCKS = {"monotonic": 1, "boottime": 7}


def write_time_offsets(offsets: dict[str, TimeOffset]) -> None:
    """After unshare(CLONE_NEWTIME), before any process enters it: /proc/self/timens_offsets."""
    lines = []
    for clock, off in offsets.items():
        if clock not in _CLOCKS:
            raise NamespaceError(f"linux.timeOffsets: unknown clock {clock!r}")
        lines.append(f"{_CLOCKS[clock]} {int(off.get('secs', 0))} {int(off.get('nanosecs', 0))}\n")
    try:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write("".join(lines))
    except OSError as exc:
        raise NamespaceError(f"writing /proc/self/timens_offsets: {exc.strerror}") from exc


def userns_fd(uid_map: str, gid_map: str) -> int:
    """An fd of a new user namespace with these maps (for MOUNT_ATTR_IDMAP): a child unshares it,
    we write its maps and open it, then the child exits; the namespace lives on through the fd."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: leaves only with _exit
        try:
            os.close(ready_r)
            os.close(done_w)
            linux.unshare(linux.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)  # until the parent has opened the namespace
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise NamespaceError("idmapped mount: the helper could not make a user namespace")
        try:
            for name, text in (("uid_map", uid_map), ("gid_map", gid_map)):
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(text)
            return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise NamespaceError(f"idmapped mount: writing the mappings: {exc.strerror}") from exc
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)
