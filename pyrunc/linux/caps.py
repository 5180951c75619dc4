"""Capabilities: `process.capabilities` turned into five bit masks, then applied in the init.

`plan` runs in the parent during `create`, so a bad name fails before anything is made. The init
calls `keep_caps` before it changes uid (PR_SET_KEEPCAPS keeps the permitted set across
setuid(2)), then `apply` after: the kernel has cleared the effective set by then, so `apply` first
raises effective to the kept permitted set to regain CAP_SETPCAP, drops the bounding set, capsets
the final effective/permitted/inheritable sets and raises the ambient ones.

Names the kernel knows but the host's bounding set lacks (root here has no CAP_SYS_RESOURCE) are
left out with a warning: the spec says runtimes SHOULD NOT fail for capabilities that cannot be
granted, and runc does the same. An unknown name (`CAP_TEST`) is an error, as runtime-tools expects.
"""

from __future__ import annotations

from pyrunc import log
from pyrunc._typing import MYPY
from pyrunc.errors import CapabilityError
from pyrunc.records import dataclass, field
from pyrunc.sys import linux

if MYPY:
    from collections.abc import Mapping

    from pyrunc.spec.types import Capabilities

CAPABILITIES: dict[str, int] = {name: bit for bit, name in enumerate((
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
))}
NAMES = {bit: name for name, bit in CAPABILITIES.items()}
SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")

_PR_CAP_AMBIENT_RAISE = 2
_PR_CAP_AMBIENT_CLEAR_ALL = 4


@dataclass(frozen=True)
class CapPlan:
    """The five sets as bit masks; `touch` is False when the spec has no `capabilities` at all
    (runc then leaves the process's capabilities alone)."""

    bounding: int = 0
    effective: int = 0
    permitted: int = 0
    inheritable: int = 0
    ambient: int = 0
    touch: bool = True
    warnings: tuple[str, ...] = field(default=())


def names(mask: int) -> list[str]:
    return [NAMES.get(bit, f"CAP_{bit}") for bit in range(64) if mask >> bit & 1]


def host_bounding() -> int:
    """The bounding set of the calling process (CapBnd in /proc/self/status)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    raise CapabilityError("no CapBnd line in /proc/self/status")


def _mask(capabilities: Mapping[str, object], key: str) -> int:
    values = capabilities.get(key) or []
    if not isinstance(values, list):
        raise CapabilityError(f"process.capabilities.{key}: must be an array of strings")
    mask = 0
    for name in values:
        bit = CAPABILITIES.get(name) if isinstance(name, str) else None
        if bit is None:
            raise CapabilityError(f"process.capabilities.{key}: unknown capability {name!r}"
                                  .replace("'", '"'))
        mask |= 1 << bit
    return mask


def plan(capabilities: Capabilities | None, available: int | None = None) -> CapPlan:
    """Validate `process.capabilities` and resolve it against `available` (the host's bounding
    set by default). Unknown names raise; unavailable ones are dropped with a warning."""
    if capabilities is None:
        return CapPlan(touch=False)
    if not isinstance(capabilities, dict):
        raise CapabilityError("process.capabilities: must be an object")
    masks = {key: _mask(capabilities, key) for key in SETS}
    avail = host_bounding() if available is None else available
    warnings = []
    unavailable = (masks["bounding"] | masks["effective"] | masks["permitted"]
                   | masks["inheritable"] | masks["ambient"]) & ~avail
    if unavailable:
        warnings.append("ignoring capabilities not in the runtime's bounding set: "
                        + ", ".join(names(unavailable)))
        log.warning(warnings[-1])
    masks = {key: m & avail for key, m in masks.items()}
    # An ambient capability must be permitted and inheritable, or PR_CAP_AMBIENT_RAISE fails;
    # runc goes on (the default `runc spec` asks for ambient caps without inheritable ones), so
    # this is only a debug line: a warning would be printed on every default container.
    lost = masks["ambient"] & ~(masks["permitted"] & masks["inheritable"])
    if lost:
        warnings.append("can't raise ambient capabilities not both permitted and inheritable: "
                        + ", ".join(names(lost)))
        log.debug(warnings[-1])
    masks["ambient"] &= ~lost
    _check_subsets(masks)
    return CapPlan(masks["bounding"], masks["effective"], masks["permitted"],
                   masks["inheritable"], masks["ambient"], warnings=tuple(warnings))


def _check_subsets(masks: dict[str, int]) -> None:
    """capset(2) refuses these with a bare EPERM in the init; name the culprits here instead."""
    for sub, sup in (("effective", "permitted"), ("inheritable", "bounding")):
        extra = masks[sub] & ~masks[sup]
        if extra:
            raise CapabilityError(f"process.capabilities.{sub}: {', '.join(names(extra))} "
                                  f"not in the {sup} set")


# --- the init's steps -----------------------------------------------------------------------------
def keep_caps() -> None:
    """Before setgroups/setgid/setuid: keep the permitted set across the uid change."""
    linux.prctl(linux.PR_SET_KEEPCAPS, 1)


def last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def _drop_bounding(keep: int, last: int) -> None:
    for bit in range(last + 1):
        if not keep >> bit & 1 and linux.prctl(linux.PR_CAPBSET_READ, bit) == 1:
            linux.prctl(linux.PR_CAPBSET_DROP, bit)


def _raise_ambient(ambient: int, last: int) -> None:
    linux.prctl(linux.PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    for bit in range(last + 1):
        if ambient >> bit & 1:
            linux.prctl(linux.PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, bit)


def apply(p: CapPlan, last: int | None = None) -> None:
    """After setuid: bounding, then effective/permitted/inheritable, then ambient."""
    try:
        if p.touch:
            _apply(p, last_cap() if last is None else last)
        linux.prctl(linux.PR_SET_KEEPCAPS, 0)
    except OSError as exc:
        raise CapabilityError(f"applying capabilities: {exc.strerror}") from exc


def raise_effective() -> None:
    """Effective := the permitted set kept across setuid(2), which cleared the effective one."""
    try:
        _eff, perm, inh = linux.capget()
        linux.capset(perm, perm, inh)
    except OSError as exc:
        raise CapabilityError(f"raising the effective capabilities: {exc.strerror}") from exc


def _apply(p: CapPlan, last: int) -> None:
    # setuid(2) away from 0 cleared the effective set; PR_CAPBSET_DROP needs CAP_SETPCAP in it.
    _eff, perm, inh = linux.capget()
    linux.capset(perm, perm, inh)
    _drop_bounding(p.bounding, last)
    linux.capset(p.effective, p.permitted, p.inheritable)
    _raise_ambient(p.ambient, last)
