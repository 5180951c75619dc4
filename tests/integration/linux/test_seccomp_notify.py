"""SCMP_ACT_NOTIFY with listenerPath: the seccomp listener fd reaches the agent, for the init
(`run`) and for `exec`, with and without noNewPrivileges, and the container's notified syscalls are
then answered by the agent (here: mkdir reported as done without doing it). A real agent on a real
unix socket, a real filter; the agent is a process of this test, killed by pid at the end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testlib import Bundle, Runtime

pytestmark = pytest.mark.requires("root", "busybox", "seccomp")

# seccomp_notify is 80 bytes, seccomp_notif_resp 24: _IOWR('!', 0|1, size)
AGENT = r'''
import fcntl, json, os, socket, struct, sys, threading
RECV, SEND = 0xC0502100, 0xC0182101
path, out = sys.argv[1], sys.argv[2]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(8)
open(out + ".ready", "w").close()

def serve(fd):
    while True:
        buf = bytearray(80)
        try:
            fcntl.ioctl(fd, RECV, buf)
        except OSError:
            return
        notif_id = struct.unpack_from("Q", buf, 0)[0]
        try:  # "done", without doing it: the container sees success and no directory
            fcntl.ioctl(fd, SEND, bytearray(struct.pack("QqiI", notif_id, 0, 0, 0)))
        except OSError:
            pass

while True:
    conn, _ = srv.accept()
    msg, fds, _, _ = socket.recv_fds(conn, 65536, 1)
    state = json.loads(msg)
    with open(out, "a") as f:
        f.write(json.dumps({"pid": state["pid"], "fds": state["fds"], "id": state["state"]["id"],
                            "link": os.readlink(f"/proc/self/fd/{fds[0]}")}) + "\n")
    threading.Thread(target=serve, args=(fds[0],), daemon=True).start()
'''


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    sock, out = tmp_path / "agent.sock", tmp_path / "agent.log"
    p = subprocess.Popen([sys.executable, "-c", AGENT, str(sock), str(out)])
    for _ in range(500):
        if Path(str(out) + ".ready").exists():
            break
        time.sleep(0.01)
    yield sock, out
    p.kill()
    p.wait()


def _bundle(make_bundle: Callable[..., Bundle], sock: Path, nnp: bool, *args: str) -> Bundle:
    b = make_bundle(*args)
    b.process["noNewPrivileges"] = nnp
    b.config["root"]["readonly"] = False  # the workload leaves its findings in /tmp
    b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(sock),
                          "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    b.write()
    return b


def _received(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


@pytest.mark.parametrize("nnp", [True, False])
def test_listener_gets_the_fd_for_run_and_exec(runtime: Runtime, make_bundle: Callable[..., Bundle],
                                               cid: str, agent: tuple[Path, Path], nnp: bool) -> None:
    sock, out = agent
    script = "mkdir /tmp/d; echo $? > /tmp/rc; [ -d /tmp/d ] && echo made > /tmp/r || echo no > /tmp/r; sleep 60"
    b = _bundle(make_bundle, sock, nnp, "sh", "-c", script)
    r = runtime.run("run", "-d", "-b", str(b.path), cid)
    assert r.rc == 0, r.err
    pid = runtime.state(cid)["pid"]
    for _ in range(500):
        if (b.rootfs / "tmp" / "r").exists():
            break
        time.sleep(0.01)
    assert (b.rootfs / "tmp" / "rc").read_text() == "0\n"  # the agent answered "done"...
    assert (b.rootfs / "tmp" / "r").read_text() == "no\n"  # ...without making it
    got = _received(out)
    assert len(got) == 1 and got[0]["pid"] == pid and got[0]["id"] == cid
    assert got[0]["fds"] == ["seccompFd"] and got[0]["link"] == "anon_inode:seccomp notify"
    r = runtime.run("exec", cid, "sh", "-c", "mkdir /tmp/e; echo $?; [ -d /tmp/e ] && echo made || echo no")
    assert (r.rc, r.out) == (0, "0\nno\n"), r.err
    got = _received(out)
    assert len(got) == 2 and got[1]["id"] == cid and got[1]["pid"] != pid


def test_no_agent_listening_fails_create_cleanly(runtime: Runtime, make_bundle: Callable[..., Bundle],
                                                 cid: str, tmp_path: Path) -> None:
    b = _bundle(make_bundle, tmp_path / "nobody.sock", True, "true")
    r = runtime.run("run", "-b", str(b.path), cid)
    assert r.rc == 1
    assert "nobody.sock" in r.err and "seccomp" in r.err
    assert not (runtime.root / cid).exists()
