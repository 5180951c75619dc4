"""config.json: loading and the semantic checks `create` needs, without jsonschema.

The full schema check is `pyrunc validate` (pyrunc.ops.validate, which imports jsonschema lazily); the
hot path checks the shapes it relies on and every rule of pyrunc.spec.rules (the table `validate`
reports by), and names the field of every problem
(`process.rlimits[0].type: unknown rlimit "RLIMIT_FOO"`).
"""

from __future__ import annotations

import resource

from pyrunc._typing import MYPY, Any, Mapping
from pyrunc.errors import SpecError
from pyrunc.spec import rules
from pyrunc.sys import jsonfast
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.spec.types import Config as Config
    from pyrunc.spec.types import Linux, Mount, Process

# The names the spec knows, each listed once: `features` reports these lists.
NAMESPACES = tuple(rules.NS_LINK_NAMES)  # pid, network, mount, ipc, uts, user, cgroup, time
HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")

RLIMITS = {
    "RLIMIT_AS": resource.RLIMIT_AS, "RLIMIT_CORE": resource.RLIMIT_CORE,
    "RLIMIT_CPU": resource.RLIMIT_CPU, "RLIMIT_DATA": resource.RLIMIT_DATA,
    "RLIMIT_FSIZE": resource.RLIMIT_FSIZE, "RLIMIT_LOCKS": 10,
    "RLIMIT_MEMLOCK": resource.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_NOFILE": resource.RLIMIT_NOFILE, "RLIMIT_NPROC": resource.RLIMIT_NPROC,
    "RLIMIT_RSS": resource.RLIMIT_RSS, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
    "RLIMIT_SIGPENDING": 11, "RLIMIT_STACK": resource.RLIMIT_STACK,
}


def _json_error(path: str, exc: ValueError) -> SpecError:
    msg, line, col = (getattr(exc, k, None) for k in ("msg", "lineno", "colno"))
    if msg is None:
        return SpecError(f"{path}: invalid JSON: {exc}")
    return SpecError(f"{path}: invalid JSON: {msg} at line {line} column {col}")


def load_json(path: str) -> Any:
    """The parsed JSON of `path`, unchecked: the one place besides jsonfast that is untyped."""
    try:
        with open(path, "rb") as f:
            return jsonfast.loads(f.read())
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: {exc}") from exc
    except ValueError as exc:  # json.JSONDecodeError
        raise _json_error(path, exc) from exc


def load(bundle: str) -> Config:
    """Read and check `<bundle>/config.json`; `bundle` must be absolute."""
    path = os.path.join(bundle, "config.json")
    config: Config = load_json(path)  # the JSON boundary: checked here before anything reads it
    if not isinstance(config, dict):
        raise SpecError(f"{path}: the top level must be a JSON object")
    check(config, bundle)
    return config


def _need(cond: bool, field: str, msg: str) -> None:
    if not cond:
        raise SpecError(f"{field}: {msg}")


def _is_list_of(v: object, t: type) -> bool:
    return isinstance(v, list) and all(isinstance(x, t) for x in v)


# The containers the runtime walks: each must have its JSON type before anything reads it.
_SHAPES: list[tuple[str, type]] = [
    ("root", dict), ("process", dict), ("mounts", list), ("hooks", dict), ("annotations", dict),
    ("process.user", dict), ("process.env", list), ("process.rlimits", list),
    ("process.capabilities", dict), ("process.consoleSize", dict), ("process.scheduler", dict),
    ("process.ioPriority", dict), ("process.execCPUAffinity", dict),
    ("linux", dict), ("linux.namespaces", list), ("linux.uidMappings", list),
    ("linux.gidMappings", list), ("linux.devices", list), ("linux.resources", dict),
    ("linux.seccomp", dict), ("linux.sysctl", dict), ("linux.maskedPaths", list),
    ("linux.readonlyPaths", list), ("linux.timeOffsets", dict), ("linux.personality", dict),
    ("linux.memoryPolicy", dict), ("linux.resources.devices", list),
    ("linux.resources.hugepageLimits", list), ("linux.resources.unified", dict),
    *[(f"linux.resources.{k}", dict) for k in ("memory", "cpu", "pids", "blockIO", "network", "rdma")],
    *[(f"hooks.{k}", list) for k in HOOKS],
]
# list fields whose items must be objects
_OBJECT_ITEMS = ["mounts", "process.rlimits", "linux.namespaces", "linux.uidMappings",
                 "linux.gidMappings", "linux.devices", "linux.resources.devices",
                 "linux.resources.hugepageLimits", *[f"hooks.{k}" for k in HOOKS]]


