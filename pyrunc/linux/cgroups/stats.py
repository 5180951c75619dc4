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

    class V2Files(TypedDict):
        """The statistics files of a cgroup2 directory, each read once and parsed; absent files
        read as empty (or 0), "max" as 2**64-1."""

        cpu_stat: dict[str, int]
        memory_stat: dict[str, int]
        memory_events: dict[str, int]
        single: dict[str, int]                      # V2_SINGLE file name -> value
        io_stat: list[tuple[int, int, dict[str, int]]]  # (major, minor, {"rbytes": ...})
        hugetlb: dict[str, dict[str, int]]          # "2MB" -> {"current", "max", "events.max"}
        rdma_current: list[tuple[str, dict[str, int]]]  # (device, {"hca_handle", "hca_object"})
        rdma_max: list[tuple[str, dict[str, int]]]

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


def _pids(current: int, limit: int) -> JSONObject:
    return _omit({"current": current, "limit": 0 if limit == _U64_MAX else limit},
                 "current", "limit")


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


def _hugetlb_sizes(base: str | None) -> list[str]:
    """The page sizes of hugetlb.<size>.* files (none if the directory is gone)."""
    try:
        names = os.listdir(base) if base is not None else []
    except OSError:
        return []
    return sorted({f.split(".")[1] for f in names if f.startswith("hugetlb.") and f.count(".") >= 2})


def _hugetlb_v1(base: str | None) -> dict[str, JSONObject]:
    out = {}
    for size in _hugetlb_sizes(base):
        pre = f"hugetlb.{size}"
        out[size] = _omit({"usage": _num(_read(base, f"{pre}.usage_in_bytes")),
                           "max": _num(_read(base, f"{pre}.max_usage_in_bytes")),
                           "failcnt": _num(_read(base, f"{pre}.failcnt"))}, "usage", "max")
    return out


def _hugetlb_v2(files: V2Files) -> dict[str, JSONObject]:
    return {size: _omit({"usage": e["current"], "failcnt": e["events.max"]}, "usage")
            for size, e in files["hugetlb"].items()}


def _cpu_v2(files: V2Files) -> JSONObject:
    st = files["cpu_stat"]
    usage = _omit({"total": st.get("usage_usec", 0) * 1000, "kernel": st.get("system_usec", 0) * 1000,
                   "user": st.get("user_usec", 0) * 1000}, "total")
    throttling = _omit({"periods": st.get("nr_periods", 0),
                        "throttled_periods": st.get("nr_throttled", 0),
                        "throttled_time": st.get("throttled_usec", 0) * 1000},
                       "periods", "throttled_periods", "throttled_time")
    return {"usage": usage, "throttling": throttling}


def _memory_v2(files: V2Files) -> JSONObject:
    raw, one = files["memory_stat"], files["single"]
    usage = _omit({"limit": one["memory.max"], "usage": one["memory.current"],
                   "max": one["memory.peak"],
                   "failcnt": files["memory_events"].get("max", 0)}, "usage", "max")
    swap = _omit({"limit": one["memory.swap.max"], "usage": one["memory.swap.current"],
                  "failcnt": 0}, "usage")
    return _omit({"cache": raw.get("file", 0), "usage": usage, "swap": swap,
                  "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0},
                  "raw": raw}, "cache", "raw")


def _io_v2(files: V2Files) -> JSONObject:
    rbytes: list[JSONObject] = []
    rios: list[JSONObject] = []
    for major, minor, kv in files["io_stat"]:
        for op, key, target in (("Read", "rbytes", rbytes), ("Write", "wbytes", rbytes),
                                ("Read", "rios", rios), ("Write", "wios", rios)):
            target.append(_omit({"major": major, "minor": minor, "op": op,
                                 "value": kv.get(key, 0)}, "value"))
    return _omit({"ioServiceBytesRecursive": rbytes, "ioServicedRecursive": rios},
                 "ioServiceBytesRecursive", "ioServicedRecursive")


# ---- cgroup v2: every file read once by read_v2, for `events --stats` (collect, runc's shape) and
# for the shim's io.containerd.cgroups.v2.Metrics (pyrunc.shim.metrics, containerd's shape) -------
V2_SINGLE = ("memory.current", "memory.max", "memory.peak", "memory.swap.current",
             "memory.swap.max", "pids.current", "pids.max")


def _pairs(fields: list[str]) -> dict[str, int]:
    """`key=value` words (io.stat, rdma.*) -> {key: value}; "max" is 2**64-1."""
    return {k: _num(v) for k, _, v in (f.partition("=") for f in fields) if v}


def _io_stat(text: str | None) -> list[tuple[int, int, dict[str, int]]]:
    out = []
    for line in (text or "").splitlines():
        dev, *fields = line.split() or [""]
        major, _, minor = dev.partition(":")
        if major.isdigit() and minor.isdigit():
            out.append((int(major), int(minor), _pairs(fields)))
    return out


def _rdma(text: str | None) -> list[tuple[str, dict[str, int]]]:
    return [(parts[0], _pairs(parts[1:])) for parts in map(str.split, (text or "").splitlines())
            if len(parts) == 3]


def read_v2(base: str | None) -> V2Files:
    """Read the statistics files of the cgroup2 directory `base`."""
    hugetlb = {size: {"current": _num(_read(base, f"hugetlb.{size}.current")),
                      "max": _num(_read(base, f"hugetlb.{size}.max")),
                      "events.max": _kv(_read(base, f"hugetlb.{size}.events")).get("max", 0)}
               for size in _hugetlb_sizes(base)}
    return {"cpu_stat": _kv(_read(base, "cpu.stat")), "memory_stat": _kv(_read(base, "memory.stat")),
            "memory_events": _kv(_read(base, "memory.events")),
            "single": {name: _num(_read(base, name)) for name in V2_SINGLE},
            "io_stat": _io_stat(_read(base, "io.stat")), "hugetlb": hugetlb,
            "rdma_current": _rdma(_read(base, "rdma.current")),
            "rdma_max": _rdma(_read(base, "rdma.max"))}


def collect(dirs: dict[str, str], *, v2: bool) -> Stats:
    if v2:
        files = read_v2(dirs.get(""))
        one = files["single"]
        return {"cpu": _cpu_v2(files), "memory": _memory_v2(files),
                "pids": _pids(one["pids.current"], one["pids.max"]),
                "blkio": _io_v2(files), "hugetlb": _hugetlb_v2(files)}
    base = dirs.get("pids")
    return {"cpu": _cpu_v1(dirs), "memory": _memory_v1(dirs),
            "pids": _pids(_num(_read(base, "pids.current")), _num(_read(base, "pids.max"))),
            "blkio": _blkio_v1(dirs.get("blkio")), "hugetlb": _hugetlb_v1(dirs.get("hugetlb"))}


def oom_count(dirs: dict[str, str], *, v2: bool) -> int:
    """How many times the OOM killer struck in the cgroup."""
    if v2:
        return _kv(_read(dirs.get(""), "memory.events")).get("oom_kill", 0)
    ctl = _kv(_read(dirs.get("memory"), "memory.oom_control"))
    return ctl.get("oom_kill", 0)
