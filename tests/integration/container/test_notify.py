"""NOTIFY_SOCKET (podman --sdnotify=container): the workload's READY=1 reaches the host's socket.

busybox has no applet that writes to a unix datagram socket, so the workload uses a tiny static C
helper compiled here (`sd-notify MESSAGE` sends MESSAGE to $NOTIFY_SOCKET).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from proc_helpers import create

pytestmark = pytest.mark.requires("root", "busybox", "cmd:gcc")

HELPER_C = r"""
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(int argc, char **argv) {
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (!path || argc < 2 || fd < 0) return 2;
    strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
    return sendto(fd, argv[1], strlen(argv[1]), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0;
}
"""


@pytest.fixture(scope="module")
def helper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("sdnotify")
    (d / "n.c").write_text(HELPER_C)
    r = subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "sd-notify"), str(d / "n.c")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a static helper: {r.stderr[-300:]}")
    return d / "sd-notify"


@pytest.fixture
def host_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    path = tmp_path / "host-notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield sock, {**os.environ, "NOTIFY_SOCKET": str(path)}
    sock.close()


def _bundle(make_bundle, helper: Path, script: str):
    b = make_bundle("sh", "-c", script)
    shutil.copy2(helper, b.rootfs / "bin" / "sd-notify")
    return b


def _messages(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096, socket.MSG_DONTWAIT))
        except BlockingIOError:
            return out


def test_start_waits_for_ready_and_forwards_it(runtime, make_bundle, cid, helper, host_socket):
    sock, env = host_socket
    # The delay before READY=1 shows that `start` waited: had it returned at once, nothing would
    # be queued on the host socket yet.
    b = _bundle(make_bundle, helper,
                'echo "$NOTIFY_SOCKET" > /dev/shm/env; sleep 1; sd-notify "STATUS=up\nREADY=1"; '
                "sleep 60")
    r = create(runtime, b.path, cid, env=env)
    assert r.rc == 0, r.err
    assert os.path.isdir(runtime.root / cid / "notify")
    runtime.run("start", cid, check=True, env=env)
    msgs = _messages(sock)
    assert len(msgs) == 1, msgs
    lines = msgs[0].decode().split("\n")
    pid = runtime.state(cid)["pid"]
    assert "READY=1" in lines and f"MAINPID={pid}" in lines
    r = runtime.run("exec", cid, "cat", "/dev/shm/env", check=True)
    assert r.out.strip() == "/run/notify/notify.sock"
    runtime.run("delete", "--force", cid, check=True)
    assert not (runtime.root / cid).exists()


def test_start_returns_when_the_workload_exits_without_ready(runtime, make_bundle, cid, helper,
                                                           host_socket):
    sock, env = host_socket
    b = _bundle(make_bundle, helper, "sd-notify STATUS=starting; exit 3")
    r = create(runtime, b.path, cid, env=env)
    assert r.rc == 0, r.err
    r = runtime.run("start", cid, env=env, timeout=30)
    assert r.rc == 0, r.err
    assert _messages(sock) == []
    runtime.run("delete", cid, check=True)


def test_ready_sent_just_before_exit_is_forwarded(runtime, make_bundle, cid, helper, host_socket):
    sock, env = host_socket
    b = _bundle(make_bundle, helper, "sd-notify READY=1")
    r = create(runtime, b.path, cid, env=env)
    assert r.rc == 0, r.err
    runtime.run("start", cid, check=True, env=env, timeout=30)
    msgs = _messages(sock)
    assert len(msgs) == 1 and b"READY=1" in msgs[0].split(b"\n"), msgs
    runtime.run("delete", cid, check=True)


def test_no_notify_socket_means_no_mount_and_no_env(runtime, make_bundle, cid, helper):
    b = _bundle(make_bundle, helper,
                'echo "[$NOTIFY_SOCKET]"; test -e /run/notify && echo mounted; true')
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    r = runtime.run("run", "--bundle", str(b.path), cid, env=env, check=True)
    assert r.out.split() == ["[]"]
