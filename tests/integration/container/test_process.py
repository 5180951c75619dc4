"""The container's process and namespaces: what busybox sees inside, and /proc/<pid> from outside."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from proc_helpers import create_captured as create
from proc_helpers import run_in
from testlib import Bundle

pytestmark = pytest.mark.requires("root", "busybox")


def ns_link(pid, ns):
    return os.readlink(f"/proc/{pid}/ns/{ns}")


# --- namespaces -----------------------------------------------------------------------------------
def test_new_namespaces_from_outside(runtime, make_bundle, cid):
    b = make_bundle("sleep", "100")
    assert create(runtime, b, cid)[0] == 0
    pid = runtime.state(cid)["pid"]
    for ns in ("pid", "net", "ipc", "uts", "mnt"):
        assert ns_link(pid, ns) != ns_link("self", ns), ns
    # not asked for: shared with the host
    for ns in ("user", "cgroup"):
        assert ns_link(pid, ns) == ns_link("self", ns), ns


def test_pid_namespace(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "echo $$; ps -o pid,comm | wc -l")
    pid1, nlines = run_in(runtime, b, cid).split()
    assert pid1 == "1"
    assert int(nlines) <= 4  # header, sh, ps, wc: none of the host's processes


def test_uts_namespace(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "hostname; cat /proc/sys/kernel/domainname")
    b.config["hostname"] = "box-" + cid
    b.config["domainname"] = "example.test"
    b.write()
    assert run_in(runtime, b, cid) == f"box-{cid}\nexample.test\n"
    assert os.uname().nodename != f"box-{cid}"


def test_network_namespace_only_lo(runtime, make_bundle, cid):
    b = make_bundle("ls", "/sys/class/net")
    assert run_in(runtime, b, cid).split() == ["lo"]


def test_ipc_namespace(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "readlink /proc/self/ns/ipc")
    assert run_in(runtime, b, cid).strip() != ns_link("self", "ipc")


def test_join_netns_by_path_ip_netns(runtime, make_bundle, cid):
    name = "lc-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        b = make_bundle("sh", "-c", "readlink /proc/self/ns/net; cat /sys/class/net/lo/operstate")
        for ns in b.linux["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = f"/var/run/netns/{name}"
        b.write()
        link, operstate = run_in(runtime, b, cid).split()
        assert link == f"net:[{os.stat(f'/var/run/netns/{name}').st_ino}]"
        assert operstate == "unknown"  # lo is up there (a new netns has it "down")
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def test_join_other_containers_namespaces(runtime, make_bundle, cid):
    a = make_bundle("sleep", "100")
    assert create(runtime, a, cid + "-a")[0] == 0
    apid = runtime.state(cid + "-a")["pid"]
    b = make_bundle("sh", "-c", "for n in net ipc uts; do readlink /proc/self/ns/$n; done; hostname")
    for ns in b.linux["namespaces"]:
        if ns["type"] in ("network", "ipc"):
            ns["path"] = f"/proc/{apid}/ns/{'net' if ns['type'] == 'network' else 'ipc'}"
    b.config["hostname"] = "other"
    b.write()
    net, ipc, uts, host = run_in(runtime, b, cid + "-b").split()
    assert (net, ipc) == (ns_link(apid, "net"), ns_link(apid, "ipc"))
    assert uts != ns_link(apid, "uts")
    assert host == "other"


@pytest.fixture
def open_bundle(busybox_rootfs):
    """A bundle under a directory any uid can traverse (pytest's tmp dirs are 0700 root)."""
    top = tempfile.mkdtemp(prefix="lc-userns-")
    os.chmod(top, 0o711)
    (Path(top) / "b").mkdir()
    yield lambda *args: Bundle(Path(top) / "b", busybox_rootfs, list(args))
    shutil.rmtree(top)


@pytest.mark.requires("userns")
def test_user_namespace(runtime, open_bundle, cid):
    b = open_bundle("sh", "-c", "id; cat /proc/self/uid_map /proc/self/gid_map")
    b.linux["namespaces"].append({"type": "user"})
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    b.write()
    out = run_in(runtime, b, cid).split("\n")
    assert out[0].startswith("uid=0(root) gid=0(root)")
    assert out[1].split() == ["0", "100000", "65536"]
    assert out[2].split() == ["0", "200000", "65536"]
    b.process["args"] = ["sleep", "100"]
    b.write()
    assert create(runtime, b, cid + "-c")[0] == 0
    pid = runtime.state(cid + "-c")["pid"]
    with open(f"/proc/{pid}/uid_map") as f:
        assert f.read().split() == ["0", "100000", "65536"]
    st = os.stat(f"/proc/{pid}")
    assert (st.st_uid, st.st_gid) == (100000, 200000)
    assert ns_link(pid, "user") != ns_link("self", "user")


def test_cgroup_namespace(runtime, make_bundle, cid):
    b = make_bundle("cat", "/proc/self/cgroup")
    b.linux["namespaces"].append({"type": "cgroup"})
    b.write()
    lines = run_in(runtime, b, cid).splitlines()
    assert lines and all(line.rsplit(":", 1)[1] == "/" for line in lines), lines


def test_time_namespace_boottime_offset(runtime, make_bundle, cid):
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("no time namespaces")
    offset = 10 * 86400
    b = make_bundle("cat", "/proc/uptime")
    b.linux["namespaces"].append({"type": "time"})
    b.linux["timeOffsets"] = {"boottime": {"secs": offset, "nanosecs": 0}}
    b.write()
    with open("/proc/uptime") as f:
        before = float(f.read().split()[0])
    inside = float(run_in(runtime, b, cid).split()[0])
    with open("/proc/uptime") as f:
        after = float(f.read().split()[0])
    assert before + offset <= inside <= after + offset


# --- the process ----------------------------------------------------------------------------------
def test_args_path_lookup_and_env(runtime, make_bundle, cid):
    b = make_bundle("hello", "a b", "c")
    tool = b.rootfs / "opt" / "tools"
    tool.mkdir(parents=True)
    (tool / "hello").write_text('#!/bin/sh\necho "hello:$1:$2:$FOO:$HOME:$PATH"\n')
    (tool / "hello").chmod(0o755)
    b.process["env"] = ["PATH=/opt/tools:/bin", "FOO=bar=baz"]
    b.write()
    assert run_in(runtime, b, cid) == "hello:a b:c:bar=baz:/root:/opt/tools:/bin\n"


def test_absolute_executable_and_home_from_env(runtime, make_bundle, cid):
    b = make_bundle("/bin/sh", "-c", "echo $HOME")
    b.process["env"].append("HOME=/custom")
    b.write()
    assert run_in(runtime, b, cid) == "/custom\n"


def test_cwd(runtime, make_bundle, cid):
    b = make_bundle("pwd")
    b.process["cwd"] = "/etc"
    b.write()
    assert run_in(runtime, b, cid) == "/etc\n"


def test_user_groups_umask(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "id; umask; echo $HOME; touch /tmp/f; stat -c %a /tmp/f")
    b.config["root"]["readonly"] = False
    b.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [2000, 3000], "umask": 0o027}
    b.write()
    lines = run_in(runtime, b, cid).splitlines()
    assert lines[0] == "uid=1000(app) gid=1000(app) groups=2000(extra),3000"
    assert lines[1:] == ["0027", "/tmp", "640"]


