"""The runtime options containerd passes (CreateTaskRequest.options, and `start`'s stdin): decoded,
honoured where they mean something to a shim that runs pyrunc in-process, refused by name where not.

Three message types arrive (pyrunc.shim.messages has their tables): runc's shim options
(containerd.runc.v1.Options: the CRI plugin's and Go clients'), containerd.linux.runc.CreateOptions
(what ctr's --no-pivot, --uidmap and --gidmap send to a runtime not named io.containerd.runc.*) and
runtimeoptions.v1.Options (the CRI plugin's for such a runtime, when its table has `options`).

    no_pivot_root, no_new_keyring, systemd_cgroup  -> pyrunc's create, as runc's flags of those names
                                                     (pyrunc refuses the systemd driver itself)
    root                                           -> pyrunc's state root, <root>/<namespace>
    io_uid, io_gid                                 -> owner of the process's stdio pipes
    shim_cgroup                                    -> the cgroup the shim daemon is put in when
                                                     this `start` starts it (one shim per namespace)
    binary_name                                    -> accepted when it names pyrunc (it runs
                                                     in-process); any other runtime is refused
    criu_*, and CreateOptions' restore fields      -> refused: pyrunc does not checkpoint
    config_path                                    -> refused: the shim reads no config file
"""

from __future__ import annotations

from pyrunc._typing import MYPY
from pyrunc.shim import messages as m
from pyrunc.shim import ttrpc, wire
from pyrunc.sys import jsonfast
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.shim.wire import Msg

# Fields pyrunc cannot honour, by message type, and why.
_NO_CRIU = "pyrunc does not checkpoint or restore containers (no CRIU support)"
_REFUSED = {
    m.RUNC_OPTIONS_TYPE: {f: _NO_CRIU for f in ("criu_path", "criu_image_path", "criu_work_path")},
    m.LINUX_CREATE_OPTIONS_TYPE: {f: _NO_CRIU for f in (
        "open_tcp", "external_unix_sockets", "terminal", "file_locks", "empty_namespaces",
        "cgroups_mode", "criu_work_path", "criu_image_path")},
    m.CRI_RUNTIME_OPTIONS_TYPE: {"config_path": "the pyrunc shim reads no runtime config file"},
}
_TABLES = {m.RUNC_OPTIONS_TYPE: m.RUNC_OPTIONS, m.LINUX_CREATE_OPTIONS_TYPE: m.LINUX_CREATE_OPTIONS,
           m.CRI_RUNTIME_OPTIONS_TYPE: m.CRI_RUNTIME_OPTIONS}


class Options:
    """What the shim honours of the runtime options (all off when containerd sent none)."""

    def __init__(self) -> None:
        self.no_pivot_root = False
        self.no_new_keyring = False
        self.systemd_cgroup = False
        self.root = ""  # pyrunc's state root for containerd's namespaces ("": the shim's own)
        self.shim_cgroup = ""
        self.io_uid = 0
        self.io_gid = 0

    @property
    def io_owner(self) -> tuple[int, int] | None:
        return (self.io_uid, self.io_gid) if self.io_uid or self.io_gid else None


def _refuse(field: str, why: str) -> ttrpc.RpcError:
    return ttrpc.RpcError(ttrpc.INVALID_ARGUMENT, f"options.{field}: {why}")


def decode(any_msg: Msg) -> Options:
    """The Options of a google.protobuf.Any (decoded with messages.ANY); RpcError
    INVALID_ARGUMENT naming the field for what pyrunc cannot do."""
    opts = Options()
    type_url = wire.text(any_msg, "type_url")
    if not type_url:
        return opts
    name = type_url.rpartition("/")[2]
    table = _TABLES.get(name)
    if table is None:
        raise _refuse("type_url", f"{type_url!r} is not a runtime options type the pyrunc shim "
                      f"knows ({', '.join(sorted(_TABLES))})")
    try:
        msg = wire.decode(table, wire.raw(any_msg, "value"))
    except wire.DecodeError as exc:
        raise _refuse("value", f"not a {name}: {exc}") from exc
    for field, why in _REFUSED[name].items():
        if msg.get(field):
            raise _refuse(field, f"{msg[field]!r}: {why}")
    binary = wire.text(msg, "binary_name")
    if binary and binary.rpartition("/")[2] != "pyrunc":
        raise _refuse("binary_name", f"{binary!r}: the pyrunc shim runs pyrunc in-process; use "
                      "containerd's runc shim (io.containerd.runc.v2) to run another runtime")
    root = wire.text(msg, "root")
    if root and not root.startswith("/"):
        raise _refuse("root", f"{root!r}: expected an absolute path")
    opts.no_pivot_root, opts.no_new_keyring = wire.flag(msg, "no_pivot_root"), \
        wire.flag(msg, "no_new_keyring")
    opts.systemd_cgroup, opts.root = wire.flag(msg, "systemd_cgroup"), root
    opts.shim_cgroup = wire.text(msg, "shim_cgroup")
    opts.io_uid, opts.io_gid = wire.num(msg, "io_uid"), wire.num(msg, "io_gid")
    return opts


def from_bytes(data: bytes) -> Options:
    """The options `start` reads on stdin: a marshalled Any, or nothing."""
    if not data:
        return Options()
    try:
        return decode(wire.decode(m.ANY, data))
    except wire.DecodeError as exc:
        raise _refuse("value", f"not a google.protobuf.Any: {exc}") from exc


# <bundle>/options.json, as runc's shim keeps its options there (the field names are its JSON's):
# only `root`, written when set, which `containerd-shim-pyrunc-v2 delete` needs after a shim died.
# Its presence also sends that `delete` past the launcher's fast path (bin/containerd-shim-pyrunc-v2).
OPTIONS_FILE = "options.json"


def write_root(bundle: str, root: str) -> None:
    path = os.path.join(bundle, OPTIONS_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, jsonfast.dumps({"root": root}).encode())
    finally:
        os.close(fd)


def read_root(bundle: str) -> str:
    """The `root` option of the task whose bundle this is ("" when none was given)."""
    try:
        with open(os.path.join(bundle, OPTIONS_FILE), "rb") as f:
            saved = jsonfast.loads(f.read())
    except (OSError, ValueError):
        return ""
    root = saved.get("root") if isinstance(saved, dict) else None
    return root if isinstance(root, str) and root.startswith("/") else ""
