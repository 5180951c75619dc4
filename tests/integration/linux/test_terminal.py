"""Terminals: the pty master over --console-socket (create, exec -t) and `run` proxying a real tty.

The receiving side is written here the way shims write it: a unix stream server that gets one
message, payload "/dev/ptmx", the master as SCM_RIGHTS.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import socket
import struct
import subprocess
import termios
import time

import pytest
from proc_helpers import create

pytestmark = pytest.mark.requires("root", "busybox")

TIOCGPTN = 0x80045430


class ConsoleServer:
    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(30)

    def receive(self) -> tuple[bytes, int]:
        conn, _ = self.sock.accept()
        with conn:
            msg, fds, _, _ = socket.recv_fds(conn, 4096, 4)
        assert len(fds) == 1, fds
        return msg, fds[0]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def console(tmp_path):
    srv = ConsoleServer(str(tmp_path / "console.sock"))
    yield srv
    srv.close()


def read_until(fd: int, want: bytes, timeout: float = 20) -> bytes:
    """Read the master until `want` shows up (or EOF/EIO: the other side is gone)."""
    out = b""
    deadline = time.monotonic() + timeout
    while want not in out:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"{want!r} not seen; got {out!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: every peer fd is closed
            chunk = b""
        if not chunk:
            raise AssertionError(f"{want!r} not seen before EOF; got {out!r}")
        out += chunk
    return out


def read_all(fd: int, timeout: float = 20) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], deadline - time.monotonic())[0]:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


def _assert_master(fd: int) -> None:
    assert os.isatty(fd)
    # Only a master answers TIOCGPTN (the peer's number); a peer fails with ENOTTY.
    fcntl.ioctl(fd, TIOCGPTN, b"\0\0\0\0")


def test_create_sends_the_master_and_the_container_is_interactive(runtime, make_bundle, cid,
                                                                 console):
    b = make_bundle("sh")
    b.process["terminal"] = True
    b.write()
    r = create(runtime, b.path, cid, "--console-socket", console.path)
    assert r.rc == 0, r.err
    msg, master = console.receive()
    try:
        assert msg == b"/dev/ptmx"
        _assert_master(master)
        runtime.run("start", cid, check=True)
        os.write(master, b"echo answer-$((6*7))\n")
        read_until(master, b"answer-42")
        os.write(master, b"exit 3\n")
        read_all(master)
    finally:
        os.close(master)
    assert runtime.state(cid)["status"] == "stopped"


def test_console_size_and_dev_console(runtime, make_bundle, cid, console):
    b = make_bundle("sh", "-c", "stty size; ls -l /dev/console; tty; readlink /proc/self/fd/0")
    b.process["terminal"] = True
    b.process["consoleSize"] = {"height": 33, "width": 111}
    b.write()
    r = create(runtime, b.path, cid, "--console-socket", console.path)
    assert r.rc == 0, r.err
    _, master = console.receive()
    try:
        runtime.run("start", cid, check=True)
        lines = read_all(master).decode().split("\r\n")
    finally:
        os.close(master)
    assert lines[0] == "33 111"
    # /dev/console is the pty peer bound over it: a char device with the pts major, 136
    assert lines[1].startswith("c") and lines[1].split()[4] == "136,", lines
    assert lines[2].startswith("/dev/pts/") and lines[3] == lines[2]


def test_terminal_without_console_socket_fails_create(runtime, make_bundle, cid):
    b = make_bundle("sh")
    b.process["terminal"] = True
    b.write()
    r = create(runtime, b.path, cid)
    assert r.rc != 0 and "console socket" in r.err
    assert runtime.run("state", cid).rc != 0


def test_exec_tty_with_console_socket(runtime, make_bundle, cid, console):
    b = make_bundle("sleep", "600")
    assert create(runtime, b.path, cid).rc == 0
    runtime.run("start", cid, check=True)
    p = subprocess.Popen(runtime.argv("exec", "-t", "--console-socket", console.path, cid,
                                      "sh", "-c", "read x; tty; echo got-$x; exit 5"),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        msg, master = console.receive()
        try:
            assert msg == b"/dev/ptmx"
            _assert_master(master)
            os.write(master, b"hello\n")
            out = read_all(master).decode()
        finally:
            os.close(master)
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 5, err
    assert "/dev/pts/" in out and "got-hello" in out


def test_exec_tty_detached_needs_a_console_socket(runtime, make_bundle, cid):
    b = make_bundle("sleep", "600")
    assert create(runtime, b.path, cid).rc == 0
    r = runtime.run("exec", "-t", "-d", cid, "true", stdin=subprocess.DEVNULL)
    assert r.rc != 0 and "console socket" in r.err


def test_run_proxies_a_real_terminal(runtime, make_bundle, cid):
    b = make_bundle("sh")
    b.process["terminal"] = True
    b.write()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    p = subprocess.Popen(runtime.argv("run", "-b", str(b.path), cid), stdin=slave, stdout=slave,
                         stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        # Typed before `run` has made our terminal raw, input would be flushed: wait for the prompt.
        read_until(master, b"# ")
        os.write(master, b"stty size; echo in-$((2+3))\n")
        out = read_until(master, b"in-5")
        assert b"40 120" in out
        os.write(master, b"exit 4\n")
        read_all(master, timeout=10)
        assert p.wait(timeout=30) == 4
    finally:
        p.kill()
        os.close(master)
    assert runtime.run("state", cid).rc != 0  # run removed the container
