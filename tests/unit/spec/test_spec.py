"""spec.check: what `create` relies on, each problem naming its field."""

from __future__ import annotations

import copy
import json

import pytest

from pyrunc import spec
from pyrunc.errors import SpecError

BASE = {
    "ociVersion": "1.3.0",
    "root": {"path": "rootfs"},
    "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]},
}


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def problem(bundle, edit):
    config = copy.deepcopy(BASE)
    edit(config)
    with pytest.raises(SpecError) as exc:
        spec.check(config, str(bundle))
    return str(exc.value)


def test_base_is_valid(bundle):
    spec.check(copy.deepcopy(BASE), str(bundle))


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.2.0", "1.3.0", "1.10.1"])
def test_any_1x_version(bundle, version):
    config = copy.deepcopy(BASE)
    config["ociVersion"] = version
    spec.check(config, str(bundle))


@pytest.mark.parametrize("version", ["2.0.0", "0.6.0", "", None, 1.0, "10.0"])
def test_other_versions_refused(bundle, version):
    msg = problem(bundle, lambda c: c.update(ociVersion=version))
    assert msg.startswith("ociVersion: ")


@pytest.mark.parametrize("edit,field", [
    (lambda c: c["process"].update(args="sh"), "process.args"),
    (lambda c: c["process"].update(args=[]), "process.args"),
    (lambda c: c["process"].update(args=["sh", 1]), "process.args"),
    (lambda c: c["process"].update(cwd="relative"), "process.cwd"),
    (lambda c: c["process"].update(env="A=b"), "process.env"),
    (lambda c: c["process"]["user"].update(uid=-1), "process.user.uid"),
    (lambda c: c["process"]["user"].update(gid=True), "process.user.gid"),
    (lambda c: c["process"]["user"].update(additionalGids=["1"]), "process.user.additionalGids"),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]),
     "process.rlimits[0].type"),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "soft": -1, "hard": 1}]),
     "process.rlimits[0].soft"),
    (lambda c: c["process"].update(oomScoreAdj=1001), "process.oomScoreAdj"),
    (lambda c: c["process"].update(terminal="yes"), "process.terminal"),
    (lambda c: c.pop("process"), "process"),
    (lambda c: c.pop("root"), "root.path"),
    (lambda c: c["root"].update(path="missing"), "root.path"),
    (lambda c: c.update(mounts={}), "mounts"),
    (lambda c: c["mounts"].append({"destination": "rel", "type": "tmpfs"}), "mounts[1].destination"),
    (lambda c: c["mounts"][0].update(options="ro"), "mounts[0].options"),
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces[2].type"),
    (lambda c: c["linux"]["namespaces"].append({"type": "pid"}), "linux.namespaces[2].type"),
    (lambda c: c["linux"]["namespaces"].append({"type": "network", "path": "net"}),
     "linux.namespaces[2].path"),
    (lambda c: c["linux"]["namespaces"].append({"type": "network", "path": "/nonexistent/ns"}),
     "linux.namespaces[2].path"),
    (lambda c: c["linux"]["namespaces"].append({"type": "user"}), "linux.uidMappings"),
    (lambda c: c["linux"].update(uidMappings=[{"containerID": 0, "hostID": -1, "size": 1}]),
     "linux.uidMappings[0]"),
    (lambda c: c["linux"].update(maskedPaths=["proc/kcore"]), "linux.maskedPaths[0]"),
    (lambda c: c["linux"].update(readonlyPaths=[1]), "linux.readonlyPaths[0]"),
    (lambda c: c["linux"].update(sysctl=["a=b"]), "linux.sysctl"),
    (lambda c: c.update(hostname=1), "hostname"),
    (lambda c: c.update(annotations=[]), "annotations"),
])
def test_problem_names_field(bundle, edit, field):
    msg = problem(bundle, edit)
    assert msg.startswith(field + ":"), msg


def test_root_path_problem_names_path(bundle):
    msg = problem(bundle, lambda c: c["root"].update(path="nope"))
    assert str(bundle / "nope") in msg


def test_user_namespace_with_mappings_ok(bundle):
    config = copy.deepcopy(BASE)
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    spec.check(config, str(bundle))


def test_load(bundle):
    (bundle / "config.json").write_text(json.dumps(BASE))
    assert spec.load(str(bundle))["process"]["args"] == ["sh"]


@pytest.mark.parametrize("text,words", [
    ('{"ociVersion": ', ["invalid JSON", "line 1"]),
    ("[1, 2]", ["JSON object"]),
    ("\xff\xfe", ["config.json"]),
])
def test_load_bad_files(bundle, text, words):
    (bundle / "config.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(SpecError) as exc:
        spec.load(str(bundle))
    assert str(bundle / "config.json") in str(exc.value)
    for w in words:
        assert w in str(exc.value)


def test_load_missing(bundle):
    with pytest.raises(SpecError, match="no such file"):
        spec.load(str(bundle))


def test_rootfs_path(bundle):
    c = copy.deepcopy(BASE)
    assert spec.rootfs_path(c, "/b") == "/b/rootfs"
    c["root"]["path"] = "./x/../fs/"
    assert spec.rootfs_path(c, "/b") == "/b/fs"
    c["root"]["path"] = "/abs/fs"
    assert spec.rootfs_path(c, "/b") == "/abs/fs"


def test_namespaces_map():
    c = copy.deepcopy(BASE)
    c["linux"]["namespaces"].append({"type": "network", "path": "/run/netns/x"})
    assert spec.namespaces(c) == {"pid": None, "mount": None, "network": "/run/netns/x"}
