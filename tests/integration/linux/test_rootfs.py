"""The container's filesystem: root, mounts, /dev, masked and read-only paths, sysctl.

Facts come from busybox inside (/proc/self/mountinfo, stat, writes that must fail) and from the
host (its mount table and directories must be untouched).
"""

from __future__ import annotations

import os
import subprocess

import pytest
from proc_helpers import run_in

pytestmark = pytest.mark.requires("root", "busybox")


def host_mounts(*words):
    """Host mounts whose mountinfo line names one of `words` (others' tests mount things too)."""
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if any(w in line for w in words)]


def mountinfo(out):
    """mount point -> (mount options, optional fields, fstype, super options) from mountinfo text."""
    table = {}
    for line in out.splitlines():
        pre, _, post = line.partition(" - ")
        f, p = pre.split(), post.split()
        table[f[4]] = (f[5].split(","), f[6:], p[0], p[2].split(","))
    return table


def edit_mount(bundle, dest, **kw):
    for m in bundle.config["mounts"]:
        if m["destination"] == dest:
            m.update(kw)


# --- root ---------------------------------------------------------------------------------------
def test_readonly_root_with_tmpfs_tmp(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "touch /x 2>/dev/null && echo root-rw || echo root-ro;"
                    " touch /tmp/x && echo tmp-rw")
    b.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "nodev"]})
    b.write()
    assert run_in(runtime, b, cid) == "root-ro\ntmp-rw\n"
    assert not (b.rootfs / "x").exists()


def test_writable_root(runtime, make_bundle, cid):
    b = make_bundle("touch", "/made-inside")
    b.config["root"]["readonly"] = False
    b.write()
    run_in(runtime, b, cid)
    assert (b.rootfs / "made-inside").exists()


def test_absolute_root_path(runtime, make_bundle, cid):
    b = make_bundle("cat", "/marker")
    (b.rootfs / "marker").write_text("abs\n")
    b.config["root"]["path"] = str(b.rootfs)
    b.write()
    assert run_in(runtime, b, cid) == "abs\n"
    assert runtime.run("run", "--keep", "-b", str(b.path), cid + "-k").rc == 0
    assert runtime.state(cid + "-k")["rootfs"] == str(b.rootfs)


def test_relative_root_path_other_name(runtime, make_bundle, cid):
    b = make_bundle("cat", "/marker")
    (b.rootfs / "marker").write_text("rel\n")
    b.rootfs.rename(b.path / "fs")
    b.config["root"]["path"] = "./fs"
    b.write()
    assert run_in(runtime, b, cid) == "rel\n"


@pytest.mark.parametrize("prop,field", [("shared", "shared:"), ("private", None),
                                        ("unbindable", "unbindable"), ("runbindable", "unbindable"),
                                        ("slave", None), ("rslave", None)])
def test_rootfs_propagation(runtime, make_bundle, cid, prop, field):
    b = make_bundle("cat", "/proc/self/mountinfo")
    b.linux["rootfsPropagation"] = prop
    b.write()
    opt_fields = mountinfo(run_in(runtime, b, cid))["/"][1]
    if field is None:
        assert opt_fields == [], opt_fields
    else:
        assert any(x.startswith(field) for x in opt_fields), opt_fields


def test_no_pivot(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "cat /marker; ls /")
    (b.rootfs / "marker").write_text("nopivot\n")
    r = runtime.run("run", "--no-pivot", "-b", str(b.path), cid)
    assert r.rc == 0, r
    lines = r.out.split()
    assert lines[0] == "nopivot" and "bin" in lines and "etc" in lines


# --- mounts -------------------------------------------------------------------------------------
def test_bind_relative_source_and_ro(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "cat /data/f; echo more >> /data/f && echo wrote;"
                    " echo x > /rodata/f 2>/dev/null || echo ro-refused; cat /one-file")
    (b.path / "data").mkdir()
    (b.path / "data" / "f").write_text("hello\n")
    (b.path / "single").write_text("single\n")
    b.config["mounts"] += [
        {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "rw"]},
        {"destination": "/rodata", "type": "bind", "source": "./data", "options": ["bind", "ro"]},
        {"destination": "/one-file", "source": "single", "options": ["bind"]},
    ]
    b.write()
    assert run_in(runtime, b, cid) == "hello\nwrote\nro-refused\nsingle\n"
    assert (b.path / "data" / "f").read_text() == "hello\nmore\n"


