"""The shim's lean protobuf codec against classes protoc generates, here, from Debian's .proto files.

Nothing generated is committed: protoc (protobuf-compiler) compiles containerd 1.6's task API,
events and mount files from golang-github-containerd-containerd-dev, the cgroup v1 and v2 metrics
from golang-github-containerd-cgroups-dev (and ttrpc's Request/Response, transcribed below from
ttrpc's types.go, which ships no .proto) into a temp dir,
and python3-protobuf loads them. Each table of pyrunc.shim.messages must match its message's
descriptor (names, numbers, kinds), and messages filled in every field must cross both ways:
protobuf -> wire.decode and wire.encode -> protobuf.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pyrunc.shim import messages as m
from pyrunc.shim import ttrpc, wire

GOCODE = Path("/usr/share/gocode/src/github.com")
CONTAINERD = GOCODE / "containerd" / "containerd"
INCLUDES = [GOCODE / "gogo" / "protobuf", GOCODE / "gogo" / "googleapis", Path("/usr/include")]
# Our path for each file (protoc's Python output cannot import a package named "github.com")
SOURCES = {
    "ctrd/task/shim.proto": CONTAINERD / "runtime/v2/task/shim.proto",
    "ctrd/types/mount.proto": CONTAINERD / "api/types/mount.proto",
    "ctrd/types/task/task.proto": CONTAINERD / "api/types/task/task.proto",
    "ctrd/events/task.proto": CONTAINERD / "api/events/task.proto",
    "ctrd/plugin/fieldpath.proto": CONTAINERD / "protobuf/plugin/fieldpath.proto",
    "ctrd/eventsvc/events.proto": CONTAINERD / "api/services/ttrpc/events/v1/events.proto",
    "cgroups/metrics.proto": GOCODE / "containerd/cgroups/stats/v1/metrics.proto",
    "cgroups2/metrics.proto": GOCODE / "containerd/cgroups/v2/stats/metrics.proto",
    # the runtime options (pyrunc.shim.options)
    "ctrd/runc/options.proto": CONTAINERD / "runtime/v2/runc/options/oci.proto",
    "ctrd/runctypes/runc.proto": CONTAINERD / "runtime/linux/runctypes/runc.proto",
    "ctrd/runtimeoptions/api.proto": CONTAINERD / "pkg/runtimeoptions/v1/api.proto",
}
_REWRITES = [
    ("github.com/containerd/containerd/runtime/v2/task/", "ctrd/task/"),
    ("github.com/containerd/containerd/api/types/task/", "ctrd/types/task/"),
    ("github.com/containerd/containerd/api/types/", "ctrd/types/"),
    ("github.com/containerd/containerd/api/events/", "ctrd/events/"),
    ("github.com/containerd/containerd/protobuf/plugin/", "ctrd/plugin/"),
    ("github.com/gogo/protobuf/gogoproto/", "gogoproto/"),
]
# ttrpc's types.go, as a .proto (ttrpc ships none)
TTRPC_PROTO = """syntax = "proto3";
package ttrpc;
import "google/rpc/status.proto";
message KeyValue { string key = 1; string value = 2; }
message Request {
  string service = 1; string method = 2; bytes payload = 3; int64 timeout_nano = 4;
  repeated KeyValue metadata = 5;
}
message Response { google.rpc.Status status = 1; bytes payload = 2; }
"""
# Fields of the .proto files that the shim does not use, and why.
NOT_DECLARED = {
    # rdma, network and cgroup_stats: not read by pyrunc's cgroup stats
    "io.containerd.cgroups.v1.Metrics": {"rdma", "network", "cgroup_stats"},
    # the memory.kmem.tcp numbers are read as kernel_tcp; the rest is all declared
}

TABLES = {
    "ttrpc.Request": m.REQUEST, "ttrpc.Response": m.RESPONSE, "ttrpc.KeyValue": m.KEY_VALUE,
    "google.rpc.Status": m.STATUS, "google.protobuf.Any": m.ANY,
    "google.protobuf.Timestamp": m.TIMESTAMP, "containerd.types.Mount": m.MOUNT,
    "containerd.v1.types.ProcessInfo": m.PROCESS_INFO,
    "containerd.services.events.ttrpc.v1.ForwardRequest": m.FORWARD_REQUEST,
    "containerd.services.events.ttrpc.v1.Envelope": m.ENVELOPE,
    "io.containerd.cgroups.v1.Metrics": m.METRICS,
    "io.containerd.cgroups.v1.MemoryStat": m.MEMORY_STAT,
    "io.containerd.cgroups.v1.BlkIOStat": m.BLKIO_STAT,
    "io.containerd.cgroups.v2.Metrics": m.METRICS_V2,
    "io.containerd.cgroups.v2.PidsStat": m.PIDS_STAT_V2,
    "io.containerd.cgroups.v2.CPUStat": m.CPU_STAT_V2,
    "io.containerd.cgroups.v2.MemoryStat": m.MEMORY_STAT_V2,
    "io.containerd.cgroups.v2.MemoryEvents": m.MEMORY_EVENTS_V2,
    "io.containerd.cgroups.v2.RdmaStat": m.RDMA_STAT_V2,
    "io.containerd.cgroups.v2.RdmaEntry": m.RDMA_ENTRY_V2,
    "io.containerd.cgroups.v2.IOStat": m.IO_STAT_V2,
    "io.containerd.cgroups.v2.IOEntry": m.IO_ENTRY_V2,
    "io.containerd.cgroups.v2.HugeTlbStat": m.HUGETLB_STAT_V2,
    "containerd.events.TaskIO": m.TASK_IO,
    m.RUNC_OPTIONS_TYPE: m.RUNC_OPTIONS, m.LINUX_CREATE_OPTIONS_TYPE: m.LINUX_CREATE_OPTIONS,
    m.CRI_RUNTIME_OPTIONS_TYPE: m.CRI_RUNTIME_OPTIONS,
}
for _name, _table in vars(m).items():
    if _name.endswith(("_REQUEST", "_RESPONSE")) and _name not in ("REQUEST", "RESPONSE",
                                                                    "FORWARD_REQUEST") \
            and not _name.endswith("_TYPE"):
        TABLES["containerd.task.v2." + "".join(w.title() for w in _name.split("_"))] = _table
for _event, (_topic, _table) in m.EVENTS.items():
    TABLES["containerd.events." + _event] = _table
TABLES = {k.replace("Io", "IO").replace("Pty", "Pty"): v for k, v in TABLES.items()}


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, type]]:
    if not shutil.which("protoc"):
        pytest.skip("needs protoc (protobuf-compiler)")
    pytest.importorskip("google.protobuf")
    if not all(p.exists() for p in SOURCES.values()):
        pytest.skip("needs the .proto files of golang-github-containerd-containerd-dev and "
                    "golang-github-containerd-cgroups-dev")
    top = tmp_path_factory.mktemp("protos")
    inc, out = top / "inc", top / "out"
    for ours, src in SOURCES.items():
        text = src.read_text()
        for old, new in _REWRITES:
            text = text.replace(old, new)
        (inc / ours).parent.mkdir(parents=True, exist_ok=True)
        (inc / ours).write_text(text)
    (inc / "ttrpc.proto").write_text(TTRPC_PROTO)
    out.mkdir()
    files = [*SOURCES, "ttrpc.proto", "gogoproto/gogo.proto", "google/rpc/status.proto"]
    subprocess.run(["protoc", f"-I{inc}", *(f"-I{d}" for d in INCLUDES), f"--python_out={out}",
                    *files], check=True, capture_output=True, text=True)
    sys.path.insert(0, str(out))
    try:
        modules = [importlib.import_module(re.sub(r"\.proto$", "_pb2", f).replace("/", "."))
                   for f in files]
        yield _classes(modules)
    finally:
        sys.path.remove(str(out))


def _classes(modules: list[ModuleType]) -> dict[str, type]:
    from google.protobuf import reflection, symbol_database  # noqa: F401

    found: dict[str, type] = {}
    for mod in modules:
        for name in dir(mod):
            cls = getattr(mod, name)
            if isinstance(cls, type) and hasattr(cls, "DESCRIPTOR") and hasattr(cls, "FromString"):
                _walk(cls, found)
    from google.protobuf import any_pb2, timestamp_pb2

    for cls in (any_pb2.Any, timestamp_pb2.Timestamp):
        found[cls.DESCRIPTOR.full_name] = cls
    return found


def _walk(cls: type, found: dict[str, type]) -> None:
    found[cls.DESCRIPTOR.full_name] = cls  # type: ignore[attr-defined]
    for nested in cls.DESCRIPTOR.nested_types:  # type: ignore[attr-defined]
        if nested.name in dir(cls):
            _walk(getattr(cls, nested.name), found)


def _kind(field: object) -> str:
    from google.protobuf.descriptor import FieldDescriptor as F

    t = field.type  # type: ignore[attr-defined]
    if t == F.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:  # type: ignore[attr-defined]
        return "M"
    base = {F.TYPE_STRING: "s", F.TYPE_BYTES: "b", F.TYPE_BOOL: "?", F.TYPE_MESSAGE: "m",
            F.TYPE_UINT32: "u", F.TYPE_UINT64: "u", F.TYPE_ENUM: "u",
            F.TYPE_INT32: "i", F.TYPE_INT64: "i"}[t]
    return "*" + base if field.label == F.LABEL_REPEATED else base  # type: ignore[attr-defined]


@pytest.mark.parametrize("full_name", sorted(TABLES))
def test_table_matches_the_descriptor(pb: dict[str, type], full_name: str) -> None:
    desc = pb[full_name].DESCRIPTOR  # type: ignore[attr-defined]
    table = TABLES[full_name]
    by_number = {f.number: f for f in desc.fields}
    for num, name, kind, sub in table:
        assert num in by_number, f"{full_name}: no field number {num} ({name})"
        field = by_number[num]
        assert (field.name, _kind(field)) == (name, kind), f"{full_name}.{name}"
        if kind in ("m", "*m"):
            assert sub is not None
            sub_name = field.message_type.full_name
            if sub_name in TABLES:
                assert TABLES[sub_name] == sub, f"{full_name}.{name}: table of {sub_name}"
    declared = {f[1] for f in table}
    missing = {f.name for f in desc.fields} - declared - NOT_DECLARED.get(full_name, set())
    assert not missing, f"{full_name}: fields not declared: {missing}"


# --- round trips with every field set ---------------------------------------------------------------
def _fill(msg: object, table: wire.Table, depth: int = 0) -> dict[str, object]:
    """Set every declared field of a protobuf message; returns the dict wire.decode should give."""
    expect: dict[str, object] = {}
    for num, name, kind, sub in table:
        value: object
        if kind == "M":
            getattr(msg, name).update({"k1": "v1", "k2": f"v{num}"})
            value = {"k1": "v1", "k2": f"v{num}"}
        elif kind in ("m", "*m"):
            if depth > 3 or sub is None:
                continue
            items = []
            for _ in range(1 if kind == "m" else 2):
                child = getattr(msg, name) if kind == "m" else getattr(msg, name).add()
                items.append(_fill(child, sub, depth + 1))
                if kind == "m":
                    child.SetInParent()  # type: ignore[attr-defined]
            value = items[0] if kind == "m" else items
        else:
            one = {"s": f"text-{num}-é", "b": bytes([num, 0, 255]), "?": True,
                   "u": 300 + num * 1_000_003, "i": -(num * 70_001)}[kind[-1]]
            if kind == "i" and name == "nanos":
                one = 123_456_789
            if kind[0] == "*":
                getattr(msg, name).extend([one, one])
                value = [one, one]
            else:
                setattr(msg, name, one)
                value = one
        expect[name] = value
    return expect


@pytest.mark.parametrize("full_name", sorted(TABLES))
def test_round_trip(pb: dict[str, type], full_name: str) -> None:
    cls, table = pb[full_name], TABLES[full_name]
    msg = cls()
    expect = _fill(msg, table)
    data = msg.SerializeToString()  # type: ignore[attr-defined]
    assert wire.decode(table, data) == expect
    back = cls.FromString(wire.encode(table, expect))  # type: ignore[attr-defined]
    assert back == msg


def test_defaults_are_not_written_and_read_as_absent(pb: dict[str, type]) -> None:
    cls = pb["containerd.task.v2.StateResponse"]
    data = wire.encode(m.STATE_RESPONSE, {"id": "", "pid": 0, "terminal": False, "exec_id": "x"})
    assert cls.FromString(data) == cls(exec_id="x")  # type: ignore[attr-defined]
    assert wire.decode(m.STATE_RESPONSE, data) == {"exec_id": "x"}


def test_unknown_fields_are_skipped(pb: dict[str, type]) -> None:
    full = pb["containerd.task.v2.CreateTaskRequest"](id="c1", bundle="/b", terminal=True)  # type: ignore[call-arg]
    assert wire.decode(((1, "id", "s", None),), full.SerializeToString()) == {"id": "c1"}  # type: ignore[attr-defined]


def test_truncated_input_is_an_error() -> None:
    data = wire.encode(m.START_REQUEST, {"id": "abcdef"})
    with pytest.raises(wire.DecodeError):
        wire.decode(m.START_REQUEST, data[:-2])


def test_ttrpc_frames_split_anywhere() -> None:
    payload = ttrpc.request("svc", "M", b"x" * 100)
    data = ttrpc.frame(3, ttrpc.REQUEST, payload) + ttrpc.frame(5, ttrpc.REQUEST, b"")
    frames = ttrpc.Frames()
    got = []
    for i in range(0, len(data), 7):
        got += frames.feed(data[i:i + 7])
    assert got == [(3, ttrpc.REQUEST, payload), (5, ttrpc.REQUEST, b"")]
    assert data[:10] == bytes([0, 0, 0, len(payload), 0, 0, 0, 3, 1, 0])


def test_ttrpc_refuses_oversized_frames() -> None:
    with pytest.raises(ttrpc.ProtocolError):
        ttrpc.Frames().feed(ttrpc.frame(1, ttrpc.REQUEST, b"")[:0] + (5 << 20).to_bytes(4, "big")
                            + bytes(6))
