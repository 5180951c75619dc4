"""Plan: turn a LinuxResources dict into the cgroup files to write, without touching the system.

`render_v1` and `render_v2` return ordered `Entry` lists; `Manager` (in `manager.py`) writes them.
A value of 0 (or an absent key) leaves a file alone, as runc does, except `pids.limit`, where the
spec says 0 is a real limit. Conversions follow runc's libcontainer (cpu shares -> cpu.weight, blkio
weight -> io.weight, memory+swap -> memory.swap.max).
"""

from __future__ import annotations

from pyrunc._typing import MYPY
from pyrunc.errors import CgroupError, SpecError
from pyrunc.records import dataclass

if MYPY:
    from collections.abc import Mapping

    from pyrunc.spec.types import Network, Resources

PREFIX = "linux.resources"


@dataclass(frozen=True)
class Entry:
    """Write `value` to `file` in hierarchy `controller` ("" is the cgroup2 dir)."""

    controller: str
    file: str
    value: str
    field: str              # the config field it comes from, for error messages
    optional: bool = False  # skip silently when the file does not exist (hugetlb rsvd)


# ---- validation ---------------------------------------------------------------------------------

def _int(res: Mapping[str, object], group: str, key: str, lo: int | None = None,
         hi: int | None = None) -> int | None:
    sect = res.get(group) or {}
    if not isinstance(sect, dict):
        raise SpecError(f"{PREFIX}.{group}: expected an object, got {type(sect).__name__}")
    val = sect.get(key)
    if val is None:
        return None
    where = f"{PREFIX}.{group}.{key}"
    if isinstance(val, bool) or not isinstance(val, int):
        raise SpecError(f"{where}: expected an integer, got {val!r}")
    if (lo is not None and val < lo) or (hi is not None and val > hi):
        raise SpecError(f"{where}: {val} is out of range [{lo}, {hi}]")
    return val


def _section(res: Mapping[str, object], group: str) -> Mapping[str, object]:
    sect = res.get(group)
    if sect is None:
        return {}
    if not isinstance(sect, dict):
        raise SpecError(f"{PREFIX}.{group}: expected an object, got {type(sect).__name__}")
    return sect


def _cpu_list(res: Mapping[str, object], key: str) -> str | None:
    val = _section(res, "cpu").get(key)
    if val is None or val == "":
        return None
    if not isinstance(val, str) or not all(c in "0123456789,- " for c in val):
        raise SpecError(f"{PREFIX}.cpu.{key}: expected a list like '0-3,7', got {val!r}")
    return val


def _limit(val: int) -> str:
    return "max" if val == -1 else str(val)


def _dev(entry: Mapping[str, object], where: str) -> str:
    major, minor = entry.get("major"), entry.get("minor")
    if not isinstance(major, int) or not isinstance(minor, int) or major < 0 or minor < 0:
        raise SpecError(f"{where}: major and minor must be non-negative integers, got {entry!r}")
    return f"{major}:{minor}"


def _dev_list(res: Mapping[str, object], key: str) -> list[Mapping[str, object]]:
    val = _section(res, "blockIO").get(key) or []
    if not isinstance(val, list) or not all(isinstance(e, dict) for e in val):
        raise SpecError(f"{PREFIX}.blockIO.{key}: expected an array of objects")
    return val


# ---- cgroup v1 ----------------------------------------------------------------------------------

def _memory_v1(res: Resources) -> list[Entry]:
    out: list[Entry] = []
    f = f"{PREFIX}.memory"
    limit = _int(res, "memory", "limit", lo=-1)
    swap = _int(res, "memory", "swap", lo=-1)
    if limit:
        out.append(Entry("memory", "memory.limit_in_bytes", str(limit), f"{f}.limit"))
    if swap:
        out.append(Entry("memory", "memory.memsw.limit_in_bytes", str(swap), f"{f}.swap"))
    elif limit == -1:
        # runc: an unlimited memory limit without a swap value means unlimited memory+swap too.
        out.append(Entry("memory", "memory.memsw.limit_in_bytes", "-1", f"{f}.swap", True))
    reservation = _int(res, "memory", "reservation", lo=-1)
    if reservation:
        out.append(Entry("memory", "memory.soft_limit_in_bytes", str(reservation),
                         f"{f}.reservation"))
    kernel_tcp = _int(res, "memory", "kernelTCP", lo=-1)
    if kernel_tcp:  # still honoured by v1 kernels (unlike memory.kmem.limit_in_bytes), as runc
        out.append(Entry("memory", "memory.kmem.tcp.limit_in_bytes", str(kernel_tcp),
                         f"{f}.kernelTCP"))
    swappiness = _int(res, "memory", "swappiness", lo=0, hi=100)
    if swappiness is not None:
        out.append(Entry("memory", "memory.swappiness", str(swappiness), f"{f}.swappiness"))
    sect = _section(res, "memory")
    if sect.get("disableOOMKiller"):
        out.append(Entry("memory", "memory.oom_control", "1", f"{f}.disableOOMKiller"))
    if sect.get("useHierarchy") is not None:
        out.append(Entry("memory", "memory.use_hierarchy", "1" if sect["useHierarchy"] else "0",
                         f"{f}.useHierarchy"))
    return out


