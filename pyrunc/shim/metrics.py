"""A container's cgroup statistics (pyrunc's runc-shaped Stats) as io.containerd.cgroups.v1.Metrics,
what `ctr task metrics` and the CRI plugin decode from the Stats call."""

from __future__ import annotations

from pyrunc._typing import MYPY
from pyrunc.shim import messages as m

if MYPY:
    from pyrunc.linux.cgroups.stats import Stats
    from pyrunc.shim.wire import Msg
    from pyrunc.spec.types import JSONObject


def _int(d: JSONObject, key: str) -> int:
    v = d.get(key)
    return v if isinstance(v, int) else 0


def _obj(d: JSONObject, key: str) -> JSONObject:
    v = d.get(key)
    return v if isinstance(v, dict) else {}


def _entry(d: JSONObject) -> Msg:
    return {k: _int(d, k) for k in ("limit", "usage", "max", "failcnt")}


def _memory(mem: JSONObject) -> Msg:
    raw = _obj(mem, "raw")
    out: Msg = {}
    names = [(1, n) for n in m.MEMORY_STAT_KEYS] + [(18, n) for n in m.MEMORY_STAT_KEYS[:15]]
    fields = [f for f in m.MEMORY_STAT if f[2] == "u"]
    for (base, key), field in zip(names, fields, strict=True):
        out[field[1]] = _int(raw, key if base == 1 else "total_" + key)
    out["cache"] = _int(mem, "cache") or out.get("cache", 0)
    for key, name in (("usage", "usage"), ("swap", "swap"), ("kernel", "kernel"),
                      ("kernelTCP", "kernel_tcp")):
        out[name] = _entry(_obj(mem, key))
    return out


def _cpu(cpu: JSONObject) -> Msg:
    usage, thr = _obj(cpu, "usage"), _obj(cpu, "throttling")
    per_cpu = usage.get("percpu")
    return {"usage": {"total": _int(usage, "total"), "kernel": _int(usage, "kernel"),
                      "user": _int(usage, "user"),
                      "per_cpu": [x for x in per_cpu if isinstance(x, int)]
                      if isinstance(per_cpu, list) else []},
            "throttling": {k: _int(thr, k) for k in ("periods", "throttled_periods",
                                                     "throttled_time")}}


def _blkio(blkio: JSONObject) -> Msg:
    out: Msg = {}
    for key, name in (("ioServiceBytesRecursive", "io_service_bytes_recursive"),
                      ("ioServicedRecursive", "io_serviced_recursive")):
        entries = blkio.get(key)
        if isinstance(entries, list):
            out[name] = [{"op": str(e.get("op", "")), "major": _int(e, "major"),
                          "minor": _int(e, "minor"), "value": _int(e, "value")}
                         for e in entries if isinstance(e, dict)]
    return out


def from_stats(stats: Stats, oom_kills: int) -> Msg:
    hugetlb: list[Msg] = [{"pagesize": size, "usage": _int(e, "usage"), "max": _int(e, "max"),
                           "failcnt": _int(e, "failcnt")}
                          for size, e in sorted(stats.get("hugetlb", {}).items())]
    pids = stats.get("pids", {})
    return {"hugetlb": hugetlb,
            "pids": {"current": _int(pids, "current"), "limit": _int(pids, "limit")},
            "cpu": _cpu(stats.get("cpu", {})), "memory": _memory(stats.get("memory", {})),
            "blkio": _blkio(stats.get("blkio", {})),
            "memory_oom_control": {"oom_kill": oom_kills}}
