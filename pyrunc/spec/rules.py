"""The runtime-spec's rules that a schema cannot say, as one table used by `pyrunc validate` and by
`create`/`run` alike: what `validate` reports, `create` refuses before it makes anything.

Relations between fields (a `net.*` sysctl without a network namespace, a hostname without a UTS
namespace, masked paths without a mount namespace), paths on the host, and the rules runc's
libcontainer/configs/validate applies. Several exist so that nothing a config says lands on the
host: a container that inherits a namespace must not change it.

On the create path: only oslite and jsonfast (no re, json or pathlib).
"""

from __future__ import annotations

from pyrunc._typing import MYPY, Callable, Mapping
from pyrunc.sys import jsonfast
from pyrunc.sys import oslite as os

SYSCTL_IPC = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
              "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
NS_LINK_NAMES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
                 "user": "user", "cgroup": "cgroup", "time": "time"}
# Names the mechanisms in pyrunc.linux check by too: they belong here, in the layer below them.
ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")  # the seccomp actions that carry an errno
OFFSET_CLOCKS = ("monotonic", "boottime")  # the clocks a time namespace can offset
MPOL_NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
MPOL_NEED_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED_MANY")
_IFNAMSIZ = 16
# The kernel's limit on lines in /proc/<pid>/{uid,gid}_map (since Linux 4.15).
_MAX_ID_MAPPINGS = 340

if MYPY:
    # A rule reads the config as untrusted JSON (`validate` passes one the schema rejected), so
    # it narrows every value it reads: a Config is a Mapping[str, object].
    JSON = Mapping[str, object]
    Rule = Callable[[JSON, str], list[str]]


def _quote(key: str) -> str:
    return jsonfast.dumps(key)


def _is_cpu_list(value: str) -> bool:
    """"0-3,7": comma-separated numbers or ranges of numbers."""
    for part in value.split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or not lo.isascii() or (dash and not (hi.isdigit() and hi.isascii())):
            return False
    return True


# --- helpers that survive a config the schema rejected ------------------------------------------

def _dict(value: object) -> JSON:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _namespaces(config: JSON) -> dict[str, str]:
    """type -> path ("" when the runtime creates the namespace)."""
    out: dict[str, str] = {}
    for ns in _list(_dict(config.get("linux")).get("namespaces")):
        ns = _dict(ns)
        kind = ns.get("type")
        if isinstance(kind, str):
            out.setdefault(kind, _str(ns.get("path")) or "")
    return out


def _absolute(path: object, where: str) -> list[str]:
    if isinstance(path, str) and not path.startswith("/"):
        return [f"{where}: {path!r} is not an absolute path"]
    return []


def _cpu_list(value: object, where: str) -> list[str]:
    if not isinstance(value, str) or value == "":
        return []
    if not _is_cpu_list(value):
        return [f"{where}: {value!r} is not a list like 0-3,7"]
    for part in value.split(","):
        lo, _, hi = part.partition("-")
        if hi and int(hi) < int(lo):
            return [f"{where}: range {part!r} ends before it starts"]
    return []


# --- root, process ------------------------------------------------------------------------------

def _check_root(config: JSON, bundle: str) -> list[str]:
    root = config.get("root")
    if root is None:
        return ["root: is required on Linux"]
    path = _str(_dict(root).get("path"))
    if path is None:
        return []
    full = os.path.join(bundle, path)
    if not os.path.exists(full):
        return [f"root.path: {full} does not exist"]
    if not os.path.isdir(full):
        return [f"root.path: {full} is not a directory"]
    return []


def _check_rlimits(process: JSON) -> list[str]:
    errors, seen = [], set()
    for i, rl in enumerate(_list(process.get("rlimits"))):
        rl, where = _dict(rl), f"process.rlimits[{i}]"
        kind = rl.get("type")
        if isinstance(kind, str) and kind in seen:
            errors.append(f"{where}.type: duplicate rlimit {kind}")
        seen.add(kind)
        soft, hard = rl.get("soft"), rl.get("hard")
        if isinstance(soft, int) and isinstance(hard, int) and soft > hard:
            errors.append(f"{where}: soft limit {soft} is greater than hard limit {hard}")
    return errors


def _check_scheduler(process: JSON) -> list[str]:
    sched, where = _dict(process.get("scheduler")), "process.scheduler"
    policy, errors = sched.get("policy"), []
    nice = sched.get("nice", 0)
    if isinstance(nice, int) and not -20 <= nice <= 19:
        errors.append(f"{where}.nice: {nice} is not in -20..19")
    if sched.get("priority", 0) != 0 and policy not in ("SCHED_FIFO", "SCHED_RR"):
        errors.append(f"{where}.priority: only SCHED_FIFO and SCHED_RR take a priority")
    deadline = [k for k in ("runtime", "deadline", "period") if sched.get(k, 0) != 0]
    if deadline and policy != "SCHED_DEADLINE":
        errors.append(f"{where}.{deadline[0]}: only SCHED_DEADLINE takes runtime/deadline/period")
    return errors


