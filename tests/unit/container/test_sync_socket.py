"""The sync socket between pyrunc and a container process it forked."""

from __future__ import annotations

import os

import pytest

from pyrunc.container import process
from pyrunc.errors import InitError
from pyrunc.sys import jsonfast, sockets


def test_error_of_a_child_that_exits_with_our_message_unread() -> None:
    """The child fails before reading what the parent sent ("joined"): the kernel reports a
    reset before the child's queued error, which must still be the error reported."""
    parent, child = sockets.pair()
    pid = os.fork()
    if pid == 0:
        parent.close()
        child.recv(1)  # wait for the parent's message, then leave it (mostly) unread
        child.send(jsonfast.dumps({"error": "no such file: /bundle/missing", "step": "rootfs"}).encode())
        os._exit(1)
    child.close()
    parent.send(b'{"joined": true}')
    parent.send(b'{"more": true}')  # still queued at the child when it exits
    os.waitpid(pid, 0)
    with pytest.raises(InitError, match="failed at step rootfs: no such file: /bundle/missing"):
        process.recv(parent, "init")
    assert process.recv_bytes(parent) == b""  # then the end of the conversation
    parent.close()
