"""Where the cgroup hierarchies are mounted and where this process sits in them.

A host is in one of three modes:

- `v1`: every controller has its own (or a shared, `cpu,cpuacct`) cgroup v1 hierarchy;
- `hybrid`: v1 hierarchies plus a cgroup2 mount (usually `/sys/fs/cgroup/unified`) with few or no
  controllers, which still offers the core files (`cgroup.procs`, `cgroup.freeze`, `cgroup.kill`)
  and eBPF device filters;
- `v2`: `/sys/fs/cgroup` itself is cgroup2.

The facts come from /proc/self/mountinfo and /proc/self/cgroup, parsed once per process.
"""

from __future__ import annotations

from pyrunc.errors import CgroupError
from pyrunc.records import dataclass, field
from pyrunc.sys import oslite as os

MOUNTINFO = "/proc/self/mountinfo"
SELF_CGROUP = "/proc/self/cgroup"

# Controllers pyrunc knows in v1; named hierarchies (name=systemd) are joined but never configured.
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                  "hugetlb", "net_cls", "net_prio", "rdma", "perf_event", "misc")


@dataclass(frozen=True)
class Layout:
    """The hierarchies of a host: v1 controller -> mount point, and the cgroup2 mount point."""

    mode: str                                           # "v1" | "hybrid" | "v2"
    v1: dict[str, str] = field(default_factory=dict)    # "memory" -> /sys/fs/cgroup/memory
    unified: str | None = None                          # cgroup2 mount point
    own: dict[str, str] = field(default_factory=dict)   # controller ("" = v2) -> own cgroup path
    roots: dict[str, str] = field(default_factory=dict)  # mount point -> mount root (cgroupns)

    def controllers_v2(self) -> set[str]:
        """Controllers the cgroup2 root offers (empty on this kind of hybrid host)."""
        if not self.unified:
            return set()
        try:
            with open(os.path.join(self.unified, "cgroup.controllers")) as f:
                return set(f.read().split())
        except OSError:
            return set()

    def own_path(self, key: str) -> str:
        """This process's cgroup in hierarchy `key`, relative to that hierarchy's mount point."""
        path = self.own.get(key, "/")
        mount = self.unified if key == "" else self.v1.get(key)
        root = self.roots.get(mount or "", "/")
        if root != "/" and (path == root or path.startswith(root + "/")):
            path = path[len(root):] or "/"
        return path


def parse_mountinfo(text: str) -> tuple[dict[str, str], str | None, dict[str, str]]:
    """(v1 controller -> mount point, cgroup2 mount point, mount point -> root) of mountinfo text."""
    v1: dict[str, str] = {}
    unified: str | None = None
    roots: dict[str, str] = {}
    for line in text.splitlines():
        pre, _, post = line.partition(" - ")
        fields, extra = pre.split(), post.split()
        if len(fields) < 5 or len(extra) < 3:
            continue
        fstype, mountpoint = extra[0], _unescape(fields[4])
        if fstype == "cgroup2":
            unified = mountpoint
            roots[mountpoint] = fields[3]
        elif fstype == "cgroup":
            roots[mountpoint] = fields[3]
            for opt in extra[2].split(","):
                if opt in V1_CONTROLLERS or opt.startswith("name="):
                    v1.setdefault(opt, mountpoint)
    return v1, unified, roots


def parse_self_cgroup(text: str) -> dict[str, str]:
    """controller -> path from /proc/<pid>/cgroup; "" is the cgroup2 entry."""
    own: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[1] == "":
            own[""] = parts[2]
        for ctrl in parts[1].split(","):
            if ctrl:
                own[ctrl] = parts[2]
    return own


def _unescape(path: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in path:
        return path
    return path.encode().decode("unicode_escape")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        raise CgroupError(f"reading {path}: {exc.strerror}") from exc


def build(mountinfo: str, self_cgroup: str) -> Layout:
    v1, unified, roots = parse_mountinfo(mountinfo)
    if not v1 and not unified:
        raise CgroupError("no cgroup filesystem is mounted (see /proc/self/mountinfo)")
    mode = "v2" if not v1 else ("hybrid" if unified else "v1")
    return Layout(mode=mode, v1=v1, unified=unified, own=parse_self_cgroup(self_cgroup),
                  roots=roots)


_cached: list[Layout] = []


def detect() -> Layout:
    """The host's layout, parsed from /proc/self/mountinfo once and cached."""
    if not _cached:
        _cached.append(build(_read(MOUNTINFO), _read(SELF_CGROUP)))
    return _cached[0]