def _check_process(config: JSON, bundle: str) -> list[str]:
    if "process" not in config:
        return []
    process = _dict(config.get("process"))
    errors = _absolute(process.get("cwd"), "process.cwd")
    if isinstance(process.get("args"), list) and not process["args"]:
        errors.append("process.args: must have at least one entry")
    prio = _dict(process.get("ioPriority")).get("priority")
    if isinstance(prio, int) and not 0 <= prio <= 7:
        errors.append(f"process.ioPriority.priority: {prio} is not in 0..7")
    affinity = _dict(process.get("execCPUAffinity"))
    for key in ("initial", "final"):
        errors += _cpu_list(affinity.get(key), f"process.execCPUAffinity.{key}")
    return errors + _check_rlimits(process) + _check_scheduler(process)


# --- mounts, hooks, paths -----------------------------------------------------------------------

def _check_mount(mount: JSON, where: str, bundle: str, userns: bool) -> list[str]:
    errors = _absolute(mount.get("destination"), f"{where}.destination")
    options = [o for o in _list(mount.get("options")) if isinstance(o, str)]
    source = _str(mount.get("source"))
    if source and ("bind" in options or "rbind" in options):
        full = os.path.join(bundle, source)
        if not os.path.lexists(full):
            errors.append(f"{where}.source: {full} does not exist (bind mount on "
                          f"{mount.get('destination')})")
    idmap = [o for o in options if o in ("idmap", "ridmap")]
    if idmap and "uidMappings" not in mount and not userns:
        errors.append(f"{where}.options: {idmap[0]!r} needs uidMappings/gidMappings "
                      "or a user namespace")
    errors += _check_id_mappings(mount, where)
    return errors


def _check_mounts(config: JSON, bundle: str) -> list[str]:
    userns = "user" in _namespaces(config)
    errors = []
    for i, mount in enumerate(_list(config.get("mounts"))):
        errors += _check_mount(_dict(mount), f"mounts[{i}]", bundle, userns)
    return errors


def _check_hooks(config: JSON, bundle: str) -> list[str]:
    errors = []
    for kind, hooks in _dict(config.get("hooks")).items():
        for i, hook in enumerate(_list(hooks)):
            errors += _absolute(_dict(hook).get("path"), f"hooks.{kind}[{i}].path")
    return errors


def _check_linux_paths(config: JSON, bundle: str) -> list[str]:
    linux, errors = _dict(config.get("linux")), []
    for key in ("maskedPaths", "readonlyPaths"):
        for i, path in enumerate(_list(linux.get(key))):
            errors += _absolute(path, f"linux.{key}[{i}]")
    for i, dev in enumerate(_list(linux.get("devices"))):
        errors += _absolute(_dict(dev).get("path"), f"linux.devices[{i}].path")
    return errors


# --- namespaces and what depends on them --------------------------------------------------------

def _check_ns_path(path: str, kind: str, where: str) -> list[str]:
    if not path.startswith("/"):
        return [f"{where}: {path!r} is not an absolute path"]
    try:
        os.stat(path)
    except FileNotFoundError:
        return [f"{where}: {path} does not exist"]
    except OSError as exc:
        return [f"{where}: {path}: {exc.strerror}"]
    try:
        target = os.readlink(path)  # "net:[4026531840]" for /proc/<pid>/ns/net
    except OSError:
        return []  # a bind-mounted namespace file: its type needs ioctl(NS_GET_NSTYPE)
    name = target.partition(":")[0]
    if target.endswith("]") and name != NS_LINK_NAMES.get(kind, kind):
        return [f"{where}: {path} is a {name} namespace, not {kind}"]
    return []


def _check_namespaces(config: JSON, bundle: str) -> list[str]:
    errors, seen = [], set()
    for i, ns in enumerate(_list(_dict(config.get("linux")).get("namespaces"))):
        ns = _dict(ns)
        kind, path = ns.get("type"), _str(ns.get("path"))
        if kind in seen:
            errors.append(f"linux.namespaces[{i}].type: duplicate namespace {kind}")
        seen.add(kind)
        if path and isinstance(kind, str):
            errors += _check_ns_path(path, kind, f"linux.namespaces[{i}].path")
    return errors


