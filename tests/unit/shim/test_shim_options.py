"""The runtime options (pyrunc.shim.options), the shim's placement (OOM score, shim_cgroup), the
stdio pipes' owner, and the launcher's fast `delete`: no containerd, no root."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from pyrunc.shim import messages as m
from pyrunc.shim import options, placement, stdio, ttrpc, wire

LAUNCHER = Path(__file__).resolve().parents[3] / "bin" / "containerd-shim-pyrunc-v2"


def _any(type_url: str, table: wire.Table, msg: wire.Msg) -> wire.Msg:
    return {"type_url": type_url, "value": wire.encode(table, msg)}


def test_no_options_are_all_off() -> None:
    opts = options.decode({})
    assert (opts.no_pivot_root, opts.systemd_cgroup, opts.root, opts.io_owner) == \
        (False, False, "", None)
    assert options.from_bytes(b"").root == ""


def test_runc_options_are_read() -> None:
    opts = options.decode(_any(m.RUNC_OPTIONS_TYPE, m.RUNC_OPTIONS, {
        "no_pivot_root": True, "no_new_keyring": True, "systemd_cgroup": True,
        "root": "/run/elsewhere", "shim_cgroup": "/shims", "io_uid": 1000, "io_gid": 1001,
        "binary_name": "/usr/local/bin/pyrunc"}))
    assert (opts.no_pivot_root, opts.no_new_keyring, opts.systemd_cgroup) == (True, True, True)
    assert (opts.root, opts.shim_cgroup, opts.io_owner) == ("/run/elsewhere", "/shims", (1000, 1001))


def test_start_reads_the_same_any_from_bytes() -> None:
    data = wire.encode(m.ANY, _any("types.containerd.io/" + m.LINUX_CREATE_OPTIONS_TYPE,
                                   m.LINUX_CREATE_OPTIONS, {"no_pivot_root": True, "io_gid": 7}))
    opts = options.from_bytes(data)
    assert (opts.no_pivot_root, opts.io_owner) == (True, (0, 7))


@pytest.mark.parametrize("type_url, table, msg, field", [
    (m.RUNC_OPTIONS_TYPE, m.RUNC_OPTIONS, {"binary_name": "/usr/sbin/runc"}, "binary_name"),
    (m.RUNC_OPTIONS_TYPE, m.RUNC_OPTIONS, {"criu_path": "/usr/sbin/criu"}, "criu_path"),
    (m.RUNC_OPTIONS_TYPE, m.RUNC_OPTIONS, {"root": "relative/dir"}, "root"),
    (m.LINUX_CREATE_OPTIONS_TYPE, m.LINUX_CREATE_OPTIONS, {"open_tcp": True}, "open_tcp"),
    (m.CRI_RUNTIME_OPTIONS_TYPE, m.CRI_RUNTIME_OPTIONS, {"config_path": "/etc/x.toml"},
     "config_path"),
    ("example.com/Other", m.RUNC_OPTIONS, {"root": "/x"}, "type_url"),
])
def test_what_pyrunc_cannot_do_is_refused_by_name(type_url: str, table: wire.Table,
                                                  msg: wire.Msg, field: str) -> None:
    with pytest.raises(ttrpc.RpcError) as err:
        options.decode(_any(type_url, table, msg))
    assert err.value.code == ttrpc.INVALID_ARGUMENT
    assert err.value.message.startswith(f"options.{field}: ")


def test_cri_options_without_a_config_file_are_accepted() -> None:
    opts = options.decode(_any(m.CRI_RUNTIME_OPTIONS_TYPE, m.CRI_RUNTIME_OPTIONS,
                               {"type_url": "x"}))
    assert opts.root == ""


def test_garbage_is_refused() -> None:
    with pytest.raises(ttrpc.RpcError, match="options.value: "):
        options.decode({"type_url": m.RUNC_OPTIONS_TYPE, "value": b"\x0a\xff"})


def test_root_option_round_trips_through_the_bundle(tmp_path: Path) -> None:
    assert options.read_root(str(tmp_path)) == ""
    options.write_root(str(tmp_path), "/run/other-root")
    assert options.read_root(str(tmp_path)) == "/run/other-root"


@pytest.mark.parametrize("parent, shim", [(0, 1), (-999, -998), (1000, 1000), (-1000, -999)])
def test_shim_oom_score_is_containerds_plus_one(parent: int, shim: int) -> None:
    assert placement.shim_score(parent) == shim


def test_adjust_oom_score_of_a_child(monkeypatch: pytest.MonkeyPatch) -> None:
    with open("/proc/self/oom_score_adj") as f:
        ours = int(f.read())
    if ours >= 1000:
        pytest.skip("already at the maximum score")
    child = subprocess.Popen(["sleep", "30"])
    try:
        # the child plays the shim, we play containerd: its score becomes ours + 1
        monkeypatch.setattr(placement.os, "getppid", os.getpid)
        placement.adjust_oom_score(child.pid)
        assert Path(f"/proc/{child.pid}/oom_score_adj").read_text() == f"{ours + 1}\n"
    finally:
        child.kill()
        child.wait()


def test_join_cgroup_writes_every_v1_hierarchy_that_has_the_path(tmp_path: Path) -> None:
    for h in ("memory", "pids", "cpu,cpuacct"):
        (tmp_path / h / "shims").mkdir(parents=True)
        (tmp_path / h / "shims" / "cgroup.procs").write_text("")
    (tmp_path / "devices").mkdir()  # not there: skipped, as containerd's cgroups.Load skips it
    (tmp_path / "cpu").symlink_to("cpu,cpuacct")
    done = placement.join_cgroup(4321, "/shims", root=str(tmp_path))
    assert sorted(Path(p).parent.parent.name for p in done) == ["cpu,cpuacct", "memory", "pids"]
    assert (tmp_path / "memory" / "shims" / "cgroup.procs").read_text() == "4321"


def test_join_cgroup_refuses_a_missing_or_bad_path(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    with pytest.raises(ttrpc.RpcError, match=r"options.shim_cgroup: '/nope': no such cgroup"):
        placement.join_cgroup(1, "/nope", root=str(tmp_path))
    with pytest.raises(ttrpc.RpcError, match="options.shim_cgroup: '/a/../b'"):
        placement.join_cgroup(1, "/a/../b", root=str(tmp_path))


def test_io_owner_gives_the_process_owned_pipes(tmp_path: Path) -> None:
    out, err = tmp_path / "out", tmp_path / "err"
    os.mkfifo(out)
    os.mkfifo(err)
    owner = (os.getuid(), os.getgid())
    fds, shim_side = stdio.child_fds("", str(out), str(err), False, owner)
    try:
        assert len(shim_side) == 6  # stdin's two (none here), then (pipe, FIFO) twice
        for fd in fds[1:]:
            st = os.fstat(fd)
            assert (st.st_uid, st.st_gid) == owner
            assert not os.path.samestat(st, os.stat(out))  # a pipe, not the FIFO itself
    finally:
        stdio.close_all(fds + shim_side)


def _fast_delete(bundle: Path, namespace: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(LAUNCHER), "-namespace", namespace, "-address", "/run/x.sock",
                           "-publish-binary", "/usr/bin/containerd", "-id", "gone-1",
                           "-bundle", str(bundle), "delete"], capture_output=True,
                          stdin=subprocess.DEVNULL, check=True, timeout=30)


def test_launcher_answers_delete_of_a_deleted_task_itself(tmp_path: Path) -> None:
    """containerd runs `delete` after every task; with nothing left, sh answers, as Python would."""
    (tmp_path / "rootfs").mkdir()
    done = _fast_delete(tmp_path, "unit-" + uuid.uuid4().hex[:8])
    resp = wire.decode(m.DELETE_RESPONSE, done.stdout)
    assert resp["exit_status"] == 137
    assert abs(wire.num(wire.sub(resp, "exited_at"), "seconds") - time.time()) < 5


def test_launcher_leaves_a_task_with_a_root_option_to_python(tmp_path: Path) -> None:
    """options.json (a `root` option) sends `delete` to Python, which reads that root; here its
    state dir does not exist, and the answer is the same DeleteResponse, with nanoseconds."""
    options.write_root(str(tmp_path), str(tmp_path / "state"))
    done = _fast_delete(tmp_path, "unit-" + uuid.uuid4().hex[:8])
    resp = wire.decode(m.DELETE_RESPONSE, done.stdout)
    assert resp["exit_status"] == 137
    assert "nanos" in wire.sub(resp, "exited_at")  # sh writes whole seconds only


def test_idle_exit_removes_the_info_file_first_and_a_connection_cancels_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyrunc.shim import daemon
    from pyrunc.shim.loop import Loop

    monkeypatch.setattr(daemon, "GRACE", 0.2)
    sock, info = tmp_path / "sock", tmp_path / "shim.info"
    sock.write_text("")  # stands for the socket file: unlinked by inode
    loop = Loop()
    life = daemon.Lifetime(loop, str(sock), 0.1)
    life.ino = sock.stat().st_ino
    life.publish(str(info), daemon.info_text("/run/c.sock", "unix:///s/x"))
    seen: list[tuple[str, bool, bool]] = []

    def connect() -> None:  # in the grace period: the info file is gone, the socket is not
        seen.append(("grace", info.exists(), sock.exists()))
        life.arm()  # what the server's on_accept does
        seen.append(("connected", info.exists(), sock.exists()))

    loop.call_later(0.2, connect)
    loop.call_later(10, lambda: setattr(loop, "stopped", True))  # a bound, should it hang
    t0 = time.monotonic()
    loop.run()
    assert time.monotonic() - t0 < 5
    assert seen == [("grace", False, True), ("connected", True, True)]
    assert not info.exists() and not sock.exists()  # idle again, grace again, then gone


def test_info_is_one_line_of_four_words() -> None:
    from pyrunc.shim import daemon

    words = daemon.info_text("/run/containerd/containerd.sock", "unix:///run/containerd/s/ab")
    addr, sock, pid, start = words.split()
    assert (addr, sock, pid) == ("/run/containerd/containerd.sock",
                                 "unix:///run/containerd/s/ab", str(os.getpid()))
    stat = Path("/proc/self/stat").read_text()
    assert start == stat[stat.rindex(")") + 2:].split()[19]


def test_events_go_one_at_a_time_in_order_without_blocking_the_loop(tmp_path: Path) -> None:
    """A fake containerd answers each Forward 0.2 s late: the loop goes on meanwhile, the next
    event leaves only after the answer, and all arrive in order."""
    import socket
    import threading

    from pyrunc.shim.events import Publisher
    from pyrunc.shim.loop import Loop

    path = str(tmp_path / "events.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    received: list[tuple[str, str]] = []  # (topic, container id), in arrival order
    in_flight_max = [0]

    def containerd() -> None:
        conn, _ = listener.accept()
        frames = ttrpc.Frames()
        pending = 0
        while len(received) < 3:
            data = conn.recv(65536)
            if not data:
                return
            for stream, _kind, body in frames.feed(data):
                pending += 1
                in_flight_max[0] = max(in_flight_max[0], pending)
                req = wire.decode(m.REQUEST, body)
                fwd = wire.decode(m.FORWARD_REQUEST, wire.raw(req, "payload"))
                env = wire.sub(fwd, "envelope")
                event = wire.decode(m.TASK_START, wire.raw(wire.sub(env, "event"), "value"))
                received.append((wire.text(env, "topic"), wire.text(event, "container_id")))
                time.sleep(0.2)
                pending -= 1
                conn.sendall(ttrpc.frame(stream, ttrpc.RESPONSE, ttrpc.response(b"")))
        conn.close()

    server = threading.Thread(target=containerd, daemon=True)
    server.start()
    loop = Loop()
    pub = Publisher(loop, "unix://" + path, "ns")
    for cid in ("a", "b", "c"):
        pub.publish("TaskStart", {"container_id": cid, "pid": 1})
    pub.flush()  # the idle step after the call that published them
    ticks: list[int] = []  # in_flight seen by a timer that fires while containerd is answering
    loop.call_later(0.1, lambda: ticks.append(pub.in_flight))
    loop.call_later(10, lambda: setattr(loop, "stopped", True))
    loop.idle.append(lambda: setattr(loop, "stopped", loop.stopped or not pub.queue))
    loop.run()
    server.join(5)
    listener.close()
    assert received == [("/tasks/start", "a"), ("/tasks/start", "b"), ("/tasks/start", "c")]
    assert in_flight_max == [1]
    assert ticks and ticks[0] != 0  # the loop ran a timer while the first event was in flight
