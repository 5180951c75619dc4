from __future__ import annotations

import copy
import json
import subprocess  # noqa: TID251 (tests may spawn; the ban guards pyrunc's hot path)
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyrunc.ops.validate import field_path, validate_bundle, validate_config
from pyrunc.spec.specgen import default_spec

Config = dict[str, Any]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(default_spec()))
    return tmp_path


def _errors(bundle: Path, edit: Callable[[Config], object]) -> list[str]:
    config = copy.deepcopy(default_spec())
    edit(config)
    return validate_config(config, str(bundle))


def test_runc_default_bundle_is_valid(bundle: Path) -> None:
    assert validate_bundle(str(bundle)) == []


def test_rootless_default_is_valid(bundle: Path) -> None:
    assert validate_config(default_spec(rootless=True), str(bundle)) == []


def test_missing_config(tmp_path: Path) -> None:
    assert validate_bundle(str(tmp_path)) == [
        f"{tmp_path}/config.json: No such file or directory"]


def test_json_error_has_line_and_column(bundle: Path) -> None:
    (bundle / "config.json").write_text('{\n  "ociVersion": "1.3.0",\n}\n')
    assert validate_bundle(str(bundle)) == [
        f"{bundle}/config.json:3:1: invalid JSON: Expecting property name enclosed in double quotes"]


def test_schema_error_names_the_field(bundle: Path) -> None:
    def edit(c: Config) -> None:
        c["process"]["rlimits"][0]["type"] = "RLIMIT_FOO"
    [line] = _errors(bundle, edit)
    assert line.startswith("process.rlimits[0].type: 'RLIMIT_FOO' is not one of ['RLIMIT_AS'")


def test_field_path() -> None:
    assert field_path(["process", "rlimits", 0, "type"]) == "process.rlimits[0].type"
    assert field_path(["linux", "sysctl", "net.core.somaxconn"]) == \
        'linux.sysctl["net.core.somaxconn"]'
    assert field_path([]) == ""


def test_root_must_exist_and_be_a_directory(bundle: Path) -> None:
    (bundle / "file").write_text("")
    assert _errors(bundle, lambda c: c["root"].update(path="nope")) == [
        f"root.path: {bundle}/nope does not exist"]
    assert _errors(bundle, lambda c: c["root"].update(path="file")) == [
        f"root.path: {bundle}/file is not a directory"]
    assert _errors(bundle, lambda c: c.pop("root")) == ["root: is required on Linux"]


def _ns(c: Config, *entries: dict[str, str]) -> Config:
    c["linux"]["namespaces"].extend(entries)
    return c