def _cpu_v1(res: Resources) -> list[Entry]:
    f = f"{PREFIX}.cpu"
    ints = [("shares", "cpu.shares", 0), ("period", "cpu.cfs_period_us", 0),
            ("quota", "cpu.cfs_quota_us", -1), ("burst", "cpu.cfs_burst_us", 0),
            ("realtimePeriod", "cpu.rt_period_us", 0), ("realtimeRuntime", "cpu.rt_runtime_us", -1)]
    out: list[Entry] = []
    for key, file, lo in ints:
        val = _int(res, "cpu", key, lo=lo)
        if val:
            out.append(Entry("cpu", file, str(val), f"{f}.{key}"))
    idle = _int(res, "cpu", "idle", lo=0, hi=1)
    if idle is not None:
        out.append(Entry("cpu", "cpu.idle", str(idle), f"{f}.idle"))
    return out


def _cpuset(res: Resources) -> list[Entry]:
    out = []
    for key in ("cpus", "mems"):
        val = _cpu_list(res, key)
        if val is not None:
            out.append(Entry("cpuset", f"cpuset.{key}", val, f"{PREFIX}.cpu.{key}"))
    return out


def _pids(res: Resources, controller: str) -> list[Entry]:
    limit = _int(res, "pids", "limit", lo=-1)
    if limit is None:
        return []
    return [Entry(controller, "pids.max", _limit(limit), f"{PREFIX}.pids.limit")]


def _blkio_v1(res: Resources, bfq: bool) -> list[Entry]:
    f = f"{PREFIX}.blockIO"
    weight_file = "blkio.bfq.weight" if bfq else "blkio.weight"
    out: list[Entry] = []
    weight = _int(res, "blockIO", "weight", lo=0, hi=1000)
    if weight:
        out.append(Entry("blkio", weight_file, str(weight), f"{f}.weight"))
    leaf = _int(res, "blockIO", "leafWeight", lo=0, hi=1000)
    if leaf:
        out.append(Entry("blkio", "blkio.leaf_weight", str(leaf), f"{f}.leafWeight"))
    for i, dev in enumerate(_dev_list(res, "weightDevice")):
        where = f"{f}.weightDevice[{i}]"
        if dev.get("weight"):
            out.append(Entry("blkio", weight_file + "_device",
                             f"{_dev(dev, where)} {dev['weight']}", where))
        if dev.get("leafWeight"):
            out.append(Entry("blkio", "blkio.leaf_weight_device",
                             f"{_dev(dev, where)} {dev['leafWeight']}", where))
    for key, file in _THROTTLE_V1.items():
        for i, dev in enumerate(_dev_list(res, key)):
            where = f"{f}.{key}[{i}]"
            out.append(Entry("blkio", file, f"{_dev(dev, where)} {_rate(dev, where)}", where))
    return out


_THROTTLE_V1 = {
    "throttleReadBpsDevice": "blkio.throttle.read_bps_device",
    "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
    "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
    "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device",
}


def _rate(dev: Mapping[str, object], where: str) -> int:
    rate = dev.get("rate")
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 0:
        raise SpecError(f"{where}.rate: expected a non-negative integer, got {rate!r}")
    return rate


def _hugetlb(res: Resources, v2: bool) -> list[Entry]:
    limits = res.get("hugepageLimits") or []
    if not isinstance(limits, list):
        raise SpecError(f"{PREFIX}.hugepageLimits: expected an array")
    ctrl, suffix, rsvd = ("", "max", "rsvd.max") if v2 else (
        "hugetlb", "limit_in_bytes", "rsvd.limit_in_bytes")
    out: list[Entry] = []
    for i, lim in enumerate(limits):
        where = f"{PREFIX}.hugepageLimits[{i}]"
        size, val = lim.get("pageSize"), lim.get("limit")
        if not isinstance(size, str) or not size.endswith("B") or not size[:-2].isdigit():
            raise SpecError(f"{where}.pageSize: expected a size like '2MB', got {size!r}")
        if isinstance(val, bool) or not isinstance(val, int) or val < 0:
            raise SpecError(f"{where}.limit: expected a non-negative integer, got {val!r}")
        out.append(Entry(ctrl, f"hugetlb.{size}.{suffix}", str(val), where))
        out.append(Entry(ctrl, f"hugetlb.{size}.{rsvd}", str(val), where, optional=True))
    return out