def test_tmpfs_options_visible(runtime, make_bundle, cid):
    b = make_bundle("cat", "/proc/self/mountinfo")
    b.config["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "noexec", "mode=1770", "size=1m", "uid=1000"]})
    b.write()
    opts, _, fstype, sopts = mountinfo(run_in(runtime, b, cid))["/scratch"]
    assert fstype == "tmpfs"
    assert {"nosuid", "noexec"} <= set(opts)
    assert {"mode=1770", "size=1024k", "uid=1000"} <= set(sopts)


def test_default_filesystems(runtime, make_bundle, cid):
    b = make_bundle("cat", "/proc/self/mountinfo")
    table = mountinfo(run_in(runtime, b, cid))
    assert table["/proc"][2] == "proc"
    assert table["/sys"][2] == "sysfs" and "ro" in table["/sys"][0]
    assert table["/dev"][2] == "tmpfs"
    assert {"mode=755"} <= set(table["/dev"][3])
    pts = table["/dev/pts"]
    assert pts[2] == "devpts" and {"mode=620", "ptmxmode=666", "gid=5"} <= set(pts[3])
    assert table["/dev/shm"][2] == "tmpfs" and {"nodev", "noexec", "nosuid"} <= set(table["/dev/shm"][0])
    assert table["/dev/mqueue"][2] == "mqueue"
    cgroups = {mp: v for mp, v in table.items() if mp.startswith("/sys/fs/cgroup")}
    assert cgroups, "no cgroup mount"
    assert all("ro" in v[0] for v in cgroups.values()), cgroups


def test_cgroup_mount_shows_own_cgroup(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "ls /sys/fs/cgroup/memory/ | grep -c '^memory.limit_in_bytes$';"
                    " echo 1 > /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || echo ro")
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        pytest.skip("needs a cgroup v1 memory hierarchy")
    assert run_in(runtime, b, cid) == "1\nro\n"


def test_bind_propagation_option(runtime, make_bundle, cid, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    b = make_bundle("cat", "/proc/self/mountinfo")
    b.config["mounts"].append({"destination": "/shared", "type": "bind", "source": str(src),
                               "options": ["rbind", "rshared"]})
    b.write()
    assert any(x.startswith("shared:") for x in mountinfo(run_in(runtime, b, cid))["/shared"][1])


def test_rro_makes_submounts_readonly(runtime, make_bundle, cid, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "lc-rro", str(src / "sub")], check=True)
    try:
        b = make_bundle("sh", "-c", "touch /r/a 2>/dev/null || echo top-ro;"
                        " touch /r/sub/a 2>/dev/null || echo sub-ro; touch /w/sub/a && echo sub-rw")
        b.config["mounts"] += [
            {"destination": "/r", "type": "bind", "source": str(src), "options": ["rbind", "rro"]},
            {"destination": "/w", "type": "bind", "source": str(src), "options": ["rbind", "ro"]},
        ]
        b.write()
        # plain `ro` applies to the top mount only (runc and the kernel agree); `rro` to all
        assert run_in(runtime, b, cid) == "top-ro\nsub-ro\nsub-rw\n"
    finally:
        subprocess.run(["umount", str(src / "sub")], check=True)


def test_symlink_in_rootfs_cannot_reach_host(runtime, make_bundle, cid, tmp_path):
    # rootfs/evil -> <host dir> (absolute) and rootfs/abs -> /../../<host dir>: both must
    # resolve as if the rootfs were /, so the mounts land on <rootfs>/<host dir>/...
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    b = make_bundle("sh", "-c", f"grep -c ' {hostdir}/x ' /proc/self/mountinfo;"
                    f" grep -c ' {hostdir}/sub ' /proc/self/mountinfo")
    (b.rootfs / "evil").symlink_to(hostdir)
    (b.rootfs / "abs").symlink_to("/../../../../" + str(hostdir))
    b.config["root"]["readonly"] = False
    b.config["mounts"] += [
        {"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
        {"destination": "/abs/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
    ]
    b.write()
    out = run_in(runtime, b, cid).split()
    assert host_mounts(str(hostdir), str(b.path)) == []
    assert list(hostdir.iterdir()) == []
    assert out == ["1", "1"]


# --- /dev ---------------------------------------------------------------------------------------
def test_default_devices(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "for d in null zero full random urandom tty; do"
                    " stat -c '%n %F %t:%T %a' /dev/$d; done")
    assert run_in(runtime, b, cid).splitlines() == [
        f"/dev/{name} character special file {mj}:{mn} 666"
        for name, mj, mn in [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                             ("urandom", 1, 9), ("tty", 5, 0)]]


def test_dev_symlinks_pts_shm(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done;"
                    " stat -c '%F %a' /dev/shm; echo x > /dev/shm/f && echo shm-ok;"
                    " ls /dev/fd/ >/dev/null && echo fd-ok")
    assert run_in(runtime, b, cid).splitlines() == [
        "/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2", "pts/ptmx",
        "directory 1777", "shm-ok", "fd-ok"]


def test_devpts_is_a_new_instance(runtime, make_bundle, cid):
    # the host's ptys are not in the container's /dev/pts
    b = make_bundle("ls", "/dev/pts")
    assert run_in(runtime, b, cid).split() == ["ptmx"]


def test_linux_devices(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "stat -c '%F %t:%T %a %u %g' /dev/mydev /dev/sub/blk")
    b.linux["devices"] = [
        {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640,
         "uid": 1000, "gid": 2000},
        # a trailing slash names the same node, as runc cleans the path
        {"path": "/dev/sub/blk/", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600},
    ]
    b.write()
    assert run_in(runtime, b, cid).splitlines() == [
        "character special file 1:3 640 1000 2000", "block special file 7:c8 600 0 0"]


# --- masked and read-only paths, sysctl -------------------------------------------------------------
def test_masked_paths(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "wc -c < /etc/secret; ls -A /etc/secretdir | wc -l;"
                    " wc -c < /proc/timer_list; echo x > /etc/secret 2>/dev/null || echo file-ro;"
                    " touch /etc/secretdir/y 2>/dev/null || echo dir-ro")
    (b.rootfs / "etc" / "secret").write_text("password\n")
    (b.rootfs / "etc" / "secretdir").mkdir()
    (b.rootfs / "etc" / "secretdir" / "key").write_text("key\n")
    b.config["root"]["readonly"] = False
    b.linux["maskedPaths"] += ["/etc/secret", "/etc/secretdir", "/does/not/exist"]
    b.write()
    # a masked file is /dev/null: writes vanish; a masked dir is a read-only empty tmpfs
    assert run_in(runtime, b, cid).split() == ["0", "0", "0", "dir-ro"]
    assert (b.rootfs / "etc" / "secret").read_text() == "password\n"


def test_readonly_paths(runtime, make_bundle, cid):
    b = make_bundle("sh", "-c", "touch /etc/x 2>/dev/null || echo etc-ro; touch /root/x && echo root-rw;"
                    " echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null || echo sys-ro")
    b.config["root"]["readonly"] = False
    b.linux["readonlyPaths"] += ["/etc", "/missing"]
    b.write()
    assert run_in(runtime, b, cid) == "etc-ro\nroot-rw\nsys-ro\n"


def test_sysctl_in_new_netns(runtime, make_bundle, cid):
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host = f.read()
    b = make_bundle("cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/msgmax")
    b.linux["sysctl"] = {"net.ipv4.ip_forward": "1" if host.strip() == "0" else "0",
                         "kernel.msgmax": "12345"}
    b.write()
    assert run_in(runtime, b, cid).split() == ["1" if host.strip() == "0" else "0", "12345"]
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read() == host


def test_tmpcopyup_fills_the_tmpfs_with_what_it_covers(runtime, make_bundle, cid) -> None:  # type: ignore[no-untyped-def]
    """runc's tmpcopyup (podman --tmpfs): the tmpfs starts with a copy of the covered directory,
    owners, modes and symlinks kept; writes stay in the tmpfs, not in the bundle."""
    b = make_bundle("sh", "-c", "grep -c root /etc/passwd; stat -c '%a %u' /etc/secret; "
                    "readlink /etc/link; touch /etc/new && echo wrote; grep -c tmpfs /proc/mounts")
    (b.rootfs / "etc" / "secret").write_text("s")
    os.chmod(b.rootfs / "etc" / "secret", 0o640)
    os.chown(b.rootfs / "etc" / "secret", 1000, 0)
    (b.rootfs / "etc" / "link").symlink_to("/nowhere")
    b.config["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                               "options": ["tmpcopyup", "nosuid", "mode=755"]})
    b.write()
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc == 0, r.err
    lines = r.out.split()
    assert lines[:5] == ["1", "640", "1000", "/nowhere", "wrote"], r.out
    assert not (b.rootfs / "etc" / "new").exists()


def test_idmap_mounts_are_refused_clearly(runtime, make_bundle, cid) -> None:  # type: ignore[no-untyped-def]
    b = make_bundle("true")
    b.config["mounts"].append({"destination": "/mnt", "type": "bind", "source": "/tmp",
                               "options": ["rbind", "idmap"]})
    b.write()
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc == 1
    assert "idmap" in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (runtime.root / cid).exists()


def test_racing_symlink_swap_never_reaches_the_host(runtime, make_bundle, tmp_path):
    """CVE-2021-30465 / CVE-2024-45310: while containers are created, another process keeps
    swapping rootfs/race between a real directory and a symlink to a host directory. Every mount
    point, mkdir and mount must still land inside the rootfs: the host directory stays empty and
    gets no mount, whatever the interleaving."""
    import threading

    hostdir = tmp_path / "host-target"
    hostdir.mkdir()
    b = make_bundle("true")
    b.config["root"]["readonly"] = False
    b.config["mounts"] += [
        {"destination": "/race/deep/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
        {"destination": "/race/file", "type": "bind", "source": str(b.path / "config.json"),
         "options": ["bind", "ro"]},
    ]
    b.write()
    race, real, link = b.rootfs / "race", b.rootfs / "race-real", b.rootfs / "race-link"
    real.mkdir()
    link.symlink_to(hostdir)
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            for src in (real, link):  # rename(2) is atomic, as an attacker would use it
                try:
                    os.rename(src, race)  # race: now the real directory, now the symlink
                    os.rename(race, src)
                except OSError:
                    pass

    t = threading.Thread(target=swap, daemon=True)
    t.start()
    results = []
    try:
        for i in range(20):
            results.append(runtime.run("run", "-b", str(b.path), f"race-{os.getpid()}-{i}").rc)
    finally:
        stop.set()
        t.join(10)
    assert host_mounts(str(hostdir), str(b.path)) == []
    assert list(hostdir.iterdir()) == []
    # each run either worked (inside the rootfs) or failed cleanly: never a traceback, never 127
    assert set(results) <= {0, 1}, results


@pytest.mark.parametrize("cgroupns", [False, True])
@pytest.mark.parametrize("ro", [False, True])
def test_cgroup_mount_flags_reach_every_hierarchy(runtime, make_bundle, cid, cgroupns, ro):
    """nosuid, nodev, noexec and ro of a `cgroup` mount apply to each hierarchy under it, bound
    (no cgroup namespace) or mounted (with one), as runc applies them."""
    b = make_bundle("cat", "/proc/self/mountinfo")
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    b.config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                               "options": ["nosuid", "noexec", "nodev", "relatime", "ro" if ro else "rw"]})
    b.linux["namespaces"] = [n for n in b.linux["namespaces"] if n["type"] != "cgroup"]
    if cgroupns:
        b.linux["namespaces"].append({"type": "cgroup"})
    b.write()
    table = mountinfo(run_in(runtime, b, cid))
    subs = [mp for mp in table if mp.startswith("/sys/fs/cgroup/")]
    assert subs
    for mp in subs:
        opts = table[mp][0]
        assert {"nosuid", "nodev", "noexec"} <= set(opts), (mp, opts)
        assert ("ro" if ro else "rw") in opts, (mp, opts)


def test_read_only_dev(runtime, make_bundle, cid):
    """A `ro` /dev tmpfs gets its nodes and links first, then turns read-only (runc's order);
    /dev/pts and /dev/shm under it keep their own flags."""
    b = make_bundle("sh", "-c", "cat /proc/self/mountinfo; ls /dev >&2; touch /dev/x || echo dev-ro >&2")
    for m in b.config["mounts"]:
        if m["destination"] == "/dev":
            m["options"] = [*m["options"], "ro"]
    b.write()
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc == 0, r.err
    table = mountinfo(r.out)
    assert "ro" in table["/dev"][0]
    assert "rw" in table["/dev/shm"][0] and "rw" in table["/dev/pts"][0]
    for node in ("null", "zero", "ptmx", "stdout", "pts", "shm"):
        assert node in r.err.split(), r.err
    assert "dev-ro" in r.err
