"""Failures of create/run: one line on stderr naming the field or path, exit 1, one JSON line in
`--log`, and nothing left behind (state dir, cgroups, mounts, processes)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from proc_helpers import fails_cleanly

pytestmark = pytest.mark.requires("root", "busybox")

def test_malformed_json(runtime, bundle, cid):
    (bundle.path / "config.json").write_text('{"ociVersion": "1.0.2", "process": ')
    fails_cleanly(runtime, bundle, cid, "config.json", "invalid JSON")


def test_missing_config(runtime, bundle, cid):
    (bundle.path / "config.json").unlink()
    fails_cleanly(runtime, bundle, cid, "config.json")


@pytest.mark.parametrize("edit,words", [
    (lambda c: c["process"].update(args="sh -c true"), ["process.args"]),
    (lambda c: c["process"].update(args=[]), ["process.args"]),
    (lambda c: c["process"].update(cwd="tmp"), ["process.cwd"]),
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), ["linux.namespaces[5].type", "bogus"]),
    (lambda c: c["mounts"].append({"destination": "relative/dir", "type": "tmpfs", "source": "tmpfs"}),
     ["mounts[7].destination", "relative/dir"]),
    (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}),
     ["process.rlimits[1].type"]),
    (lambda c: c["process"]["user"].update(uid=-1), ["process.user.uid"]),
    (lambda c: c.pop("process"), ["process"]),
    (lambda c: c["linux"]["namespaces"][1].update(path="/proc/1/ns/nope"),
     ["linux.namespaces[1].path", "/proc/1/ns/nope"]),
], ids=["args-string", "args-empty", "cwd-relative", "ns-unknown", "mount-relative", "rlimit",
        "uid-negative", "no-process", "ns-path-missing"])
def test_spec_violations(runtime, bundle, cid, edit, words):
    edit(bundle.config)
    bundle.write()
    fails_cleanly(runtime, bundle, cid, *words)


def test_missing_rootfs(runtime, bundle, cid):
    bundle.config["root"]["path"] = "no-such-rootfs"
    bundle.write()
    fails_cleanly(runtime, bundle, cid, "root.path", str(bundle.path / "no-such-rootfs"))


@pytest.mark.parametrize("verb", ["run", "create"])
def test_executable_not_found(runtime, make_bundle, cid, verb):
    b = make_bundle("nope")
    line = fails_cleanly(runtime, b, cid, verb=verb)
    assert line.endswith('exec: "nope": executable file not found in $PATH'), line


def test_executable_path_missing(runtime, make_bundle, cid):
    b = make_bundle("/bin/nope")
    fails_cleanly(runtime, b, cid, "/bin/nope", "no such file or directory")


def test_executable_not_executable(runtime, make_bundle, cid):
    b = make_bundle("/etc/passwd")
    fails_cleanly(runtime, b, cid, "/etc/passwd", "permission denied")


def test_cwd_is_a_file(runtime, make_bundle, cid):
    b = make_bundle("true")
    b.process["cwd"] = "/etc/passwd"
    b.write()
    fails_cleanly(runtime, b, cid, "/etc/passwd")


def test_bind_source_missing(runtime, make_bundle, cid):
    b = make_bundle("true")
    b.config["mounts"].append({"destination": "/x", "type": "bind", "source": "missing-dir",
                               "options": ["rbind"]})
    b.write()
    fails_cleanly(runtime, b, cid, str(b.path / "missing-dir"), "/x")


def test_unknown_mount_type(runtime, make_bundle, cid):
    b = make_bundle("true")
    b.config["mounts"].append({"destination": "/x", "type": "nosuchfs", "source": "none"})
    b.write()
    fails_cleanly(runtime, b, cid, "/x", "nosuchfs")


def test_bad_sysctl(runtime, make_bundle, cid):
    b = make_bundle("true")
    b.linux["sysctl"] = {"net.nonexistent.key": "1"}
    b.write()
    fails_cleanly(runtime, b, cid, "linux.sysctl", "net.nonexistent.key")


def test_negative_oom_score_adj_refused_cleanly(runtime, make_bundle, cid):
    # root's bounding set lacks CAP_SYS_RESOURCE here: lowering the score fails
    with open("/proc/self/oom_score_adj") as f:
        if int(f.read()) <= -1000:
            pytest.skip("already at the minimum")
    caps = open("/proc/self/status").read()
    capbnd = int(re.search(r"CapBnd:\s*([0-9a-f]+)", caps).group(1), 16)
    if capbnd & (1 << 24):
        pytest.skip("CAP_SYS_RESOURCE available: a negative score is allowed")
    b = make_bundle("true")
    b.process["oomScoreAdj"] = -1000
    b.write()
    fails_cleanly(runtime, b, cid, "oomScoreAdj")


def test_failure_leaves_other_containers_alone(runtime, make_bundle, cid):
    good = make_bundle("sleep", "100")
    p = subprocess.run(runtime.argv("run", "-d", "-b", str(good.path), cid + "-ok"),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 0
    bad = make_bundle("nope")
    fails_cleanly(runtime, bad, cid)
    assert runtime.state(cid + "-ok")["status"] == "running"
    assert os.path.isdir(runtime.root / (cid + "-ok"))
