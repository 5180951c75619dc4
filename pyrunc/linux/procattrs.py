"""Per-process kernel attributes: process.scheduler, process.ioPriority, process.execCPUAffinity,
linux.personality and linux.memoryPolicy.

`check` (the parent, during create) validates with runc's rules and names the field; `apply` (the
init, before execve) makes the syscalls. Scheduling and I/O priority need CAP_SYS_NICE for raised
priorities, so the init calls `apply` before it drops capabilities. execCPUAffinity is not for the
container's init (runtime-spec): only `exec` passes `exec_process=True`.
"""

from __future__ import annotations

from pyrunc._typing import MYPY, Callable
from pyrunc.errors import SpecError
from pyrunc.sys import calls
from pyrunc.sys import oslite as os

if MYPY:
    from collections.abc import Mapping
    from typing import TypeVar

    from pyrunc.spec.types import IOPriority, Linux, MemoryPolicy, Personality, Process, Scheduler

    T = TypeVar("T")

SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
              "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_STATIC_NODES": 1 << 15}
_MPOL_NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
_MPOL_NEED_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                    "MPOL_PREFERRED_MANY")
_IOPRIO_CLASS_SHIFT = 13
_MAX_CPUS = 1 << 16


def parse_list(text: str, where: str) -> set[int]:
    """"0-3,7" -> {0, 1, 2, 3, 7}: the kernel's list format for CPUs and memory nodes."""
    out: set[int] = set()
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise SpecError(f"{where}: invalid list {text!r}")
        first, last = int(lo), int(hi) if dash else int(lo)
        if first > last or last >= _MAX_CPUS:
            raise SpecError(f"{where}: invalid range {part!r} in {text!r}")
        out.update(range(first, last + 1))
    return out


