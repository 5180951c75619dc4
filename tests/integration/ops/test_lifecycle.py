"""The container lifecycle through the CLI: create, start, state, kill, delete, list and run.

Facts are read from outside (state JSON, /proc/<pid>, the pid file, what is left under --root)
and from inside (a bind-mounted host directory the container writes to).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest
from proc_helpers import create_captured as create
from testlib import Runtime

pytestmark = pytest.mark.requires("root", "busybox")

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\Z")


def wait_status(rt, cid, want, tries=500):
    for _ in range(tries):
        st = rt.state(cid)
        if st["status"] == want:
            return st
        time.sleep(0.01)
    raise AssertionError(f"{cid} never reached {want}: {rt.state(cid)}")


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def with_hostdir(bundle, tmp_path):
    host = tmp_path / "hostdir"
    host.mkdir(exist_ok=True)
    bundle.config["mounts"].append({"destination": "/host", "type": "bind", "source": str(host),
                                    "options": ["rbind", "rw"]})
    return host


def test_create_blocks_until_start(runtime, make_bundle, cid, tmp_path):
    b = make_bundle("sh", "-c", "touch /host/ran; echo started")
    host = with_hostdir(b, tmp_path)
    b.write()
    rc, out, err = create(runtime, b, cid)
    assert (rc, out, err) == (0, "", "")
    st = runtime.state(cid)
    assert st["status"] == "created"
    pid = st["pid"]
    assert isinstance(pid, int) and pid > 0 and pid_alive(pid)
    assert not (host / "ran").exists(), "the process ran before start"
    r = runtime.run("start", cid)
    assert (r.rc, r.out, r.err) == (0, "", "")
    wait_status(runtime, cid, "stopped")
    assert (host / "ran").exists()
    assert (b.path / "out").read_text() == "started\n"
    assert runtime.state(cid)["pid"] == 0
    assert runtime.run("delete", cid).rc == 0
    assert not (runtime.root / cid).exists()
    assert not pid_alive(pid)


def test_state_fields(runtime, make_bundle, cid):
    b = make_bundle("sleep", "100")
    b.config["annotations"] = {"org.example.key": "value", "other": ""}
    b.write()
    assert create(runtime, b, cid)[0] == 0
    st = runtime.state(cid)
    assert st["ociVersion"].startswith("1.")
    assert st["id"] == cid
    assert st["status"] == "created"
    assert st["bundle"] == str(b.path)
    assert st["rootfs"] == str(b.rootfs)
    assert RFC3339.match(st["created"]), st["created"]
    assert "owner" in st
    assert st["annotations"] == {"org.example.key": "value", "other": ""}
    assert runtime.run("start", cid).rc == 0
    assert runtime.state(cid)["status"] == "running"


def test_start_twice_and_start_stopped(runtime, make_bundle, cid):
    b = make_bundle("sleep", "100")
    assert create(runtime, b, cid)[0] == 0
    assert runtime.run("start", cid).rc == 0
    r = runtime.run("start", cid)
    assert r.rc == 1 and "running" in r.err
    assert runtime.run("kill", cid, "KILL").rc == 0
    wait_status(runtime, cid, "stopped")
    r = runtime.run("start", cid)
    assert r.rc == 1 and "stopped" in r.err


def test_delete_running_needs_force(runtime, make_bundle, cid):
    b = make_bundle("sleep", "100")
    assert create(runtime, b, cid)[0] == 0
    assert runtime.run("start", cid).rc == 0
    pid = runtime.state(cid)["pid"]
    r = runtime.run("delete", cid)
    assert r.rc == 1
    assert r.err.strip().splitlines() == [f"cannot delete container {cid} that is not stopped: running"]
    assert pid_alive(pid) and runtime.state(cid)["status"] == "running"
    r = runtime.run("delete", "--force", cid)
    assert (r.rc, r.out, r.err) == (0, "", "")
    assert not pid_alive(pid)
    assert not (runtime.root / cid).exists()


def test_delete_created_kills_init(runtime, make_bundle, cid, tmp_path):
    # runc deletes a created container without --force, and containerd relies on it.
    b = make_bundle("sh", "-c", "touch /host/ran")
    host = with_hostdir(b, tmp_path)
    b.write()
    assert create(runtime, b, cid)[0] == 0
    pid = runtime.state(cid)["pid"]
    assert runtime.run("delete", cid).rc == 0
    assert not pid_alive(pid)
    assert not (host / "ran").exists()
    assert runtime.run("state", cid).rc == 1


def test_kill_stopped_and_unknown(runtime, make_bundle, cid):
    b = make_bundle("true")
    assert create(runtime, b, cid)[0] == 0
    assert runtime.run("start", cid).rc == 0
    wait_status(runtime, cid, "stopped")
    r = runtime.run("kill", cid, "KILL")
    assert r.rc == 1 and "container not running" in r.err
    for verb in (("state",), ("start",), ("kill",), ("delete",)):
        r = runtime.run(*verb, "nope-" + cid)
        assert r.rc == 1, verb
        assert r.err.strip() == f"container nope-{cid} does not exist", verb


@pytest.mark.parametrize("sig,got", [("KILL", "KILL"), ("SIGKILL", "KILL"), ("9", "KILL"),
                                     ("TERM", "TERM"), ("sigusr1", "USR1"), ("15", "TERM"),
                                     ("10", "USR1")])
def test_kill_signal_names(runtime, make_bundle, cid, sig, got):
    # The shell traps TERM and USR1 and writes the name of the one it got to a host dir;
    # SIGKILL cannot be trapped and leaves no file.
    b = make_bundle("sh", "-c", "for s in TERM USR1; do trap \"echo $s > /host/sig; exit 0\" $s; done;"
                    " echo up > /host/up; while :; do sleep 0.05; done")
    host = with_hostdir(b, b.path)
    b.write()
    assert create(runtime, b, cid)[0] == 0
    assert runtime.run("start", cid).rc == 0
    for _ in range(500):
        if (host / "up").exists():
            break
        time.sleep(0.01)
    r = runtime.run("kill", cid, sig)
    assert (r.rc, r.err) == (0, "")
    wait_status(runtime, cid, "stopped")
    seen = (host / "sig").read_text().strip() if (host / "sig").exists() else "KILL"
    assert seen == got


@pytest.mark.parametrize("sig", ["SIGFOO", "0x", "99", "-1"])
def test_kill_bad_signal(runtime, make_bundle, cid, sig):
    b = make_bundle("sleep", "100")
    assert create(runtime, b, cid)[0] == 0
    r = runtime.run("kill", cid, sig)
    assert r.rc == 1 and r.err.strip()
    assert runtime.state(cid)["status"] == "created"


def test_list_formats(runtime, make_bundle, cid):
    assert runtime.run("list").out.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert runtime.run("list", "-f", "json").out.strip() == "null"
    b = make_bundle("sleep", "100")
    ids = [cid + "-a", cid + "-b"]
    for i in ids:
        assert create(runtime, b, i)[0] == 0
    assert runtime.run("start", ids[1]).rc == 0
    r = runtime.run("list", "-q")
    assert (r.rc, r.out) == (0, "".join(i + "\n" for i in ids))
    rows = json.loads(runtime.run("list", "--format", "json").out)
    assert [(x["id"], x["status"], x["bundle"]) for x in rows] == [
        (ids[0], "created", str(b.path)), (ids[1], "running", str(b.path))]
    assert all(x["pid"] > 0 and pid_alive(x["pid"]) for x in rows)
    lines = runtime.run("list").out.splitlines()
    assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    table = [line.split() for line in lines[1:]]
    assert [(t[0], int(t[1]), t[2], t[3]) for t in table] == [
        (x["id"], x["pid"], x["status"], x["bundle"]) for x in rows]
    assert all(t[5] == "root" for t in table)
    assert runtime.run("list", "-f", "yaml").rc == 1


def test_run_exit_code_and_stdio(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "echo out; echo err >&2; exit 7")
    r = runtime.run("run", "-b", str(b.path), cid)
    assert (r.rc, r.out, r.err) == (7, "out\n", "err\n")
    assert not (runtime.root / cid).exists()


def test_run_killed_exit_code(runtime, make_bundle, cid):
    # pid 1 of a pid namespace cannot SIGKILL itself: the kill comes from outside.
    b = make_bundle("sleep", "100")
    p = subprocess.Popen(runtime.argv("run", "-b", str(b.path), cid), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if runtime.run("state", cid).rc == 0 and runtime.state(cid)["status"] == "running":
                break
            time.sleep(0.01)
        assert runtime.run("kill", cid, "KILL").rc == 0
        assert p.wait(timeout=30) == 137
    finally:
        p.kill()
        p.wait()


def test_run_keep(runtime, make_bundle, cid):
    b = make_bundle("true")
    r = runtime.run("run", "--keep", "-b", str(b.path), cid)
    assert r.rc == 0
    assert runtime.state(cid)["status"] == "stopped"
    assert runtime.run("delete", cid).rc == 0


def test_run_detach(runtime, make_bundle, cid):
    b = make_bundle("sleep", "100")
    with open(b.path / "out", "w") as out, open(b.path / "err", "w+") as err:
        p = subprocess.run(runtime.argv("run", "-d", "--pid-file", str(b.path / "pid"),
                                        "-b", str(b.path), cid),
                           stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=60)
    assert p.returncode == 0, (b.path / "err").read_text()
    st = runtime.state(cid)
    assert st["status"] == "running"
    assert (b.path / "pid").read_text() == str(st["pid"])


def test_pid_file(runtime, make_bundle, cid, tmp_path):
    b = make_bundle("sleep", "100")
    # a relative --pid-file is relative to the caller's cwd
    assert create(runtime, b, cid, "--pid-file", "pidfile", tmp=tmp_path, cwd=tmp_path)[0] == 0
    data = (tmp_path / "pidfile").read_bytes()
    assert re.fullmatch(rb"[1-9][0-9]*", data), data
    assert int(data) == runtime.state(cid)["pid"]


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.2.1", "1.3.0", "1.9.99"])
def test_oci_version_1x_accepted(runtime, make_bundle, cid, version):
    b = make_bundle("true")
    b.config["ociVersion"] = version
    b.write()
    assert runtime.run("run", "-b", str(b.path), cid).rc == 0


@pytest.mark.parametrize("version", ["2.0.0", "0.9", ""])
def test_oci_version_other_refused(runtime, make_bundle, cid, version):
    b = make_bundle("true")
    b.config["ociVersion"] = version
    b.write()
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc == 1 and "ociVersion" in r.err
    assert not runtime.root.exists() or not any(runtime.root.iterdir())


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".", "..", "x y", "/abs"])
def test_bad_ids_refused(runtime, bundle, bad):
    for verb in (("run", "-b", str(bundle.path)), ("create", "-b", str(bundle.path))):
        r = runtime.run(*verb, bad)
        assert r.rc == 1 and len(r.err.strip().splitlines()) == 1, (verb, r)
        assert "container id" in r.err
    assert not runtime.root.exists() or not any(runtime.root.iterdir())
    assert not (runtime.root.parent / "x").exists()


def test_duplicate_id_refused(runtime, make_bundle, cid):
    b = make_bundle("sleep", "100")
    assert create(runtime, b, cid)[0] == 0
    pid = runtime.state(cid)["pid"]
    rc, _, err = create(runtime, b, cid)
    assert rc == 1 and cid in err
    assert runtime.state(cid)["pid"] == pid and pid_alive(pid)


def test_no_output_on_stdout_during_create_start(runtime, make_bundle, cid, tmp_path):
    b = make_bundle("true")
    rc, out, err = create(runtime, b, cid, tmp=tmp_path)
    assert (rc, out, err) == (0, "", "")
    r = runtime.run("start", cid)
    assert (r.rc, r.out, r.err) == (0, "", "")


def test_relative_bundle_and_root(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "echo rel")
    rel_root = os.path.relpath(runtime.root, b.path.parent)
    r = runtime.run("--root", rel_root, "run", "-b", b.path.name, cid, root=False,
                    cwd=str(b.path.parent))
    assert (r.rc, r.out) == (0, "rel\n")


def test_launcher_started_through_symlinks(runtime, tmp_path):
    """contrib/ names /usr/local/bin/pyrunc, which `make install` links to the venv's launcher:
    started through a chain of links (absolute and relative), it finds its packages."""
    (tmp_path / "a").symlink_to(os.path.realpath(runtime.binary))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pyrunc").symlink_to("../a")
    linked = Runtime(str(tmp_path / "sub" / "pyrunc"), runtime.root)
    r = linked.run("--version")
    assert r.rc == 0 and "pyrunc version" in r.out, r.err
    r = linked.run("state", "no-such-id")
    assert r.rc == 1 and "does not exist" in r.err


def test_kill_all_of_a_stopped_container(runtime, make_bundle, cid):
    """runc: `kill --all` signals whatever is left in the cgroup, whatever the init's status; of a
    stopped container it succeeds (plain kill says it is not running)."""
    b = make_bundle("true")
    assert create(runtime, b, cid)[0] == 0
    assert runtime.run("start", cid).rc == 0
    wait_status(runtime, cid, "stopped")
    assert runtime.run("kill", "--all", cid, "KILL").rc == 0
    r = runtime.run("kill", cid, "KILL")
    assert r.rc == 1 and "container not running" in r.err
