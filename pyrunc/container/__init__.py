"""A container as the verbs see it: its saved state, its derived status, its cgroups.

The status is never stored: it is read off the facts each time (runc does the same). The init is
identified by pid *and* start time (field 22 of /proc/<pid>/stat), so a recycled pid never passes
for a live container, and signals go through a pidfd opened and then re-verified.
"""

from pyrunc import MYPY, OCI_VERSION
from pyrunc.container import state
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.container.state import State
    from pyrunc.linux.cgroups import Manager
    from pyrunc.linux.cgroups.teardown import Cgroups
    from pyrunc.spec.types import Config, OCIState


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a live pid, or None."""
    try:
        data = state.read_bytes(f"/proc/{pid}/stat")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[19])


def alive(pid: int, start: int | None) -> bool:
    st = proc_stat(pid) if pid > 0 else None
    return st is not None and st[0] not in ("Z", "X") and (start is None or st[1] == start)


class Container:
    def __init__(self, root: str, cid: str, data: "State") -> None:
        self.root = root
        self.id = cid
        self.data = data
        self.dir = os.path.join(root, cid)

    @classmethod
    def load(cls, root: str, cid: str) -> "Container":
        return cls(root, cid, state.read(root, cid))

    @property
    def pid(self) -> int:
        return int(self.data.get("pid") or 0)

    @property
    def bundle(self) -> str:
        return str(self.data.get("bundle", ""))

    @property
    def config(self) -> "Config":
        # A damaged state.json without its config reads as an empty one: delete still works.
        return self.data.get("config") or {}  # type: ignore[return-value]

    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, state.FIFO)

    def alive(self) -> bool:
        return alive(self.pid, self.data.get("pid_start"))

    def status(self) -> str:
        if not self.pid:
            return "creating"  # state.json is written before the init exists
        if not self.alive():
            return "stopped"
        if os.path.exists(self.fifo):
            return "created"
        if self.data.get("cgroup") and self.frozen():
            return "paused"
        return "running"

    def frozen(self) -> bool:
        """`self.cgroup().frozen()` without loading the cgroup manager (a 48 kB module, ~1.5 ms):
        `state` and `kill` of every running container ask it. The same files and values as
        Manager.frozen (tests/unit/container/test_frozen.py holds the two to the same answers);
        a malformed entry goes to the manager, which reports it."""
        dirs = self.data["cgroup"].get("dirs")
        if not isinstance(dirs, dict) or not all(isinstance(d, str) for d in dirs.values()):
            return self.cgroup().frozen()
        values: tuple[bytes, ...]
        if "freezer" in dirs:
            path, values = dirs["freezer"] + "/freezer.state", (b"FROZEN", b"FREEZING")
        elif "" in dirs:
            path, values = dirs[""] + "/cgroup.freeze", (b"1",)
        else:
            return False
        try:
            return state.read_bytes(path).strip() in values
        except OSError:
            return False

    def cgroup(self) -> "Manager":
        from pyrunc.linux import cgroups

        return cgroups.from_state(self.data["cgroup"])

    def cgroup_teardown(self) -> "Cgroups":
        """The cgroups as `delete` and `kill --all` need them (processes, freezer, removal),
        without loading the manager when the saved entry allows (teardown.load)."""
        from pyrunc.linux.cgroups import teardown

        return teardown.load(self.data["cgroup"])

    def locked(self) -> state.locked:
        return state.locked(self.root, self.id)

    def save(self, sync: bool = True) -> None:
        state.write(self.root, self.id, self.data, sync)

    def oci_state(self, status: str | None = None) -> "OCIState":
        """The runtime-spec state: what `state` prints and what hooks read on stdin."""
        status = status or self.status()
        out: OCIState = {
            "ociVersion": OCI_VERSION, "id": self.id,
            "pid": self.pid if status != "stopped" else 0, "status": status,
            "bundle": self.bundle, "rootfs": self.data.get("rootfs", ""),
            "created": self.data.get("created", ""), "owner": self.data.get("owner", ""),
        }
        if self.data.get("annotations"):
            out["annotations"] = self.data["annotations"]
        return out


def load(root: str, cid: str) -> Container:
    state.check_id(cid)
    if not os.path.isdir(os.path.join(root, cid)):
        from pyrunc.errors import ContainerNotFound  # (see pyrunc.errors: only when failing)

        raise ContainerNotFound(cid)
    return Container.load(root, cid)