def _network(res: Resources) -> list[Entry]:
    _section(res, "network")  # absent or an object
    net: Network = res.get("network") or {}
    out: list[Entry] = []
    classid = _int(res, "network", "classID", lo=0)
    if classid:
        out.append(Entry("net_cls", "net_cls.classid", str(classid), f"{PREFIX}.network.classID"))
    for i, prio in enumerate(net.get("priorities") or []):
        where = f"{PREFIX}.network.priorities[{i}]"
        if not isinstance(prio.get("name"), str) or not isinstance(prio.get("priority"), int):
            raise SpecError(f"{where}: expected {{name: string, priority: integer}}")
        out.append(Entry("net_prio", "net_prio.ifpriomap", f"{prio['name']} {prio['priority']}",
                         where))
    return out


def _rdma(res: Resources, controller: str) -> list[Entry]:
    rdma = res.get("rdma") or {}
    out: list[Entry] = []
    for dev, rdma_limits in sorted(rdma.items()):
        where = f"{PREFIX}.rdma.{dev}"
        lim: Mapping[str, object] = rdma_limits
        parts = [f"{name}={lim[key]}" for key, name in
                 (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")) if key in lim]
        if not parts:
            raise SpecError(f"{where}: set hcaHandles or hcaObjects")
        out.append(Entry(controller, "rdma.max", f"{dev} {' '.join(parts)}", where))
    return out


def _warn_kernel_memory(res: Resources, v2: bool) -> list[str]:
    """memory.kmem.limit_in_bytes is a no-op since Linux 5.16 (removed in 6.x); the TCP limit
    still works on v1 but has no cgroup2 file."""
    sect = _section(res, "memory")
    return [f"{PREFIX}.memory.{key} is not supported by the kernel any more and is ignored"
            for key in (("kernel", "kernelTCP") if v2 else ("kernel",)) if sect.get(key)]


# Keys of `unified` that have a cgroup v1 equivalent (value passed through).
_UNIFIED_TO_V1 = {
    "cpuset.cpus": ("cpuset", "cpuset.cpus"),
    "cpuset.mems": ("cpuset", "cpuset.mems"),
    "pids.max": ("pids", "pids.max"),
    "cpu.idle": ("cpu", "cpu.idle"),
}


def _unified_v1(res: Resources) -> list[Entry]:
    unified = res.get("unified") or {}
    out: list[Entry] = []
    for key, val in unified.items():
        where = f"{PREFIX}.unified.{key}"
        if key not in _UNIFIED_TO_V1:
            raise CgroupError(f"{where}: this host uses cgroup v1 for that controller and the key "
                              "has no v1 equivalent")
        ctrl, file = _UNIFIED_TO_V1[key]
        out.append(Entry(ctrl, file, str(val), where))
    return out


def render_v1(res: Resources | None, *, bfq: bool = False) -> list[Entry]:
    """The v1 files for `res`, in the order to write them (devices are handled in devices.py)."""
    res = res or {}
    return [*_cpuset(res), *_memory_v1(res), *_cpu_v1(res), *_pids(res, "pids"),
            *_blkio_v1(res, bfq), *_hugetlb(res, v2=False), *_network(res), *_rdma(res, "rdma"),
            *_unified_v1(res)]


# ---- cgroup v2 ----------------------------------------------------------------------------------

def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000], runc's ConvertCPUSharesToCgroupV2Value."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000], runc's ConvertBlkIOToIOWeightValue."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap: int, limit: int) -> int:
    """memory+swap (v1 semantics of the spec) -> memory.swap.max, as runc converts it."""
    if limit == -1 and swap == 0:
        return -1
    if swap in (-1, 0):
        return swap
    if limit in (0, -1):
        raise SpecError(f"{PREFIX}.memory.swap: cannot set a swap limit without a memory limit")
    if swap < limit:
        raise SpecError(f"{PREFIX}.memory.swap: memory+swap limit {swap} is below the memory "
                        f"limit {limit}")
    return swap - limit


def _memory_v2(res: Resources) -> list[Entry]:
    f = f"{PREFIX}.memory"
    limit = _int(res, "memory", "limit", lo=-1) or 0
    swap = swap_to_v2(_int(res, "memory", "swap", lo=-1) or 0, limit)
    out: list[Entry] = []
    if swap:
        out.append(Entry("", "memory.swap.max", _limit(swap), f"{f}.swap"))
    if limit:
        out.append(Entry("", "memory.max", _limit(limit), f"{f}.limit"))
    reservation = _int(res, "memory", "reservation", lo=-1)
    if reservation:
        out.append(Entry("", "memory.low", _limit(reservation), f"{f}.reservation"))
    _int(res, "memory", "swappiness", lo=0, hi=100)  # validated; v2 has no per-cgroup swappiness
    return out


def _cpu_max(res: Resources) -> str | None:
    quota = _int(res, "cpu", "quota", lo=-1) or 0
    period = _int(res, "cpu", "period", lo=0) or 0
    if not quota and not period:
        return None
    text = str(quota) if quota > 0 else "max"
    return f"{text} {period}" if period else text


def _cpu_v2(res: Resources) -> list[Entry]:
    f = f"{PREFIX}.cpu"
    out: list[Entry] = []
    for key in ("realtimePeriod", "realtimeRuntime"):
        if _int(res, "cpu", key, lo=-1):
            raise CgroupError(f"{f}.{key}: cgroup v2 has no realtime cpu controls")
    weight = shares_to_weight(_int(res, "cpu", "shares", lo=0) or 0)
    if weight:
        out.append(Entry("", "cpu.weight", str(weight), f"{f}.shares"))
    cpu_max = _cpu_max(res)
    if cpu_max:
        out.append(Entry("", "cpu.max", cpu_max, f"{f}.quota"))
    burst = _int(res, "cpu", "burst", lo=0)
    if burst is not None:
        out.append(Entry("", "cpu.max.burst", str(burst), f"{f}.burst"))
    idle = _int(res, "cpu", "idle", lo=0, hi=1)
    if idle is not None:
        out.append(Entry("", "cpu.idle", str(idle), f"{f}.idle"))
    return [*out, *(Entry("", e.file, e.value, e.field) for e in _cpuset(res))]


_THROTTLE_V2 = {"throttleReadBpsDevice": "rbps", "throttleWriteBpsDevice": "wbps",
                "throttleReadIOPSDevice": "riops", "throttleWriteIOPSDevice": "wiops"}


def _io_v2(res: Resources, bfq: bool) -> list[Entry]:
    f = f"{PREFIX}.blockIO"
    out: list[Entry] = []
    weight = _int(res, "blockIO", "weight", lo=0, hi=1000)
    if weight:
        value = weight if bfq else blkio_to_io_weight(weight)
        out.append(Entry("", "io.bfq.weight" if bfq else "io.weight", str(value), f"{f}.weight"))
    if _int(res, "blockIO", "leafWeight", lo=0, hi=1000):
        raise CgroupError(f"{f}.leafWeight: cgroup v2 has no leaf weights")
    for i, dev in enumerate(_dev_list(res, "weightDevice")):
        where = f"{f}.weightDevice[{i}]"
        dev_weight = dev.get("weight")
        if dev_weight:
            if not isinstance(dev_weight, int):
                raise SpecError(f"{where}.weight: expected an integer, got {dev_weight!r}")
            value = dev_weight if bfq else blkio_to_io_weight(dev_weight)
            out.append(Entry("", "io.bfq.weight" if bfq else "io.weight",
                             f"{_dev(dev, where)} {value}", where))
    for key, name in _THROTTLE_V2.items():
        for i, dev in enumerate(_dev_list(res, key)):
            where = f"{f}.{key}[{i}]"
            out.append(Entry("", "io.max", f"{_dev(dev, where)} {name}={_rate(dev, where)}", where))
    return out


def _unified_v2(res: Resources) -> list[Entry]:
    unified = res.get("unified") or {}
    if not isinstance(unified, dict):
        raise SpecError(f"{PREFIX}.unified: expected an object of strings")
    out = []
    for key, val in unified.items():
        if "/" in key or key.startswith(".") or not isinstance(val, str):
            raise SpecError(f"{PREFIX}.unified.{key}: expected a file name and a string value")
        out.append(Entry("", key, val, f"{PREFIX}.unified.{key}"))
    return out


def render_v2(res: Resources | None, *, bfq: bool = False) -> list[Entry]:
    """The cgroup2 files for `res`; `unified` comes last so it overrides converted values."""
    res = res or {}
    if _network(res):
        raise CgroupError(f"{PREFIX}.network: cgroup v2 has no net_cls/net_prio controllers")
    return [*_memory_v2(res), *_cpu_v2(res), *_pids(res, ""), *_io_v2(res, bfq),
            *_hugetlb(res, v2=True), *_rdma(res, ""), *_unified_v2(res)]


def v2_controllers(entries: list[Entry]) -> set[str]:
    """The cgroup2 controllers the entries need enabled (the prefix of each file name)."""
    return {e.file.split(".", 1)[0] for e in entries if not e.file.startswith("cgroup.")}


def warnings(res: Resources | None, *, v2: bool = False) -> list[str]:
    """Things accepted but ignored (kernel memory limits: the kernel dropped them in 6.x)."""
    return _warn_kernel_memory(res or {}, v2)