def test_user_without_groups_has_none(runtime, make_bundle, cid):
    b = make_bundle("cat", "/proc/self/status")
    b.process["user"] = {"uid": 65534, "gid": 65534}
    b.write()
    status = dict(line.split(":", 1) for line in run_in(runtime, b, cid).splitlines())
    assert status["Uid"].split() == ["65534"] * 4
    assert status["Gid"].split() == ["65534"] * 4
    assert status["Groups"].split() == []


def test_rlimits(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c")
    b.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 800},
                            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    b.write()
    assert run_in(runtime, b, cid).split() == ["512", "800", "0"]


def test_oom_score_adj_from_outside(runtime, make_bundle, cid):
    with open("/proc/self/oom_score_adj") as f:
        current = int(f.read())
    want = min(1000, max(current, 0) + 123)
    b = make_bundle("cat", "/proc/self/oom_score_adj")
    b.process["oomScoreAdj"] = want
    b.write()
    assert create(runtime, b, cid)[0] == 0
    pid = runtime.state(cid)["pid"]
    with open(f"/proc/{pid}/oom_score_adj") as f:
        assert int(f.read()) == want
    assert runtime.run("start", cid).rc == 0


def test_only_stdio_fds_reach_the_process(runtime, make_bundle, cid):
    b = make_bundle("ls", "/proc/self/fd")
    r = subprocess.run(runtime.argv("run", "-b", str(b.path), cid), capture_output=True, text=True,
                       pass_fds=(os.open("/dev/null", os.O_RDONLY),), timeout=60)
    assert r.returncode == 0, r.stderr
    # 0, 1, 2 and the fd `ls` opened to read the directory
    assert sorted(r.stdout.split(), key=int)[:3] == ["0", "1", "2"]
    assert len(r.stdout.split()) == 4, r.stdout


def test_no_new_privileges(runtime, make_bundle, cid):
    b = make_bundle("grep", "NoNewPrivs", "/proc/self/status")
    assert run_in(runtime, b, cid).split() == ["NoNewPrivs:", "1"]
    b.process["noNewPrivileges"] = False
    b.write()
    assert run_in(runtime, b, cid + "-2").split() == ["NoNewPrivs:", "0"]


