"""The shim's parts that need no containerd and no root: flags, addresses, the ttrpc server and
client over a real unix socket, deferred replies, stdio pumps, metrics, exit statuses."""

from __future__ import annotations

import _socket
import os
import threading
from pathlib import Path

import pytest

from pyrunc.shim import main, metrics, ttrpc, wire
from pyrunc.shim import messages as m
from pyrunc.shim.loop import Loop
from pyrunc.shim.server import Reply, Server
from pyrunc.shim.stdio import Pump
from pyrunc.shim.task import exit_code


def test_flags_as_containerd_passes_them() -> None:
    flags, action = main.parse(["-namespace", "k8s.io", "-address", "/run/c.sock",
                                "-publish-binary", "/usr/bin/containerd", "-id", "abc",
                                "-debug", "start"])
    assert action == "start"
    assert flags == {"namespace": "k8s.io", "address": "/run/c.sock",
                     "publish-binary": "/usr/bin/containerd", "id": "abc", "debug": "true"}
    flags, action = main.parse(["--namespace=n", "-bundle", "/b", "delete"])
    assert (flags, action) == ({"namespace": "n", "bundle": "/b"}, "delete")


@pytest.mark.parametrize("argv, message", [
    (["-nope", "x", "start"], "flag provided but not defined: -nope"),
    (["-namespace"], "flag needs an argument: -namespace"),
])
def test_bad_flags_are_named(argv: list[str], message: str) -> None:
    with pytest.raises(main.UsageError, match=message):
        main.parse(argv)


def test_main_refuses_without_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["-id", "x", "start"]) == 1
    assert capsys.readouterr().err == f"{main.NAME}: shim namespace cannot be empty\n"


def test_one_socket_per_containerd_and_namespace() -> None:
    a = main.socket_address("/run/containerd/containerd.sock", "default")
    assert a == main.socket_address("/run/containerd/containerd.sock/", "default")
    assert a != main.socket_address("/run/containerd/containerd.sock", "k8s.io")
    assert a != main.socket_address("/tmp/other.sock", "default")
    assert a.startswith("unix:///run/containerd/s/") and len(a) - len("unix://") < 106


def test_write_address_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "address"
    target.write_text("old")
    main.write_address(str(target), "unix:///run/containerd/s/x")
    assert target.read_text() == "unix:///run/containerd/s/x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["address"]


@pytest.mark.parametrize("status, code", [(0, 0), (3 << 8, 3), (9, 137), (15, 143)])
def test_exit_codes_as_containerd_reports_them(status: int, code: int) -> None:
    assert exit_code(status) == code


# --- ttrpc over a real socket ------------------------------------------------------------------------
def _serve(tmp_path: Path, handlers: dict[str, object]) -> tuple[Loop, str]:
    path = str(tmp_path / "s.sock")
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(8)
    loop = Loop()
    server = Server(loop, sock)
    server.register("test.Svc", handlers)  # type: ignore[arg-type]
    loop.call_later(20, lambda: setattr(loop, "stopped", True))  # never hang the suite
    return loop, "unix://" + path


def _client_calls(address: str, calls: list[tuple[str, bytes]], out: list[object]) -> None:
    client = ttrpc.Client(address, timeout=10)
    try:
        for method, payload in calls:
            try:
                out.append(client.call("test.Svc", method, payload))
            except ttrpc.RpcError as exc:
                out.append((exc.code, exc.message))
    finally:
        client.close()


def test_server_answers_errors_and_later_replies(tmp_path: Path) -> None:
    parked: list[Reply] = []
    loop_ref: list[Loop] = []

    def echo(payload: bytes, _reply: Reply) -> bytes:
        return payload[::-1]

    def fail(_payload: bytes, _reply: Reply) -> bytes:
        raise ttrpc.RpcError(ttrpc.NOT_FOUND, "no such thing")

    def later(_payload: bytes, reply: Reply) -> None:
        parked.append(reply)
        loop_ref[0].call_later(0.05, lambda: reply.ok(b"at last"))
        return None

    def stop(_payload: bytes, _reply: Reply) -> bytes:
        loop_ref[0].stopped = True
        return b""

    loop, address = _serve(tmp_path, {"Echo": echo, "Fail": fail, "Later": later, "Stop": stop})
    loop_ref.append(loop)
    out: list[object] = []
    t = threading.Thread(target=_client_calls, args=(address, [
        ("Echo", b"abc"), ("Fail", b""), ("Later", b""), ("Missing", b""), ("Stop", b"")], out))
    t.start()
    loop.run()
    t.join(10)
    assert out == [b"cba", (ttrpc.NOT_FOUND, "no such thing"), b"at last",
                   (ttrpc.UNIMPLEMENTED, "test.Svc.Missing not implemented"), b""]
    assert len(parked) == 1


