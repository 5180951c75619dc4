"""Seccomp: `linux.seccomp` compiled to a rule list, built into a libseccomp filter, then loaded.

Three stages, so that each runs where it can:

- `validate` (the parent, during `create`): `compile_profile` turns the JSON into a `Profile` of
  kernel action values and comparison tuples, with errors naming the field. No bindings needed.
- `prepare` (the init, before pivot_root: the bindings' .so lives on the host): builds the
  libseccomp filter from the profile, not loaded yet.
- `load` (the init, as late as privileges allow: see process.Setup.seccomp_point), or `export` as raw BPF for
  the start barrier (pyrunc.container.barrier), which loads it after `start` and right before execve.

With SCMP_ACT_NOTIFY, `load` returns the listener fd; the parent hands it to the agent at
`listenerPath` with `send_to_listener`, as the runtime-spec's "container process state".

Unknown syscall names are skipped, as runc does: profiles list syscalls of newer kernels and other
architectures. Architectures this libseccomp (2.5.4) does not know are skipped too: the filter then
kills their syscalls (SCMP_FLTATR_ACT_BADARCH), which is the safe side.
"""

from __future__ import annotations

from pyrunc import OCI_VERSION
from pyrunc._typing import MYPY
from pyrunc.errors import SeccompError
from pyrunc.records import dataclass

if MYPY:
    from collections.abc import Mapping
    from typing import Protocol

    from pyrunc.spec.types import OCIState, Seccomp

    # What pyrunc uses of libseccomp's Python bindings, which ship no type information.
    class SyscallFilter(Protocol):
        def set_attr(self, attr: int, value: int) -> None: ...
        def exist_arch(self, arch: int) -> bool: ...
        def add_arch(self, arch: int) -> None: ...
        def add_rule(self, action: int, syscall: int, *args: object) -> None: ...
        def export_bpf(self, file: _Fd) -> None: ...
        def load(self) -> None: ...
        def get_notify_fd(self) -> int: ...

    class Attrs(Protocol):  # and the others, looked up by name (CTL_TSYNC...)
        CTL_NNP: int

    class Arches(Protocol):  # and the others, looked up by name (X86_64...)
        NATIVE: int

    class Bindings(Protocol):
        Attr: Attrs
        Arch: Arches

        def SyscallFilter(self, defaction: int) -> SyscallFilter: ...
        def Arg(self, arg: int, op: int, datum_a: int, datum_b: int) -> object: ...
        def resolve_syscall(self, arch: int, syscall: str) -> int: ...
        def get_api(self) -> int: ...

ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": 0x00000000,  # KILL_THREAD, as runc maps it
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
_WITH_DATA = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
_EPERM = 1

OPS: dict[str, int] = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
                       "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}

ARCHES = ("X86", "X86_64", "X32", "ARM", "AARCH64", "MIPS", "MIPS64", "MIPS64N32", "MIPSEL",
          "MIPSEL64", "MIPSEL64N32", "PPC", "PPC64", "PPC64LE", "S390", "S390X", "PARISC",
          "PARISC64", "RISCV64", "LOONGARCH64", "M68K", "SH", "SHEB")

# The seccomp(2) flag -> the libseccomp filter attribute that sets it (None: newer than 2.5.4).
# Their values, for a filter loaded by seccomp(2) itself (the barrier): TSYNC 1, LOG 2, SPEC_ALLOW 4.
_FLAG_BITS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
              "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
FLAGS: dict[str, str | None] = {
    "SECCOMP_FILTER_FLAG_TSYNC": "CTL_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG": "CTL_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": "CTL_SSB",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": None,
}

_MISSING = ("seccomp requested but libseccomp's Python bindings (python3-seccomp) are not "
            "installed")

Arg = tuple[int, int, int, int]  # (index, op, value, valueTwo)


@dataclass(frozen=True)
class Rule:
    names: tuple[str, ...]
    action: int
    args: tuple[Arg, ...] = ()


@dataclass(frozen=True)
class Profile:
    default_action: int
    architectures: tuple[str, ...]
    flags: tuple[str, ...]
    rules: tuple[Rule, ...]

    @property
    def notify(self) -> bool:
        return any(r.action == ACTIONS["SCMP_ACT_NOTIFY"] for r in self.rules)


@dataclass
class Filter:
    ctx: SyscallFilter
    notify: bool
    flags: int = 0  # the seccomp(2) flags of `export`



