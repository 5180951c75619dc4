"""The state store: `<root>/<id>/` holds `state.json`, the `exec.fifo` barrier and the lock.

Statuses follow runtime.md, plus runc's `paused`:

    creating --create ok--> created --start--> running --init exits--> stopped
                                                  |  ^
                                            pause |  | resume
                                                  v  |
                                                 paused

`created` means the fifo still exists (the init waits on it); a dead or recycled init pid means
`stopped`. The status is derived from those facts each time, never stored, so it cannot go stale.
state.json is written to a temp file in the same directory, fsynced (see `write` for the two
writes that are not), then renamed.
"""

from pyrunc import MYPY
from pyrunc.sys import jsonfast
from pyrunc.sys import oslite as os

# pyrunc.errors is imported where an error is raised: the verbs that succeed never load it.
if MYPY:
    from typing import TypedDict

    from pyrunc.linux.cgroups.manager import CgroupState
    from pyrunc.linux.rootfs import HostMounts
    from pyrunc.spec.types import Config

    class State(TypedDict, total=False):
        """state.json: what create records of a container for the verbs that follow."""

        id: str
        bundle: str
        rootfs: str
        created: str
        owner: str
        annotations: dict[str, str]
        config: Config
        cgroup: CgroupState
        pid: int  # 0 while "creating"
        pid_start: int | None  # the init's start time: a recycled pid is not the init
        hostMounts: HostMounts  # no mount namespace of its own: what delete unmounts
        noNewKeyring: bool  # created with --no-new-keyring: exec keeps its caller's keyring

_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+.-")
STATE_FILE = "state.json"
FIFO = "exec.fifo"

# status -> the verbs allowed in it (runc's rules; `delete --force` is allowed everywhere).
# A created container may be deleted without --force, as runc allows: containerd's createdState
# deletes that way. A running or paused one may not (runtime.md: delete of a live container errors).
TRANSITIONS = {
    "creating": {"delete"},
    "created": {"start", "kill", "delete", "pause", "resume", "exec", "update"},
    "running": {"kill", "pause", "exec", "update"},
    "paused": {"resume", "kill", "update"},
    "stopped": {"delete"},
}


def _valid_chars(cid: str) -> bool:
    return bool(cid) and all(c in _ID_CHARS for c in cid)


def check_id(cid: str) -> None:
    if cid and cid not in (".", "..") and _valid_chars(cid) and len(cid) <= 1024:
        return
    from pyrunc.errors import InvalidIdError

    if not cid:
        raise InvalidIdError("container id cannot be empty")
    raise InvalidIdError(f"invalid container id {cid!r}: only [A-Za-z0-9_+.-] are allowed")


def check_transition(status: str, verb: str, cid: str) -> None:
    if verb in TRANSITIONS.get(status, set()):
        return
    from pyrunc.errors import InvalidState

    if verb == "kill" or (verb == "pause" and status != "paused"):
        raise InvalidState("container not running")
    if verb == "resume":
        raise InvalidState("container not paused")
    if verb == "start":
        raise InvalidState(f"cannot start a container that has {status}" if status == "stopped"
                           else "cannot start an already running container")
    if verb == "delete":
        raise InvalidState(f"cannot delete container {cid} that is not stopped: {status}")
    raise InvalidState(f"cannot {verb} container {cid} in state {status}")


def container_dir(root: str, cid: str) -> str:
    check_id(cid)
    return os.path.join(root, cid)


def make_dir(root: str, cid: str) -> str:
    """Create the container's state dir; fails if the id is taken."""
    from pyrunc.errors import ContainerExists, StateError  # create loads them anyway

    path = container_dir(root, cid)
    try:
        os.makedirs(root, mode=0o711, exist_ok=True)
        os.mkdir(path, 0o711)
    except FileExistsError as exc:
        raise ContainerExists(cid) from exc
    except OSError as exc:
        raise StateError(f"creating state directory {path}: {exc.strerror}") from exc
    return path