# --- stdio ---------------------------------------------------------------------------------------------
def test_pump_copies_until_eof_and_closes(tmp_path: Path) -> None:
    src_r, src_w = os.pipe()
    dst_r, dst_w = os.pipe()
    loop = Loop()
    done: list[bool] = []

    def finished() -> None:
        done.append(True)
        loop.stopped = True

    Pump(loop, src_r, dst_w, done=finished)
    os.write(src_w, b"hello " * 1000)
    os.close(src_w)
    loop.call_later(10, lambda: setattr(loop, "stopped", True))
    loop.run()
    assert done == [True]
    data = b""
    while chunk := os.read(dst_r, 65536):  # EOF: the pump closed its end
        data += chunk
    os.close(dst_r)
    assert data == b"hello " * 1000


# --- metrics -------------------------------------------------------------------------------------------
def test_metrics_from_pyrunc_stats() -> None:
    stats = {
        "cpu": {"usage": {"total": 5000, "kernel": 1000, "user": 4000, "percpu": [2000, 3000]},
                "throttling": {"periods": 7}},
        "memory": {"cache": 4096, "usage": {"limit": 1 << 30, "usage": 8192, "max": 9000},
                   "swap": {"usage": 1}, "kernelTCP": {"failcnt": 2},
                   "raw": {"rss": 123, "total_rss": 456, "pgfault": 9,
                           "hierarchical_memsw_limit": 77}},
        "pids": {"current": 3, "limit": 100},
        "blkio": {"ioServiceBytesRecursive": [{"major": 8, "minor": 0, "op": "Read",
                                               "value": 512}]},
        "hugetlb": {"2MB": {"usage": 0, "max": 0, "failcnt": 1}},
    }
    msg = wire.decode(m.METRICS, wire.encode(m.METRICS, metrics.from_stats(stats, 2)))  # type: ignore[arg-type]
    assert msg["pids"] == {"current": 3, "limit": 100}
    assert msg["cpu"] == {"usage": {"total": 5000, "kernel": 1000, "user": 4000,
                                    "per_cpu": [2000, 3000]}, "throttling": {"periods": 7}}
    mem = wire.sub(msg, "memory")
    assert (mem["cache"], mem["rss"], mem["total_rss"], mem["pg_fault"]) == (4096, 123, 456, 9)
    assert mem["hierarchical_swap_limit"] == 77
    assert mem["usage"] == {"limit": 1 << 30, "usage": 8192, "max": 9000}
    assert mem["kernel_tcp"] == {"failcnt": 2}
    assert msg["blkio"] == {"io_service_bytes_recursive": [
        {"op": "Read", "major": 8, "value": 512}]}
    assert msg["hugetlb"] == [{"pagesize": "2MB", "failcnt": 1}]
    assert msg["memory_oom_control"] == {"oom_kill": 2}


def test_the_binary_imports_little_before_its_action() -> None:
    """containerd execs the binary for every container: until `start` forks the daemon, only
    main.py and the C modules it needs are loaded (the task service, pyrunc's lifecycle, json, os
    and friends load in the daemon)."""
    import subprocess
    import sys

    launcher = Path(__file__).resolve().parents[3] / "bin" / "containerd-shim-pyrunc-v2"
    done = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", str(launcher),
                           "-namespace", "n", "no-such-action"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert errors == [f"{main.NAME}: unknown action 'no-such-action': expected start or delete"]
    modules = {line.split("|")[2].strip() for line in done.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    heavy = {"os", "json", "re", "enum", "typing", "subprocess", "socket", "selectors",
             "pyrunc.shim.task", "pyrunc.shim.daemon", "pyrunc.container", "pyrunc.shim.wire"}
    assert "pyrunc.shim.main" in modules
    assert not modules & heavy, modules & heavy