def _lookup(config: Mapping[str, object], dotted: str) -> tuple[bool, object]:
    node: object = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_shapes(config: Mapping[str, object]) -> None:
    names: dict[type, str] = {dict: "an object", list: "a list"}
    for dotted, t in _SHAPES:
        present, value = _lookup(config, dotted)
        _need(not present or isinstance(value, t), dotted, f"must be {names[t]}, got {value!r:.40}")
    for dotted in _OBJECT_ITEMS:
        items = _lookup(config, dotted)[1]
        for i, item in enumerate(items if isinstance(items, list) else []):
            _need(isinstance(item, dict), f"{dotted}[{i}]", f"must be an object, got {item!r:.40}")
    capabilities = _lookup(config, "process.capabilities")[1]
    for key, caps in (capabilities.items() if isinstance(capabilities, dict) else ()):
        _need(_is_list_of(caps, str), f"process.capabilities.{key}", "must be a list of strings")


def check(config: Config, bundle: str) -> None:
    check_shapes(config)
    version = config.get("ociVersion")
    _need(isinstance(version, str), "ociVersion", "missing or not a string")
    _need(str(version).startswith("1."), "ociVersion", f"unsupported version {version!r} (need 1.x)")
    root = config.get("root")
    _need(isinstance(root, dict) and isinstance(root.get("path"), str) and bool(root["path"]),
          "root.path", "missing")
    rootfs = rootfs_path(config, bundle)
    _need(os.path.isdir(rootfs), "root.path", f"{rootfs}: not a directory")
    process = config.get("process")
    _need(isinstance(process, dict), "process", "missing (a container needs a process)")
    check_process(process or {}, "process")
    check_mounts(config.get("mounts", []))
    check_linux(config.get("linux", {}))
    for key in ("hostname", "domainname"):
        _need(isinstance(config.get(key, ""), str), key, "not a string")
    _need(isinstance(config.get("annotations", {}), dict), "annotations", "not an object")
    # The rules `pyrunc validate` reports: refused before anything is made.
    broken = rules.errors(config, bundle)
    if broken:
        raise SpecError(broken[0])


def check_process(process: Process, field: str) -> None:
    args = process.get("args")
    _need(_is_list_of(args, str) and len(args or []) > 0, f"{field}.args", "must be a non-empty list of strings")
    cwd = process.get("cwd", "/")
    _need(isinstance(cwd, str) and cwd.startswith("/"), f"{field}.cwd", f"must be an absolute path, got {cwd!r}")
    _need(_is_list_of(process.get("env", []), str), f"{field}.env", "must be a list of strings")
    user = process.get("user", {})
    _need(isinstance(user, dict), f"{field}.user", "not an object")
    for key in ("uid", "gid", "umask"):
        v = user.get(key, 0)
        _need(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32,
              f"{field}.user.{key}", f"must be an integer in 0..4294967295, got {v!r}")
    _need(_is_list_of(user.get("additionalGids", []), int), f"{field}.user.additionalGids",
          "must be a list of integers")
    for i, rl in enumerate(process.get("rlimits") or []):
        f = f"{field}.rlimits[{i}]"
        _need(isinstance(rl, dict), f, "not an object")
        _need(isinstance(rl.get("type"), str) and rl["type"] in RLIMITS, f"{f}.type",
              f"unknown rlimit {rl.get('type')!r}")
        for key in ("soft", "hard"):
            v = rl.get(key)
            _need(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64,
                  f"{f}.{key}", f"must be an unsigned integer, got {v!r}")
    oom = process.get("oomScoreAdj")
    _need(oom is None or (isinstance(oom, int) and -1000 <= oom <= 1000), f"{field}.oomScoreAdj",
          f"must be an integer in -1000..1000, got {oom!r}")
    _need(isinstance(process.get("terminal", False), bool), f"{field}.terminal", "must be a boolean")