CASES: list[tuple[str, Callable[[Config], object], str]] = [
    ("cwd", lambda c: c["process"].update(cwd="tmp"), "process.cwd: 'tmp' is not an absolute path"),
    ("args", lambda c: c["process"].update(args=[]), "process.args: must have at least one entry"),
    ("rlimit-dup", lambda c: c["process"]["rlimits"].append(
        {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}),
     "process.rlimits[1].type: duplicate rlimit RLIMIT_NOFILE"),
    ("rlimit-soft", lambda c: c["process"]["rlimits"][0].update(soft=2048),
     "process.rlimits[0]: soft limit 2048 is greater than hard limit 1024"),
    ("nice", lambda c: c["process"].update(scheduler={"policy": "SCHED_OTHER", "nice": 20}),
     "process.scheduler.nice: 20 is not in -20..19"),
    ("sched-prio", lambda c: c["process"].update(scheduler={"policy": "SCHED_BATCH", "priority": 5}),
     "process.scheduler.priority: only SCHED_FIFO and SCHED_RR take a priority"),
    ("ioprio", lambda c: c["process"].update(ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 8}),
     "process.ioPriority.priority: 8 is not in 0..7"),
    ("affinity", lambda c: c["process"].update(execCPUAffinity={"final": "0-3,x"}),
     "process.execCPUAffinity.final: '0-3,x' is not a list like 0-3,7"),
    ("mount-dest", lambda c: c["mounts"][0].update(destination="proc"),
     "mounts[0].destination: 'proc' is not an absolute path"),
    ("bind-source", lambda c: c["mounts"].append(
        {"destination": "/data", "source": "missing", "options": ["rbind"]}),
     "mounts[7].source: {bundle}/missing does not exist (bind mount on /data)"),
    ("idmap", lambda c: c["mounts"].append(
        {"destination": "/data", "source": "rootfs", "options": ["bind", "idmap"]}),
     "mounts[7].options: 'idmap' needs uidMappings/gidMappings or a user namespace"),
    ("hook", lambda c: c.update(hooks={"poststop": [{"path": "cleanup.sh"}]}),
     "hooks.poststop[0].path: 'cleanup.sh' is not an absolute path"),
    ("masked", lambda c: c["linux"]["maskedPaths"].append("proc/kcore"),
     "linux.maskedPaths[10]: 'proc/kcore' is not an absolute path"),
    ("device", lambda c: c["linux"].update(devices=[{"type": "p", "path": "fifo"}]),
     "linux.devices[0].path: 'fifo' is not an absolute path"),
    ("ns-dup", lambda c: _ns(c, {"type": "pid"}), "linux.namespaces[5].type: duplicate namespace pid"),
    ("ns-path", lambda c: _ns(c, {"type": "cgroup", "path": "/no/such/ns"}),
     "linux.namespaces[5].path: /no/such/ns does not exist"),
    ("ns-rel", lambda c: _ns(c, {"type": "cgroup", "path": "ns/cgroup"}),
     "linux.namespaces[5].path: 'ns/cgroup' is not an absolute path"),
    ("ns-type", lambda c: _ns(c, {"type": "cgroup", "path": "/proc/self/ns/net"}),
     "linux.namespaces[5].path: /proc/self/ns/net is a net namespace, not cgroup"),
    ("userns-maps", lambda c: (_ns(c, {"type": "user"}), c["linux"].update(
        gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])),
     "linux.uidMappings: required for a new user namespace"),
    ("maps-no-userns", lambda c: c["linux"].update(
        uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}]),
     "linux.uidMappings: mappings given, but no user namespace is asked for"),
    ("uts", lambda c: c["linux"].update(namespaces=[{"type": "mount"}]),
     "hostname: cannot be set without a private UTS namespace"),
    ("time", lambda c: c["linux"].update(timeOffsets={"monotonic": {"secs": 1}}),
     "linux.timeOffsets: needs a time namespace"),
    ("time-clock", lambda c: (_ns(c, {"type": "time"}),
                              c["linux"].update(timeOffsets={"realtime": {"secs": 1}})),
     'linux.timeOffsets["realtime"]: only monotonic and boottime clocks can be offset'),
    ("netdev-ns", lambda c: (c["linux"].update(namespaces=[{"type": "uts"}, {"type": "mount"}]),
                             c["linux"].update(netDevices={"eth1": {}})),
     "linux.netDevices: needs a network namespace to move devices into"),
    ("netdev-name", lambda c: c["linux"].update(netDevices={"eth1": {"name": "a/b"}}),
     'linux.netDevices["eth1"].name: \'a/b\' is not a valid interface name'),
    ("burst", lambda c: c["linux"]["resources"].update(cpu={"quota": 1000, "burst": 2000}),
     "linux.resources.cpu.burst: 2000 is larger than quota 1000"),
    ("cpus", lambda c: c["linux"]["resources"].update(cpu={"cpus": "3-1"}),
     "linux.resources.cpu.cpus: range '3-1' ends before it starts"),
    ("errno", lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mount"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}),
     "linux.seccomp.syscalls[0].errnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE return an errno,"
     " not SCMP_ACT_KILL"),
    ("mempolicy", lambda c: c["linux"].update(memoryPolicy={"mode": "MPOL_LOCAL", "nodes": "0"}),
     "linux.memoryPolicy.nodes: MPOL_LOCAL takes no nodes"),
]