# --- validation: pure ------------------------------------------------------------------------------
def _uint(value: object, where: str, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise SeccompError(f"{where}: must be an unsigned {bits}-bit integer, not {value!r}")
    return value


def _action(name: object, errno_ret: object, where: str) -> int:
    if name not in ACTIONS:
        raise SeccompError(f"{where}: unknown action {name!r}")
    assert isinstance(name, str)
    if errno_ret is not None and name not in _WITH_DATA:
        raise SeccompError(f"{where}: {name} does not take an errno return code")
    data = _EPERM if errno_ret is None else _uint(errno_ret, where + " errnoRet", 16)
    return ACTIONS[name] | (data if name in _WITH_DATA else 0)


def _arg(a: object, where: str) -> Arg:
    if not isinstance(a, dict):
        raise SeccompError(f"{where}: must be an object")
    index = _uint(a.get("index"), where + ".index", 64)
    if index > 5:
        raise SeccompError(f"{where}.index: syscalls have 6 arguments (0-5), not {index}")
    op = a.get("op")
    if op not in OPS:
        raise SeccompError(f"{where}.op: unknown operator {op!r}")
    value = _uint(a.get("value"), where + ".value", 64)
    two = _uint(a.get("valueTwo", 0), where + ".valueTwo", 64)
    return index, OPS[op], value, two


def _rule(call: object, where: str) -> Rule:
    if not isinstance(call, dict):
        raise SeccompError(f"{where}: must be an object")
    names = call.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise SeccompError(f"{where}.names: must be a non-empty array of syscall names")
    action = _action(call.get("action"), call.get("errnoRet"), where + ".action")
    if action == ACTIONS["SCMP_ACT_NOTIFY"] and "write" in names:
        # The init reports to its parent with write(2) after loading the filter.
        raise SeccompError(f"{where}.action: SCMP_ACT_NOTIFY cannot be used for write")
    args = call.get("args") or []
    if not isinstance(args, list):
        raise SeccompError(f"{where}.args: must be an array")
    parsed = tuple(_arg(a, f"{where}.args[{i}]") for i, a in enumerate(args))
    return Rule(tuple(names), action, parsed)


def _strings(value: object, where: str, allowed: set[str] | tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SeccompError(f"{where}: must be an array of strings")
    for i, v in enumerate(value):
        if v not in allowed:
            raise SeccompError(f"{where}[{i}]: unknown value {v!r}")
    return tuple(value)


def compile_profile(sc: Mapping[str, object]) -> Profile:
    """`linux.seccomp` -> Profile; raises SeccompError naming the field."""
    w = "linux.seccomp"
    if not isinstance(sc, dict):
        raise SeccompError(f"{w}: must be an object")
    default = _action(sc.get("defaultAction"), sc.get("defaultErrnoRet"), w + ".defaultAction")
    if default == ACTIONS["SCMP_ACT_NOTIFY"]:
        raise SeccompError(f"{w}.defaultAction: SCMP_ACT_NOTIFY cannot be the default action")
    arches = _strings(sc.get("architectures"), w + ".architectures",
                      {"SCMP_ARCH_" + a for a in ARCHES})
    flags = _strings(sc.get("flags"), w + ".flags", tuple(FLAGS))
    calls = sc.get("syscalls") or []
    if not isinstance(calls, list):
        raise SeccompError(f"{w}.syscalls: must be an array")
    rules = tuple(_rule(c, f"{w}.syscalls[{i}]") for i, c in enumerate(calls))
    profile = Profile(default, arches, flags, rules)
    _check_listener(sc, profile, w)
    return profile


def _check_listener(sc: Mapping[str, object], profile: Profile, w: str) -> None:
    path = sc.get("listenerPath")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise SeccompError(f"{w}.listenerPath: must be an absolute path, not {path!r}")
    if sc.get("listenerMetadata") is not None and not path:
        raise SeccompError(f"{w}.listenerMetadata: set without listenerPath")
    if profile.notify and not path:
        raise SeccompError(f"{w}.listenerPath: SCMP_ACT_NOTIFY is used but no listenerPath is set")


def validate(linux_seccomp: Seccomp | None) -> None:
    if linux_seccomp is not None:
        compile_profile(linux_seccomp)


# --- the filter: needs the bindings -----------------------------------------------------------------
def _bindings() -> Bindings:
    try:
        import seccomp as libseccomp  # the official binding: its import costs ~0 ms
    except ImportError as exc:
        raise SeccompError(_MISSING) from exc
    lib: Bindings = libseccomp
    return lib


def _s32(action: int) -> int:
    """The bindings take actions as a C int: SCMP_ACT_KILL_PROCESS is -2**31 there."""
    return action - (1 << 32) if action >= 1 << 31 else action


def _add_rule(lib: Bindings, ctx: SyscallFilter, nr: int, rule: Rule) -> None:
    args = [lib.Arg(i, op, v, v2) for i, op, v, v2 in rule.args]
    indexes = [a[0] for a in rule.args]
    if len(set(indexes)) == len(indexes):
        ctx.add_rule(_s32(rule.action), nr, *args)
        return
    # libseccomp refuses two comparisons of one argument in a rule; like runc, give each its own
    # rule (an OR, not an AND).
    for a in args:
        ctx.add_rule(_s32(rule.action), nr, a)


def _build(lib: Bindings, profile: Profile) -> SyscallFilter:
    ctx = lib.SyscallFilter(_s32(profile.default_action))
    ctx.set_attr(lib.Attr.CTL_NNP, 0)  # no_new_privs is process.noNewPrivileges' business
    for name in profile.architectures:
        arch = getattr(lib.Arch, name.removeprefix("SCMP_ARCH_"), None)
        if arch is not None and not ctx.exist_arch(arch):
            ctx.add_arch(arch)
    for flag in profile.flags:
        attr = FLAGS[flag]
        if attr is None:
            raise SeccompError(f"linux.seccomp.flags: {flag} is not supported by libseccomp "
                               f"API level {lib.get_api()}")
        ctx.set_attr(getattr(lib.Attr, attr), 1)
    for rule in profile.rules:
        if rule.action == profile.default_action:
            continue  # libseccomp refuses these (EACCES); they change nothing
        for name in rule.names:
            nr = lib.resolve_syscall(lib.Arch.NATIVE, name)
            if nr != -1:  # __NR_SCMP_ERROR: unknown to this libseccomp; runc skips it too
                _add_rule(lib, ctx, nr, rule)
    return ctx


def prepare(linux_seccomp: Seccomp | None) -> Filter | None:
    """Import the bindings and build the filter (before pivot_root), without loading it."""
    if linux_seccomp is None:
        return None
    profile = compile_profile(linux_seccomp)
    lib = _bindings()
    try:
        return Filter(_build(lib, profile), profile.notify,
                      sum(_FLAG_BITS[f] for f in set(profile.flags)))
    except (RuntimeError, OSError, ValueError) as exc:
        raise SeccompError(f"building the seccomp filter: {exc}") from exc


class _Fd:
    """The bindings' export_bpf takes a file object: a memfd seen through fileno()."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


def export(f: Filter) -> tuple[int, int]:
    """The filter as raw BPF in a sealed memfd, and its seccomp(2) flags, for pyrunc.container.barrier."""
    from pyrunc.sys import linux
    from pyrunc.sys import oslite as os

    tmp = os.memfd_create("pyrunc-bpf", os.MFD_CLOEXEC)
    try:
        f.ctx.export_bpf(_Fd(tmp))
        data = os.pread(tmp, os.fstat(tmp).st_size, 0)
    except (RuntimeError, OSError, ValueError) as exc:
        raise SeccompError(f"exporting the seccomp filter: {exc}") from exc
    finally:
        os.close(tmp)
    if not data or len(data) % 8 or len(data) > 4096 * 8:
        raise SeccompError(f"exporting the seccomp filter: {len(data)} bytes of BPF")
    return linux.sealed_memfd("pyrunc-bpf", data), f.flags


def load(f: Filter) -> int | None:
    """Load the filter into the calling process; the listener fd when SCMP_ACT_NOTIFY is used."""
    try:
        f.ctx.load()
        return int(f.ctx.get_notify_fd()) if f.notify else None
    except (RuntimeError, OSError, ValueError) as exc:
        raise SeccompError(f"loading the seccomp filter: {exc}") from exc


def send_to_listener(listener_path: str, metadata: str, state: OCIState,
                     notify_fd: int) -> None:
    """Send the container process state and the seccomp fd (SCM_RIGHTS) to the agent, once."""
    import json
    import socket

    msg = {"ociVersion": state.get("ociVersion", OCI_VERSION), "fds": ["seccompFd"],
           "pid": state.get("pid"), "state": state}
    if metadata:
        msg["metadata"] = metadata
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(listener_path)
            socket.send_fds(sock, [json.dumps(msg).encode()], [notify_fd])
    except OSError as exc:
        raise SeccompError(f"sending the seccomp fd to {listener_path}: {exc}") from exc
