"""Read a container's cgroup statistics, shaped like the `data` of runc's `events --stats`.

Keys and omissions follow runc's types/events.go (`omitempty` fields are left out when zero).
"""

from __future__ import annotations

from pyrunc._typing import MYPY
from pyrunc.sys import oslite as os

if MYPY:
    from typing import TypedDict

    from pyrunc.spec.types import JSONObject

    class Stats(TypedDict):
        """runc's types.Stats; each group's keys vary (omitempty), so they stay JSON objects."""

        cpu: JSONObject
        memory: JSONObject
        pids: JSONObject
        blkio: JSONObject
        hugetlb: dict[str, JSONObject]

_NS_PER_TICK = 1_000_000_000 // (os.sysconf("SC_CLK_TCK") or 100)
_U64_MAX = (1 << 64) - 1


def _read(base: str | None, name: str) -> str | None:
    if base is None:
        return None
    try:
        with open(os.path.join(base, name)) as f:
            return f.read()
    except OSError:
        return None


def _num(text: str | None) -> int:
    if not text:
        return 0
    text = text.strip()
    if text == "max":
        return _U64_MAX
    try:
        return int(text)
    except ValueError:
        return 0


def _kv(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = _num(parts[1])
    return out


def _omit(d: JSONObject, *keys: str) -> JSONObject:
    return {k: v for k, v in d.items() if k not in keys or v}


def _cpu_v1(dirs: dict[str, str]) -> JSONObject:
    acct = dirs.get("cpuacct")
    times = _kv(_read(acct, "cpuacct.stat"))
    percpu = [int(x) for x in (_read(acct, "cpuacct.usage_percpu") or "").split()]
    usage = _omit({"total": _num(_read(acct, "cpuacct.usage")), "percpu": percpu,
                   "kernel": times.get("system", 0) * _NS_PER_TICK,
                   "user": times.get("user", 0) * _NS_PER_TICK}, "total", "percpu")
    thr = _kv(_read(dirs.get("cpu"), "cpu.stat"))
    throttling = _omit({"periods": thr.get("nr_periods", 0),
                        "throttled_periods": thr.get("nr_throttled", 0),
                        "throttled_time": thr.get("throttled_time", 0)},
                       "periods", "throttled_periods", "throttled_time")
    return {"usage": usage, "throttling": throttling}


def _mem_entry(base: str | None, prefix: str) -> JSONObject:
    return _omit({"limit": _num(_read(base, f"{prefix}.limit_in_bytes")),
                  "usage": _num(_read(base, f"{prefix}.usage_in_bytes")),
                  "max": _num(_read(base, f"{prefix}.max_usage_in_bytes")),
                  "failcnt": _num(_read(base, f"{prefix}.failcnt"))}, "usage", "max")


def _memory_v1(dirs: dict[str, str]) -> JSONObject:
    base = dirs.get("memory")
    raw = _kv(_read(base, "memory.stat"))
    return _omit({"cache": raw.get("total_cache", raw.get("cache", 0)),
                  "usage": _mem_entry(base, "memory"), "swap": _mem_entry(base, "memory.memsw"),
                  "kernel": _mem_entry(base, "memory.kmem"),
                  "kernelTCP": _mem_entry(base, "memory.kmem.tcp"), "raw": raw}, "cache", "raw")


def _pids(base: str | None) -> JSONObject:
    limit = _num(_read(base, "pids.max"))
    return _omit({"current": _num(_read(base, "pids.current")),
                  "limit": 0 if limit == _U64_MAX else limit}, "current", "limit")


def _blkio_v1(base: str | None) -> JSONObject:
    out: JSONObject = {}
    for key, names in (("ioServiceBytesRecursive", ("blkio.io_service_bytes_recursive",
                                                    "blkio.bfq.io_service_bytes_recursive",
                                                    "blkio.throttle.io_service_bytes_recursive")),
                       ("ioServicedRecursive", ("blkio.io_serviced_recursive",
                                                "blkio.bfq.io_serviced_recursive",
                                                "blkio.throttle.io_serviced_recursive"))):
        text = next((t for t in (_read(base, n) for n in names) if t is not None), None)
        entries = [_blkio_entry(line.split()) for line in (text or "").splitlines()]
        if any(entries):
            out[key] = [e for e in entries if e]
    return out


def _blkio_entry(parts: list[str]) -> JSONObject | None:
    if len(parts) != 3 or ":" not in parts[0]:
        return None
    major, minor = parts[0].split(":")
    return _omit({"major": int(major), "minor": int(minor), "op": parts[1],
                  "value": _num(parts[2])}, "major", "minor", "op", "value")


def _hugetlb(base: str | None, v2: bool) -> dict[str, JSONObject]:
    if base is None:
        return {}
    sizes = sorted({f.split(".")[1] for f in os.listdir(base)
                    if f.startswith("hugetlb.") and f.count(".") >= 2})
    out = {}
    for size in sizes:
        pre = f"hugetlb.{size}"
        entry: JSONObject
        if v2:
            entry = {"usage": _num(_read(base, f"{pre}.current")),
                     "failcnt": _kv(_read(base, f"{pre}.events")).get("max", 0)}
        else:
            entry = {"usage": _num(_read(base, f"{pre}.usage_in_bytes")),
                     "max": _num(_read(base, f"{pre}.max_usage_in_bytes")),
                     "failcnt": _num(_read(base, f"{pre}.failcnt"))}
        out[size] = _omit(entry, "usage", "max")
    return out


def _cpu_v2(base: str | None) -> JSONObject:
    st = _kv(_read(base, "cpu.stat"))
    usage = _omit({"total": st.get("usage_usec", 0) * 1000, "kernel": st.get("system_usec", 0) * 1000,
                   "user": st.get("user_usec", 0) * 1000}, "total")
    throttling = _omit({"periods": st.get("nr_periods", 0),
                        "throttled_periods": st.get("nr_throttled", 0),
                        "throttled_time": st.get("throttled_usec", 0) * 1000},
                       "periods", "throttled_periods", "throttled_time")
    return {"usage": usage, "throttling": throttling}


def _memory_v2(base: str | None) -> JSONObject:
    raw = _kv(_read(base, "memory.stat"))
    usage = _omit({"limit": _num(_read(base, "memory.max")),
                   "usage": _num(_read(base, "memory.current")),
                   "max": _num(_read(base, "memory.peak")),
                   "failcnt": _kv(_read(base, "memory.events")).get("max", 0)}, "usage", "max")
    swap = _omit({"limit": _num(_read(base, "memory.swap.max")),
                  "usage": _num(_read(base, "memory.swap.current")), "failcnt": 0}, "usage")
    return _omit({"cache": raw.get("file", 0), "usage": usage, "swap": swap,
                  "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0},
                  "raw": raw}, "cache", "raw")


def _io_v2(base: str | None) -> JSONObject:
    rbytes: list[JSONObject] = []
    rios: list[JSONObject] = []
    for line in (_read(base, "io.stat") or "").splitlines():
        dev, *pairs = line.split()
        major, _, minor = dev.partition(":")
        kv = _kv("\n".join(p.replace("=", " ") for p in pairs))
        for op, key, target in (("Read", "rbytes", rbytes), ("Write", "wbytes", rbytes),
                                ("Read", "rios", rios), ("Write", "wios", rios)):
            target.append(_omit({"major": int(major), "minor": int(minor), "op": op,
                                 "value": kv.get(key, 0)}, "value"))
    return _omit({"ioServiceBytesRecursive": rbytes, "ioServicedRecursive": rios},
                 "ioServiceBytesRecursive", "ioServicedRecursive")


def collect(dirs: dict[str, str], *, v2: bool) -> Stats:
    if v2:
        base = dirs.get("")
        return {"cpu": _cpu_v2(base), "memory": _memory_v2(base), "pids": _pids(base),
                "blkio": _io_v2(base), "hugetlb": _hugetlb(base, True)}
    return {"cpu": _cpu_v1(dirs), "memory": _memory_v1(dirs), "pids": _pids(dirs.get("pids")),
            "blkio": _blkio_v1(dirs.get("blkio")), "hugetlb": _hugetlb(dirs.get("hugetlb"), False)}


def oom_count(dirs: dict[str, str], *, v2: bool) -> int:
    """How many times the OOM killer struck in the cgroup."""
    if v2:
        return _kv(_read(dirs.get(""), "memory.events")).get("oom_kill", 0)
    ctl = _kv(_read(dirs.get("memory"), "memory.oom_control"))
    return ctl.get("oom_kill", 0)
