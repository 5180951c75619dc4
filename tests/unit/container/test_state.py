"""The state store: id rules, the transition table and its messages, atomic files."""

from __future__ import annotations

import os

import pytest

from pyrunc.container import state
from pyrunc.errors import (
    ContainerExists,
    ContainerNotFound,
    InvalidIdError,
    InvalidState,
    StateError,
)


@pytest.mark.parametrize("cid", ["a", "abc-123", "A_b+c.d", "x" * 1024, "..a", "a.."])
def test_valid_ids(cid):
    state.check_id(cid)


@pytest.mark.parametrize("cid", ["", ".", "..", "../x", "a/b", "/abs", "a b", "a\nb", "é", "x" * 1025,
                                 "a:b", "a\x00b"])
def test_invalid_ids(cid):
    with pytest.raises(InvalidIdError):
        state.check_id(cid)


def test_empty_id_message():
    with pytest.raises(InvalidIdError, match="container id cannot be empty"):
        state.check_id("")


def test_container_dir_checks_id(tmp_path):
    with pytest.raises(InvalidIdError):
        state.container_dir(str(tmp_path), "../escape")
    assert state.container_dir(str(tmp_path), "ok") == str(tmp_path / "ok")


ALLOWED = {
    "created": ["start", "kill", "delete", "exec", "update", "pause", "resume"],
    "running": ["kill", "pause", "exec", "update"],
    "paused": ["resume", "kill", "update"],
    "stopped": ["delete"],
    "creating": ["delete"],
}


@pytest.mark.parametrize("status,verb", [(s, v) for s, vs in ALLOWED.items() for v in vs])
def test_allowed_transitions(status, verb):
    state.check_transition(status, verb, "c1")


@pytest.mark.parametrize("status,verb,msg", [
    ("running", "start", "cannot start an already running container"),
    ("stopped", "start", "cannot start a container that has stopped"),
    ("stopped", "kill", "container not running"),
    ("creating", "kill", "container not running"),
    ("running", "delete", "cannot delete container c1 that is not stopped: running"),
    ("paused", "delete", "cannot delete container c1 that is not stopped: paused"),
    ("running", "resume", "container not paused"),
    ("stopped", "pause", "container not running"),
    ("stopped", "exec", "cannot exec container c1 in state stopped"),
])
def test_refused_transitions(status, verb, msg):
    with pytest.raises(InvalidState) as exc:
        state.check_transition(status, verb, "c1")
    assert str(exc.value) == msg


def test_write_read_roundtrip(tmp_path):
    root = str(tmp_path / "root")
    path = state.make_dir(root, "c1")
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o711)
    state.write(root, "c1", {"id": "c1", "pid": 42})
    assert state.read(root, "c1") == {"id": "c1", "pid": 42}
    state.write(root, "c1", {"id": "c1", "pid": 43})
    assert state.read(root, "c1")["pid"] == 43
    assert os.listdir(path) == [state.STATE_FILE]  # no temp file left


def test_make_dir_twice(tmp_path):
    state.make_dir(str(tmp_path), "c1")
    with pytest.raises(ContainerExists, match="c1"):
        state.make_dir(str(tmp_path), "c1")


def test_read_missing_and_garbage(tmp_path):
    root = str(tmp_path)
    with pytest.raises(ContainerNotFound, match="container c1 does not exist"):
        state.read(root, "c1")
    state.make_dir(root, "c1")
    with pytest.raises(ContainerNotFound):
        state.read(root, "c1")  # a create that has not written its state yet
    (tmp_path / "c1" / state.STATE_FILE).write_text("{not json")
    with pytest.raises(StateError):
        state.read(root, "c1")
    (tmp_path / "c1" / state.STATE_FILE).write_text("[]")
    with pytest.raises(StateError):
        state.read(root, "c1")


def test_locked(tmp_path):
    root = str(tmp_path)
    with pytest.raises(ContainerNotFound):
        with state.locked(root, "c1"):
            pass
    with state.locked(root, "c1", missing_ok=True) as fd:
        assert fd is None
    state.make_dir(root, "c1")
    with state.locked(root, "c1") as fd:
        assert isinstance(fd, int) and fd >= 0


def test_list_ids_and_remove(tmp_path):
    root = str(tmp_path)
    assert state.list_ids(str(tmp_path / "missing")) == []
    for cid in ("b", "a"):
        state.make_dir(root, cid)
    (tmp_path / "not a container").mkdir()
    (tmp_path / "file").write_text("")
    assert state.list_ids(root) == ["a", "b"]
    state.write(root, "a", {})
    os.mkfifo(tmp_path / "a" / state.FIFO)
    state.remove_dir(str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()
    state.remove_dir(str(tmp_path / "a"))  # already gone: fine
    assert state.list_ids(root) == ["b"]
