"""Failures of create/run: one line on stderr naming the field or path, exit 1, one JSON line in
`--log`, and nothing left behind (state dir, cgroups, mounts, processes)."""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess

import pytest

pytestmark = pytest.mark.requires("root", "busybox")

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\Z")


def mounts_of(*words):
    """Host mounts whose mountinfo line names one of `words` (others' tests mount things too)."""
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if any(w in line for w in words)]


def processes_mentioning(text):
    found = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(f"{d}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(d)
        except OSError:
            pass
    return found


def fails_cleanly(rt, bundle, cid, *expect, verb="run", tmp=None):
    """Run `verb` twice (plain, then --log json); check the error report and the leftovers."""
    r = rt.run(verb, "-b", str(bundle.path), cid, timeout=30)
    assert r.rc == 1, r
    assert r.out == ""
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    for word in expect:
        assert word in lines[0], (word, lines[0])
    log = bundle.path / "log.json"
    r2 = rt.run("--log", str(log), "--log-format", "json", verb, "-b", str(bundle.path), cid,
                root=True, timeout=30)
    assert r2.rc == 1
    entries = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(entries) == 1, entries
    assert set(entries[0]) == {"level", "msg", "time"}
    assert entries[0]["level"] == "error"
    assert RFC3339.match(entries[0]["time"])
    for word in expect:
        assert word in entries[0]["msg"]
    # nothing left behind
    assert not (rt.root / cid).exists()
    assert rt.run("state", cid).rc == 1
    assert glob.glob(f"/sys/fs/cgroup/*/pyrunc/{cid}") == []
    assert glob.glob(f"/sys/fs/cgroup/pyrunc/{cid}") == []
    assert mounts_of(str(bundle.path), cid) == []
    assert processes_mentioning(cid) == []
    return lines[0]


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