@pytest.mark.requires("userns")
def test_user_namespace_bind_sources_the_mapped_root_cannot_reach(runtime, open_bundle, cid, tmp_path):
    """Bind sources under a 0700 host directory: the init's mapped root could not reach them; the
    runtime clones them before the init enters the user namespace (as runc's mount sources), and
    the options still apply."""
    secret = tmp_path / "secret"  # tmp_path is 0700 root: unreachable for uid 100000
    (secret / "dir").mkdir(parents=True)
    (secret / "dir" / "in").write_text("in dir\n")
    (secret / "file").write_text("a file\n")
    # targets that exist in the rootfs: the mapped root cannot create them in a root-owned rootfs
    b = open_bundle("sh", "-c", "cat /root/in /etc/group; grep ' /root ' /proc/self/mountinfo;"
                    " touch /root/x 2>/dev/null || echo read-only")
    b.linux["namespaces"].append({"type": "user"})
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.config["mounts"] += [
        {"destination": "/root", "type": "bind", "source": str(secret / "dir"), "options": ["rbind", "ro"]},
        {"destination": "/etc/group", "type": "bind", "source": str(secret / "file"), "options": ["bind"]}]
    b.write()
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[:2] == ["in dir", "a file"]
    assert lines[2].split()[5].split(",")[0] == "ro"
    assert lines[3] == "read-only"


@pytest.mark.requires("userns")
@pytest.mark.parametrize("userns", [True, False])
def test_idmapped_bind_mounts(runtime, open_bundle, cid, tmp_path, userns):
    """`idmap` bind mounts: a host file owned by 1000 shows as 1000 inside a user namespace
    mapping 0 -> 100000 (the container's mappings), as 7 through a mount's own mappings
    (1000 -> 100007); without idmap it is the overflow id; on the host it stays 1000."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "owned").write_text("x")
    os.chown(src / "owned", 1000, 1000)
    os.chmod(tmp_path, 0o755)
    b = open_bundle("sh", "-c", "for d in a b c; do stat -c '%u %g' /tmp/$d/owned 2>/dev/null || echo -; done")
    own = {"uidMappings": [{"containerID": 1000, "hostID": 100007, "size": 1}],
           "gidMappings": [{"containerID": 1000, "hostID": 100008, "size": 1}]}
    b.config["mounts"] += [
        {"destination": "/tmp/a", "type": "bind", "source": str(src), "options": ["rbind"]},
        {"destination": "/tmp/c", "type": "bind", "source": str(src), "options": ["rbind", "idmap"], **own}]
    if userns:
        b.linux["namespaces"].append({"type": "user"})
        b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        b.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        b.config["mounts"].append(
            {"destination": "/tmp/b", "type": "bind", "source": str(src), "options": ["rbind", "idmap"]})
    b.write()
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc == 0, r.err
    if userns:
        assert r.out.splitlines() == ["65534 65534", "1000 1000", "7 8"]
    else:  # no user namespace: the mount's mapping shows the host ids it maps to
        assert r.out.splitlines() == ["1000 1000", "-", "100007 100008"]
    st = os.stat(src / "owned")
    assert (st.st_uid, st.st_gid) == (1000, 1000)


def test_idmap_on_a_non_bind_mount_is_refused(runtime, make_bundle, cid):
    b = make_bundle("true")
    b.config["mounts"].append({"destination": "/x", "type": "tmpfs", "source": "tmpfs",
                               "options": ["idmap"], "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
                               "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]})
    b.write()
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc == 1 and "mounts[7].options: idmapped mounts are bind mounts" in r.err, r.err
    assert not (runtime.root / cid).exists()


# --- signals --------------------------------------------------------------------------------------
_IGNORING_PARENT = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
nr = 13 if os.uname().machine == "x86_64" else 134  # rt_sigaction
for sig in (10, 32):  # SIGUSR1, and glibc's own SIGCANCEL, which only the raw call can set
    act = (ctypes.c_uint64 * 4)(1, 0, 0, 0)  # SIG_IGN
    assert libc.syscall(nr, sig, act, None, 8) == 0, ctypes.get_errno()
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_the_workload_inherits_no_ignored_signal(runtime, make_bundle, cid):
    """A Go parent (containerd) can leave even signal 32 ignored; ignored survives execve."""
    b = make_bundle("grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status")
    argv = runtime.argv("run", "-b", str(b.path), cid)
    r = subprocess.run([sys.executable, "-c", _IGNORING_PARENT, *argv], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["SigBlk:", "0" * 16, "SigIgn:", "0" * 16], r.stdout