def check_mounts(mounts: list[Mount]) -> None:
    _need(isinstance(mounts, list), "mounts", "must be a list")
    for i, m in enumerate(mounts):
        f = f"mounts[{i}]"
        _need(isinstance(m, dict), f, "not an object")
        dest = m.get("destination")
        _need(isinstance(dest, str) and dest.startswith("/"), f"{f}.destination",
              f"must be an absolute path, got {dest!r}")
        _need(_is_list_of(m.get("options", []), str), f"{f}.options", "must be a list of strings")
        for key in ("type", "source"):
            _need(isinstance(m.get(key, ""), str), f"{f}.{key}", "not a string")


def check_linux(linux: Linux) -> None:
    _need(isinstance(linux, dict), "linux", "not an object")
    seen: set[object] = set()
    for i, ns in enumerate(linux.get("namespaces", [])):
        f = f"linux.namespaces[{i}]"
        _need(isinstance(ns, dict), f, "not an object")
        t = ns.get("type")
        _need(isinstance(t, str) and t in NAMESPACES, f"{f}.type", f"unknown namespace type {t!r}")
        _need(t not in seen, f"{f}.type", f"namespace {t} listed twice")
        seen.add(t)
        path = ns.get("path")
        if path is not None:
            _need(isinstance(path, str) and path.startswith("/"), f"{f}.path", "must be an absolute path")
            _need(os.path.exists(path), f"{f}.path", f"{path}: no such file")
    for key, maps in (("uidMappings", linux.get("uidMappings", [])),
                      ("gidMappings", linux.get("gidMappings", []))):
        for i, m in enumerate(maps):
            ok = isinstance(m, dict) and all(
                isinstance(v := m.get(k), int) and v >= 0 for k in ("containerID", "hostID", "size"))
            _need(ok, f"linux.{key}[{i}]", "needs non-negative containerID, hostID and size")
    if "user" in seen and not any(ns.get("path") for ns in linux.get("namespaces", [])
                                  if ns.get("type") == "user"):
        _need(bool(linux.get("uidMappings")) and bool(linux.get("gidMappings")),
              "linux.uidMappings", "a new user namespace needs uidMappings and gidMappings")
    _need(isinstance(linux.get("sysctl", {}), dict), "linux.sysctl", "not an object")
    for key, value in linux.get("sysctl", {}).items():
        _need(isinstance(value, str), f"linux.sysctl[{key!r}]", f"must be a string, got {value!r:.40}")
        _need(bool(key) and not set(key) & set("/ \t\n\0") and ".." not in key,
              f"linux.sysctl[{key!r}]", "not a sysctl name")
    for key, paths in (("maskedPaths", linux.get("maskedPaths", [])),
                       ("readonlyPaths", linux.get("readonlyPaths", []))):
        for i, p in enumerate(paths):
            _need(isinstance(p, str) and p.startswith("/"), f"linux.{key}[{i}]",
                  f"must be an absolute path, got {p!r}")


# The fields of the optional mechanisms: their modules are imported only when one is set.
LSM_FIELDS = (("process", "apparmorProfile"), ("process", "selinuxLabel"), ("linux", "mountLabel"))
PROCATTR_FIELDS = (("process", "scheduler"), ("process", "ioPriority"),
                   ("process", "execCPUAffinity"), ("linux", "personality"),
                   ("linux", "memoryPolicy"))


def uses(process: Mapping[str, object], linux: Mapping[str, object],
         fields: tuple[tuple[str, str], ...]) -> bool:
    where = {"process": process, "linux": linux}
    return any(where[section].get(name) is not None for section, name in fields)


def rootfs_path(config: Config, bundle: str) -> str:
    path = config["root"]["path"]
    return os.path.normpath(path if path.startswith("/") else os.path.join(bundle, path))


def namespaces(config: Config) -> dict[str, str | None]:
    """type -> path to join, or None for a new namespace."""
    return {ns["type"]: ns.get("path") or None
            for ns in config.get("linux", {}).get("namespaces", [])}
