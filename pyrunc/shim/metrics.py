"""A container's cgroup statistics as the Any of the Stats call, what `ctr task metrics` and the
CRI plugin decode: io.containerd.cgroups.v2.Metrics when the container's cgroups are on a cgroup v2
host, else io.containerd.cgroups.v1.Metrics (hybrid hosts too).

containerd's runc shim decides the same way (cgroups.Mode() == Unified picks the v2 manager, whose
Stat() gives v2 Metrics); pyrunc's Manager recorded the host's mode in the container's state at
create. The v1 message is made from pyrunc's runc-shaped Stats (`events --stats`); the v2 one from
pyrunc.linux.cgroups.stats.read_v2, the same reading of the cgroup2 files that `events --stats`
shapes for runc, here shaped as containerd/cgroups' v2 Manager.Stat() does: "max" limits are
2**64-1 (rdma's 2**32-1), absent files read as 0, memory_events is sent only when memory.events has
lines. Unlike Stat(), cpu.stat and memory.stat are read whether or not cgroup.controllers lists cpu
and memory: cpu.stat's usage is a core file of every cgroup2 directory, worth reporting.
"""

from __future__ import annotations

from pyrunc._typing import MYPY
from pyrunc.shim import messages as m
from pyrunc.shim import wire

if MYPY:
    from pyrunc.linux.cgroups.manager import Manager
    from pyrunc.linux.cgroups.stats import Stats, V2Files
    from pyrunc.shim.wire import Msg
    from pyrunc.spec.types import JSONObject

_U32_MAX = (1 << 32) - 1


def stats_any(cg: Manager) -> Msg:
    """StatsResponse.stats (a google.protobuf.Any) for the container whose cgroups `cg` manages."""
    if cg.mode == "v2":
        from pyrunc.linux.cgroups import stats

        v2 = from_v2(stats.read_v2(cg.paths().get("")))
        return {"type_url": m.METRICS_V2_TYPE_URL, "value": wire.encode(m.METRICS_V2, v2)}
    v1 = from_stats(cg.stats(), cg.oom_count())
    return {"type_url": m.METRICS_TYPE_URL, "value": wire.encode(m.METRICS, v1)}


def _rdma(entries: list[tuple[str, dict[str, int]]]) -> list[Msg]:
    return [{"device": dev, "hca_handles": min(kv.get("hca_handle", 0), _U32_MAX),
             "hca_objects": min(kv.get("hca_object", 0), _U32_MAX)} for dev, kv in entries]


def from_v2(files: V2Files) -> Msg:
    """io.containerd.cgroups.v2.Metrics of a cgroup2 directory's files (see the module's doc)."""
    one, cpu, mem, events = (files["single"], files["cpu_stat"], files["memory_stat"],
                             files["memory_events"])
    memory: Msg = {name: mem.get(name, 0) for name in m.MEMORY_STAT_V2_KEYS}
    memory.update(usage=one["memory.current"], usage_limit=one["memory.max"],
                  swap_usage=one["memory.swap.current"], swap_limit=one["memory.swap.max"])
    out: Msg = {
        "pids": {"current": one["pids.current"], "limit": one["pids.max"]},
        "cpu": {f[1]: cpu.get(f[1], 0) for f in m.CPU_STAT_V2},
        "memory": memory,
        "rdma": {"current": _rdma(files["rdma_current"]), "limit": _rdma(files["rdma_max"])},
        "io": {"usage": [{"major": major, "minor": minor,
                          **{k: kv.get(k, 0) for k in ("rbytes", "wbytes", "rios", "wios")}}
                         for major, minor, kv in files["io_stat"]]},
        "hugetlb": [{"current": e["current"], "max": e["max"], "pagesize": size}
                    for size, e in files["hugetlb"].items()],
    }
    if events:
        out["memory_events"] = {f[1]: events.get(f[1], 0) for f in m.MEMORY_EVENTS_V2}
    return out


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