_STATE_TYPES: dict[str, type | tuple[type, ...]] = {
    "pid": int, "pid_start": (int, type(None)), "bundle": str, "rootfs": str, "created": str,
    "config": dict, "cgroup": dict, "annotations": dict, "noNewKeyring": bool,
}


read_bytes = os.read_bytes  # a whole (small) file with posix calls only; /proc files report size 0


def read(root: str, cid: str) -> "State":
    path = os.path.join(container_dir(root, cid), STATE_FILE)
    try:
        data: State = jsonfast.loads(read_bytes(path))  # the JSON boundary: checked below
    except FileNotFoundError as exc:
        from pyrunc.errors import ContainerNotFound

        raise ContainerNotFound(cid) from exc
    except (ValueError, OSError) as exc:
        raise _unreadable(path, str(exc)) from exc
    if not isinstance(data, dict):
        raise _unreadable(path, "not a JSON object")
    for key, types in _STATE_TYPES.items():
        if key in data and not isinstance(data.get(key), types):
            raise _unreadable(path, f"{key} has the wrong type")
    return data


def _unreadable(path: str, why: str) -> Exception:
    from pyrunc.errors import StateError

    return StateError(f"{path}: unreadable state: {why}")


def write(root: str, cid: str, data: "State", sync: bool = True) -> None:
    """Atomically replace state.json: temp file, fsync, rename. `sync=False` skips the fsync
    (still never a torn file for a reader): for create's "creating" marker only, which the same
    call replaces within milliseconds, fsynced; a crash in between leaves a half-made container
    that `delete --force` removes with or without it. (An fsync costs 0.4-8 ms on this disk.)"""
    commit(prepare(root, cid, data, sync))


def prepare(root: str, cid: str, data: "State", sync: bool = True) -> str:
    """The first half of `write`: the temp file, written and fsynced (create does this while the
    init sets itself up); `commit` renames it into place."""
    d = container_dir(root, cid)
    tmp = os.path.join(d, f".{STATE_FILE}.{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, jsonfast.dumps(data).encode())
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        from pyrunc.errors import StateError

        _discard(tmp)
        raise StateError(f"writing {os.path.join(d, STATE_FILE)}: {exc.strerror}") from exc
    return tmp


def commit(tmp: str) -> None:
    final = os.path.join(os.path.dirname(tmp), STATE_FILE)
    try:
        os.rename(tmp, final)
    except OSError as exc:
        from pyrunc.errors import StateError

        _discard(tmp)
        raise StateError(f"writing {final}: {exc.strerror}") from exc


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


class locked:
    """`with locked(root, cid) as fd:` an exclusive flock on the container's directory for the
    length of a verb (a class, not contextlib: contextlib costs 1.5 ms of every start)."""

    def __init__(self, root: str, cid: str, missing_ok: bool = False) -> None:
        self.path = container_dir(root, cid)
        self.cid = cid
        self.missing_ok = missing_ok
        self.fd: int | None = None

    def __enter__(self) -> int | None:
        import fcntl  # a C extension to load: only the verbs that lock pay for it (not `state`)

        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            if self.missing_ok:
                return None
            from pyrunc.errors import ContainerNotFound

            raise ContainerNotFound(self.cid) from exc
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return self.fd

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def list_ids(root: str) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(root) if e.is_dir() and _valid_chars(e.name))
    except FileNotFoundError:
        return []


def remove_dir(path: str) -> None:
    """Remove a state dir: state.json, fifo, temp files, and notify/ (the sd_notify socket)."""
    try:
        for name in os.listdir(path):
            entry = os.path.join(path, name)
            if os.path.isdir(entry) and not os.path.islink(entry):
                remove_dir(entry)
            else:
                os.unlink(entry)
        os.rmdir(path)
    except FileNotFoundError:
        pass