@pytest.mark.parametrize(("edit", "line"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_semantic_check(bundle: Path, edit: Callable[[Config], object], line: str) -> None:
    assert _errors(bundle, edit) == [line.format(bundle=bundle)]


def test_user_namespace_with_mappings(bundle: Path) -> None:
    maps = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    def edit(c: Config) -> None:
        _ns(c, {"type": "user"})
        c["linux"].update(uidMappings=maps, gidMappings=maps)
    assert _errors(bundle, edit) == []

    def unmapped(c: Config) -> None:
        edit(c)
        c["process"]["user"].update(uid=70000, additionalGids=[5, 65536])
    assert _errors(bundle, unmapped) == [
        "process.user.uid: 70000 is not mapped by linux.uidMappings",
        "process.user.additionalGids[1]: 65536 is not mapped by linux.gidMappings"]


def test_overlapping_and_empty_mappings(bundle: Path) -> None:
    def edit(c: Config) -> None:
        _ns(c, {"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 10},
                                     {"containerID": 5, "hostID": 2000, "size": 10}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 0}]
    errors = _errors(bundle, edit)
    assert "linux.uidMappings[1]: container range overlaps another entry" in errors
    assert "linux.gidMappings[0].size: must be at least 1" in errors


@pytest.mark.parametrize(("key", "namespaces", "why"), [
    ("net.ipv4.ip_forward", ["network"], None),
    ("net.ipv4.ip_forward", ["uts"], "needs a network namespace other than the host's"),
    ("net/ipv4/ip_forward", ["uts"], "needs a network namespace other than the host's"),
    ("kernel.shmmax", ["ipc"], None),
    ("fs.mqueue.msg_max", ["uts"], "needs an ipc namespace other than the host's"),
    ("kernel.sem", ["network"], "needs an ipc namespace other than the host's"),
    ("kernel.domainname", ["uts"], None),
    ("kernel.domainname", ["ipc"], "is not in a separate kernel namespace"),
    ("kernel.hostname", ["uts"], "conflicts with the hostname field; set that instead"),
    ("vm.swappiness", ["ipc", "network", "uts"], "is not in a separate kernel namespace"),
])
def test_sysctl_needs_its_namespace(bundle: Path, key: str, namespaces: list[str],
                                    why: str | None) -> None:
    def edit(c: Config) -> None:
        c.pop("hostname")
        c["linux"]["namespaces"] = [{"type": t} for t in [*namespaces, "mount"]]
        c["linux"]["sysctl"] = {key: "1"}
    expected = [] if why is None else [f"linux.sysctl[{json.dumps(key)}]: {why}"]
    assert _errors(bundle, edit) == expected


def test_net_sysctl_in_the_host_netns_joined_by_path(bundle: Path) -> None:
    def edit(c: Config) -> None:
        c["linux"]["namespaces"][1] = {"type": "network", "path": "/proc/self/ns/net"}
        c["linux"]["sysctl"] = {"net.core.somaxconn": "256"}
    assert _errors(bundle, edit) == [
        'linux.sysctl["net.core.somaxconn"]: needs a network namespace other than the host\'s']


@pytest.mark.parametrize("config", [
    [], "x", {"ociVersion": 1, "process": [], "linux": {"namespaces": "x", "sysctl": []}},
    {"ociVersion": "1.3.0", "root": {"path": 3}, "mounts": [1, {"options": "ro"}],
     "hooks": {"prestart": [None]}, "process": {"capabilities": {"bounding": "CAP_KILL"}}},
])
def test_garbage_reports_without_crashing(bundle: Path, config: Any) -> None:
    assert validate_config(config, str(bundle)) != []


def test_importing_validate_does_not_import_jsonschema() -> None:
    code = "import sys, pyrunc.ops.validate; print('jsonschema' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.stdout.strip() == "False"


def test_unknown_capability_is_a_warning_not_an_error(tmp_path: Path) -> None:
    """runtime-spec: a capability that cannot be mapped is logged as a warning; no failure."""
    from pyrunc.ops.validate import check_bundle

    (tmp_path / "rootfs").mkdir()
    config = default_spec()
    config["process"]["capabilities"]["ambient"].append("CAP_FLY")
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert check_bundle(str(tmp_path)) == (
        [], ["process.capabilities.ambient[3]: unknown capability 'CAP_FLY'"])