def _check_id_mappings(holder: JSON, where: str) -> list[str]:
    errors = []
    for key in ("uidMappings", "gidMappings"):
        maps = [_dict(m) for m in _list(holder.get(key))]
        if len(maps) > _MAX_ID_MAPPINGS:
            errors.append(f"{where}.{key}: more than {_MAX_ID_MAPPINGS} entries")
        ranges = []
        for i, m in enumerate(maps):
            start, size = m.get("containerID"), m.get("size")
            if size == 0:
                errors.append(f"{where}.{key}[{i}].size: must be at least 1")
            if isinstance(start, int) and isinstance(size, int) and size > 0:
                ranges.append((start, start + size, i))
        ranges.sort()
        for (_, end, _), (start, _, j) in zip(ranges, ranges[1:], strict=False):
            if start < end:
                errors.append(f"{where}.{key}[{j}]: container range overlaps another entry")
    return errors


def _mapped(maps: object, ident: int) -> bool:
    for m in _list(maps):
        start, size = _dict(m).get("containerID"), _dict(m).get("size")
        if isinstance(start, int) and isinstance(size, int) and start <= ident < start + size:
            return True
    return False


def _check_user_mapped(config: JSON, linux: JSON) -> list[str]:
    user = _dict(_dict(config.get("process")).get("user"))
    checks = [("uid", "uidMappings", user.get("uid")), ("gid", "gidMappings", user.get("gid"))]
    checks += [(f"additionalGids[{i}]", "gidMappings", g)
               for i, g in enumerate(_list(user.get("additionalGids")))]
    return [f"process.user.{field}: {ident} is not mapped by linux.{key}"
            for field, key, ident in checks
            if isinstance(ident, int) and _list(linux.get(key))
            and not _mapped(linux[key], ident)]


def _check_userns(config: JSON, bundle: str) -> list[str]:
    linux, namespaces = _dict(config.get("linux")), _namespaces(config)
    has_maps = bool(linux.get("uidMappings") or linux.get("gidMappings"))
    errors = _check_id_mappings(linux, "linux")
    if "user" not in namespaces:
        if has_maps:
            errors.append("linux.uidMappings: mappings given, but no user namespace is asked for")
        return errors
    if namespaces["user"]:
        return errors
    for key in ("uidMappings", "gidMappings"):
        if not linux.get(key):
            errors.append(f"linux.{key}: required for a new user namespace")
    return errors + _check_user_mapped(config, linux)


def is_own_ns(kind: str, path: str) -> bool:
    """Is `path` the runtime's own namespace of `kind` (joining it isolates nothing)?"""
    try:
        mine, theirs = os.stat(f"/proc/self/ns/{NS_LINK_NAMES[kind]}"), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def private(namespaces: dict[str, str], kind: str) -> bool:
    """The container gets a namespace of `kind` other than the runtime's own."""
    return kind in namespaces and not (namespaces[kind] and is_own_ns(kind, namespaces[kind]))


def _check_uts(config: JSON, bundle: str) -> list[str]:
    if private(_namespaces(config), "uts"):
        return []
    return [f"{key}: cannot be set without a private UTS namespace"
            for key in ("hostname", "domainname") if config.get(key)]


def _check_mount_ns(config: JSON, bundle: str) -> list[str]:
    """Without a mount namespace of its own the container shares the runtime's: nothing outside
    the bundle may be remounted (runc refuses masked and read-only paths there too)."""
    if private(_namespaces(config), "mount"):
        return []
    linux, why = _dict(config.get("linux")), "cannot be applied without a private mount namespace"
    errors = [f"linux.{key}: {why}" for key in ("maskedPaths", "readonlyPaths")
              if _list(linux.get(key))]
    if linux.get("rootfsPropagation"):
        errors.append(f"linux.rootfsPropagation: {why}")
    if _dict(config.get("root")).get("readonly") is True:
        errors.append(f"root.readonly: {why}")
    return errors


def sysctl_namespace(key: str) -> str | None:
    """The namespace type that isolates sysctl `key` (dots or slashes), None if none does."""
    name = key.replace("/", ".")
    if name in SYSCTL_IPC or name.startswith("fs.mqueue."):
        return "ipc"
    if name.startswith("net."):
        return "network"
    if name in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    return None


def _sysctl_error(key: str, namespaces: dict[str, str]) -> str | None:
    """runc's rules: a sysctl is allowed only inside a namespace that isolates it."""
    kind = sysctl_namespace(key)
    if kind == "ipc" and not private(namespaces, "ipc"):
        return "needs an ipc namespace other than the host's"
    if kind == "network" and not private(namespaces, "network"):
        return "needs a network namespace other than the host's"
    if kind == "uts" and private(namespaces, "uts"):
        if key.replace("/", ".") == "kernel.hostname":
            return "conflicts with the hostname field; set that instead"
        return None
    return None if kind in ("ipc", "network") else "is not in a separate kernel namespace"