def _int(value: object, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise SpecError(f"{where}: must be an integer in [{lo}, {hi}], not {value!r}")
    return value


def _names(values: object, table: dict[str, int], where: str) -> int:
    if values is None:
        return 0
    if not isinstance(values, list):
        raise SpecError(f"{where}: must be an array of strings")
    bits = 0
    for i, v in enumerate(values):
        if v not in table:
            raise SpecError(f"{where}[{i}]: unknown value {v!r}")
        bits |= table[v]
    return bits


# --- checks ---------------------------------------------------------------------------------------
def _check_scheduler(s: Mapping[str, object]) -> None:
    w = "process.scheduler"
    policy = s.get("policy")
    if policy not in SCHED_POLICIES:
        raise SpecError(f"{w}.policy: unknown policy {policy!r}")
    _int(s.get("nice", 0), w + ".nice", -20, 19)
    prio = _int(s.get("priority", 0), w + ".priority", -(2**31), 2**31 - 1)
    if prio and policy not in ("SCHED_FIFO", "SCHED_RR"):
        raise SpecError(f"{w}.priority: can only be specified for SCHED_FIFO or SCHED_RR")
    for key in ("runtime", "deadline", "period"):
        v = _int(s.get(key, 0), f"{w}.{key}", 0, 2**64 - 1)
        if v and policy != "SCHED_DEADLINE":
            raise SpecError(f"{w}.{key}: can only be specified for SCHED_DEADLINE")
    _names(s.get("flags"), SCHED_FLAGS, w + ".flags")


def _check_io_priority(io: Mapping[str, object]) -> None:
    if io.get("class") not in IOPRIO_CLASSES:
        raise SpecError(f"process.ioPriority.class: unknown class {io.get('class')!r}")
    # IOPRIO_CLASS_IDLE has no levels: its priority may be left out (runc reads it as 0)
    default = 0 if io.get("class") == "IOPRIO_CLASS_IDLE" else None
    _int(io.get("priority", default), "process.ioPriority.priority", 0, 7)


def _check_memory_policy(mp: Mapping[str, object]) -> None:
    w = "linux.memoryPolicy"
    mode = mp.get("mode")
    if mode not in MPOL_MODES:
        raise SpecError(f"{w}.mode: unknown mode {mode!r}")
    nodes = mp.get("nodes") or ""
    if not isinstance(nodes, str):
        raise SpecError(f"{w}.nodes: must be a string")
    if nodes:
        parse_list(nodes, w + ".nodes")
    if nodes and mode in _MPOL_NO_NODES:
        raise SpecError(f"{w}.nodes: {mode} takes no nodes")
    if not nodes and mode in _MPOL_NEED_NODES:
        raise SpecError(f"{w}.nodes: {mode} needs at least one node")
    _names(mp.get("flags"), MPOL_FLAGS, w + ".flags")


def _check_personality(p: Mapping[str, object]) -> None:
    if p.get("domain") not in PERSONALITY_DOMAINS:
        raise SpecError(f"linux.personality.domain: unknown domain {p.get('domain')!r}")
    flags = p.get("flags")
    if flags is not None and not (isinstance(flags, list)
                                  and all(isinstance(f, str) for f in flags)):
        raise SpecError("linux.personality.flags: must be an array of strings")


def _obj(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise SpecError(f"{where}: must be an object")
    return value


def check(process: Process, linux_cfg: Linux) -> None:
    if process.get("scheduler") is not None:
        _check_scheduler(_obj(process["scheduler"], "process.scheduler"))
    if process.get("ioPriority") is not None:
        _check_io_priority(_obj(process["ioPriority"], "process.ioPriority"))
    aff = process.get("execCPUAffinity")
    if aff is not None:
        _obj(aff, "process.execCPUAffinity")
        for key, value in (("initial", aff.get("initial")), ("final", aff.get("final"))):
            if value:
                parse_list(value, f"process.execCPUAffinity.{key}")
    if linux_cfg.get("personality") is not None:
        _check_personality(_obj(linux_cfg["personality"], "linux.personality"))
    if linux_cfg.get("memoryPolicy") is not None:
        _check_memory_policy(_obj(linux_cfg["memoryPolicy"], "linux.memoryPolicy"))


# --- the syscalls (declared in pyrunc.sys.calls) ---------------------------------------------------
def sched_attr(s: Scheduler) -> calls.SchedAttr:
    return calls.sched_attr(SCHED_POLICIES[s["policy"]],
                            _names(s.get("flags"), SCHED_FLAGS, "process.scheduler.flags"),
                            s.get("nice", 0), s.get("priority", 0), s.get("runtime", 0),
                            s.get("deadline", 0), s.get("period", 0))


_EPERM = 1


def _set_scheduler(s: Scheduler) -> None:
    try:
        calls.sched_setattr(sched_attr(s))
    except OSError as exc:
        if exc.errno != _EPERM or s["policy"] not in ("SCHED_FIFO", "SCHED_RR"):
            raise
        # The usual cause on cgroup v1 with real-time group scheduling: a cpu cgroup with no
        # real-time runtime (a new cgroup has none) refuses real-time tasks.
        raise OSError(exc.errno, f"{exc.strerror} (a real-time policy needs CAP_SYS_NICE and, "
                      "with cgroup v1 real-time group scheduling, a real-time budget in the "
                      "container's cpu cgroup: linux.resources.cpu.realtimeRuntime)") from exc


def _set_io_priority(io: IOPriority) -> None:
    calls.ioprio_set(IOPRIO_CLASSES[io["class"]] << _IOPRIO_CLASS_SHIFT | io.get("priority", 0))


def _set_memory_policy(mp: MemoryPolicy) -> None:
    mode = MPOL_MODES[mp["mode"]] | _names(mp.get("flags"), MPOL_FLAGS, "")
    nodes = mp.get("nodes") or ""
    calls.set_mempolicy(mode, parse_list(nodes, "linux.memoryPolicy.nodes") if nodes else None)


def _set_personality(p: Personality) -> None:
    calls.personality(PERSONALITY_DOMAINS[p["domain"]])


def _set_affinity(value: str | None, where: str) -> None:
    if value:
        os.sched_setaffinity(0, parse_list(value, where))


def _step(where: str, value: T | None,
          apply: Callable[[T], None]) -> list[tuple[str, Callable[[], None]]]:
    if not value:
        return []
    given = value
    return [(where, lambda: apply(given))]


def _steps(process: Process, linux_cfg: Linux,
           exec_process: bool) -> list[tuple[str, Callable[[], None]]]:
    """(field, the call that applies it) of each attribute set, in order."""
    final = (process.get("execCPUAffinity") or {}).get("final") if exec_process else None
    where = "process.execCPUAffinity.final"
    return (_step("linux.personality", linux_cfg.get("personality"), _set_personality)
            + _step("process.scheduler", process.get("scheduler"), _set_scheduler)
            + _step("process.ioPriority", process.get("ioPriority"), _set_io_priority)
            + _step("linux.memoryPolicy", linux_cfg.get("memoryPolicy"), _set_memory_policy)
            + _step(where, final, lambda value: _set_affinity(value, where)))


def apply(process: Process, linux_cfg: Linux, exec_process: bool = False) -> None:
    """In the init (or exec's process) before execve, before capabilities are dropped."""
    for field, call in _steps(process, linux_cfg, exec_process):
        try:
            call()
        except OSError as exc:
            raise SpecError(f"{field}: {exc.strerror}") from exc


def initial_affinity(process: Process, exec_process: bool = False) -> None:
    """execCPUAffinity.initial, right after fork, before joining the container's cgroup."""
    initial = (process.get("execCPUAffinity") or {}).get("initial")
    if exec_process and initial:
        try:
            _set_affinity(initial, "process.execCPUAffinity.initial")
        except OSError as exc:
            raise SpecError(f"process.execCPUAffinity.initial: {exc.strerror}") from exc