def _check_sysctl(config: JSON, bundle: str) -> list[str]:
    namespaces, errors = _namespaces(config), []
    for key in _dict(_dict(config.get("linux")).get("sysctl")):
        why = _sysctl_error(key, namespaces)
        if why:
            errors.append(f"linux.sysctl[{_quote(key)}]: {why}")
    return errors


def _check_time(config: JSON, bundle: str) -> list[str]:
    offsets = _dict(_dict(config.get("linux")).get("timeOffsets"))
    if not offsets:
        return []
    errors = [f"linux.timeOffsets[{_quote(clock)}]: only monotonic and boottime clocks "
              "can be offset" for clock in offsets if clock not in OFFSET_CLOCKS]
    namespaces = _namespaces(config)
    if "time" not in namespaces:
        errors.append("linux.timeOffsets: needs a time namespace")
    elif namespaces["time"]:
        errors.append("linux.timeOffsets: cannot be applied to a joined time namespace")
    return errors


def _valid_ifname(name: str) -> bool:
    return (0 < len(name) < _IFNAMSIZ and name not in (".", "..")
            and not any(c == "/" or c == ":" or c.isspace() for c in name))


def _check_net_devices(config: JSON, bundle: str) -> list[str]:
    devices = _dict(_dict(config.get("linux")).get("netDevices"))
    if not devices:
        return []
    errors = []
    if "network" not in _namespaces(config):
        errors.append("linux.netDevices: needs a network namespace to move devices into")
    for host_name, dev in devices.items():
        where = f"linux.netDevices[{_quote(host_name)}]"
        if not _valid_ifname(host_name):
            errors.append(f"{where}: {host_name!r} is not a valid interface name")
        name = _str(_dict(dev).get("name"))
        if name and not _valid_ifname(name):
            errors.append(f"{where}.name: {name!r} is not a valid interface name")
    return errors


# --- resources, seccomp, memory policy ----------------------------------------------------------

def _check_resources(config: JSON, bundle: str) -> list[str]:
    resources = _dict(_dict(config.get("linux")).get("resources"))
    cpu, errors = _dict(resources.get("cpu")), []
    quota, burst = cpu.get("quota"), cpu.get("burst")
    if isinstance(quota, int) and isinstance(burst, int) and 0 < quota < burst:
        errors.append(f"linux.resources.cpu.burst: {burst} is larger than quota {quota}")
    for key in ("cpus", "mems"):
        errors += _cpu_list(cpu.get(key), f"linux.resources.cpu.{key}")
    memory = _dict(resources.get("memory"))
    limit, swap = memory.get("limit"), memory.get("swap")
    if isinstance(limit, int) and isinstance(swap, int) and 0 < swap < limit:
        errors.append(f"linux.resources.memory.swap: memory+swap {swap} is below limit {limit}")
    return errors


def _errno_error(action: object, where: str) -> list[str]:
    if action in ERRNO_ACTIONS:
        return []
    return [f"{where}: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE return an errno, not {action}"]


def _check_seccomp(config: JSON, bundle: str) -> list[str]:
    seccomp, errors = _dict(_dict(config.get("linux")).get("seccomp")), []
    if "defaultErrnoRet" in seccomp:
        errors += _errno_error(seccomp.get("defaultAction"), "linux.seccomp.defaultErrnoRet")
    for i, rule in enumerate(_list(seccomp.get("syscalls"))):
        rule = _dict(rule)
        if "errnoRet" in rule:
            errors += _errno_error(rule.get("action"), f"linux.seccomp.syscalls[{i}].errnoRet")
    return errors


def _check_memory_policy(config: JSON, bundle: str) -> list[str]:
    policy = _dict(_dict(config.get("linux")).get("memoryPolicy"))
    mode, nodes = policy.get("mode"), _str(policy.get("nodes")) or ""
    where = "linux.memoryPolicy.nodes"
    if mode in MPOL_NO_NODES and nodes:
        return [f"{where}: {mode} takes no nodes"]
    if mode in MPOL_NEED_NODES and not nodes:
        return [f"{where}: {mode} needs at least one node"]
    return _cpu_list(nodes, where)


# The table: every rule `validate` reports and `create` refuses (the first error), in this order.
RULES: tuple[Rule, ...] = (  # noqa: F821 (Rule: for mypy only)
    _check_root, _check_process, _check_mounts, _check_hooks, _check_linux_paths,
    _check_namespaces, _check_userns, _check_uts, _check_sysctl, _check_time,
    _check_mount_ns, _check_net_devices, _check_resources, _check_seccomp, _check_memory_policy,
)


def errors(config: JSON, bundle: str) -> list[str]:
    """Every rule broken by `config` (whose bundle is `bundle`), one `field: why` line each; safe
    on a config the schema rejected."""
    out: list[str] = []
    for rule in RULES:
        out += rule(config, bundle)
    return out



