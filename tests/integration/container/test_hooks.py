"""Hooks: state JSON on stdin with the right status and pid, order, args/env/timeout, failures.

Every hook appends "<name> <state JSON>" to a log in a host directory that is also bind-mounted
at /hooklog, so the startContainer hook (which runs inside the container) and the workload can
append to the same file.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
from proc_helpers import create, wait_for

pytestmark = pytest.mark.requires("root", "busybox")

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def _logging_hook(name: str, log: str, code: int = 0) -> dict:
    return {"path": "/bin/sh",
            "args": ["sh", "-c", f'echo "$0 $(cat)" >> {log}; echo "{name} said" >&2; exit {code}',
                     name]}


@pytest.fixture
def hooked(make_bundle, tmp_path):
    """A bundle factory: (args, hooks dict) -> (bundle, host log path)."""
    logdir = tmp_path / "hooklog"
    logdir.mkdir()
    log = logdir / "log"

    def _make(*args: str, hooks: dict | None = None):
        b = make_bundle(*args)
        b.config["mounts"].append({"destination": "/hooklog", "type": "bind",
                                   "source": str(logdir), "options": ["rbind", "rw"]})
        b.config["hooks"] = hooks or {}
        b.write()
        return b, log

    return _make


def _entries(log) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [line.partition(" ")[::2] for line in log.read_text().splitlines()]  # type: ignore


def test_every_kind_gets_its_state_in_order(runtime, hooked, cid, tmp_path):
    log_host = str(tmp_path / "hooklog" / "log")
    hooks = {k: [_logging_hook(k, "/hooklog/log" if k == "startContainer" else log_host)]
             for k in KINDS}
    b, log = hooked("sh", "-c", "echo workload >> /hooklog/log; exec sleep 600", hooks=hooks)
    r = create(runtime, b.path, cid)
    assert r.rc == 0, r.err
    pid = runtime.state(cid)["pid"]
    runtime.run("start", cid, check=True)
    wait_for(lambda: "workload" in [e[0] for e in _entries(log)], "the workload")
    runtime.run("kill", cid, "KILL", check=True)
    wait_for(lambda: runtime.state(cid)["status"] == "stopped", "the container to stop")
    runtime.run("delete", cid, check=True)

    entries = _entries(log)
    names = [e[0] for e in entries]
    assert sorted(names) == sorted([*KINDS, "workload"]), names
    for before, after in [("prestart", "createRuntime"), ("createRuntime", "createContainer"),
                          ("createContainer", "startContainer"), ("startContainer", "workload"),
                          ("createContainer", "poststart")]:
        assert names.index(before) < names.index(after), names
    assert names[-1] == "poststop"
    states = {name: json.loads(text) for name, text in entries if name != "workload"}
    want = {"prestart": ("created", pid), "createRuntime": ("created", pid),
            # hooks in the container namespace see the init's pid in that namespace
            "createContainer": ("created", 1), "startContainer": ("created", 1),
            "poststart": ("running", pid)}
    for name, (status, p) in want.items():
        st = states[name]
        assert (st["status"], st["pid"], st["id"], st["bundle"]) == (status, p, cid, str(b.path)), \
            name
    assert states["poststop"]["status"] == "stopped"
    assert states["poststop"].get("pid", 0) == 0


def test_args_and_env_are_the_hooks_own(runtime, hooked, cid, tmp_path):
    out = tmp_path / "out"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f'echo "$0|$1|$A|$B" > {out}; env >> {out}',
                                        "x", "y"],
            "env": ["A=1", "B=two words", "PATH=/usr/bin"]}
    b, _ = hooked("true", hooks={"createRuntime": [hook]})
    runtime.run("run", "--bundle", str(b.path), cid, check=True, stdin=None)
    # argv[0] is args[0], not path; env is exactly the hook's (no PATH inherited from the runtime)
    lines = out.read_text().splitlines()
    assert lines[0] == "x|y|1|two words"
    assert sorted(e for e in lines[1:] if not e.startswith("PWD=")) == [
        "A=1", "B=two words", "PATH=/usr/bin"]


def test_hook_past_its_timeout_fails_create_and_leaves_nothing(runtime, hooked, cid, tmp_path):
    hooks = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c",
                                                       f"cat > {tmp_path}/st.json"]},
                          {"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}
    b, _ = hooked("true", hooks=hooks)
    r = create(runtime, b.path, cid)
    assert r.rc == 1
    assert "prestart" in r.err and "timed out" in r.err, r.err
    assert runtime.run("state", cid).rc != 0
    assert not (runtime.root / cid).exists()
    init = json.loads((tmp_path / "st.json").read_text())["pid"]
    assert not os.path.exists(f"/proc/{init}")


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_aborts_create(runtime, hooked, cid, tmp_path, kind):
    log_host = str(tmp_path / "hooklog" / "log")
    hooks = {kind: [_logging_hook(f"{kind}-1", log_host, code=3),
                    _logging_hook(f"{kind}-2", log_host)],
             "startContainer": [_logging_hook("startContainer", "/hooklog/log")]}
    b, log = hooked("sh", "-c", "echo workload >> /hooklog/log", hooks=hooks)
    r = create(runtime, b.path, cid)
    assert r.rc == 1
    assert kind in r.err and "exit status 3" in r.err and f"{kind}-1 said" in r.err, r.err
    assert [e[0] for e in _entries(log)] == [f"{kind}-1"]
    assert runtime.run("state", cid).rc != 0
    assert not (runtime.root / cid).exists()
    if kind != "createContainer":
        init = json.loads(_entries(log)[0][1])["pid"]
        assert not os.path.exists(f"/proc/{init}")


# A failing poststart hook fails `start` (runtime-spec 1.3): test_parity_lifecycle.py.
@pytest.mark.parametrize("kind,verb", [("poststop", "delete")])
def test_failing_late_hook_is_a_warning_and_the_rest_run(runtime, hooked, cid, tmp_path, kind,
                                                         verb):
    log_host = str(tmp_path / "hooklog" / "log")
    hooks = {kind: [_logging_hook(f"{kind}-1", log_host, code=5),
                    _logging_hook(f"{kind}-2", log_host)]}
    b, log = hooked("true", hooks=hooks)
    assert create(runtime, b.path, cid).rc == 0
    r = runtime.run("start", cid)
    if verb == "delete":
        assert r.rc == 0, r.err
        wait_for(lambda: runtime.state(cid)["status"] == "stopped", "the container to stop")
        r = runtime.run("delete", cid)
    assert r.rc == 0, r.err
    assert "warning" in r.err and kind in r.err and "exit status 5" in r.err, r.err
    assert [e[0] for e in _entries(log)] == [f"{kind}-1", f"{kind}-2"]


def test_failing_start_container_hook_stops_the_workload(runtime, hooked, cid):
    hooks = {"startContainer": [_logging_hook("startContainer", "/hooklog/log", code=2)]}
    b, log = hooked("sh", "-c", "echo workload >> /hooklog/log", hooks=hooks)
    r = create(runtime, b.path, cid)
    assert r.rc == 0, r.err
    runtime.run("start", cid)
    wait_for(lambda: runtime.state(cid)["status"] == "stopped", "the container to stop")
    assert [e[0] for e in _entries(log)] == ["startContainer"]


def test_poststart_runs_after_the_workload_is_executed(runtime, make_bundle, cid, tmp_path):
    """runtime.md step 9: poststart hooks run after the user-specified program is executed: the
    container process is already the workload (not the waiting init) when the hook looks at it."""
    log = tmp_path / "exe"
    code = ("import json, os, sys; s = json.load(sys.stdin); "
            f"open({str(log)!r}, 'w').write(os.readlink(f'/proc/{{s[\"pid\"]}}/exe'))")
    b = make_bundle("sleep", "30")
    # A slow startContainer hook holds the init between `start` and its execve.
    b.config["hooks"] = {"startContainer": [{"path": "/bin/sleep", "args": ["sleep", "0.3"]}],
                         "poststart": [{"path": sys.executable, "args": ["python3", "-c", code]}]}
    b.write()
    assert create(runtime, b.path, cid).rc == 0
    r = runtime.run("start", cid)
    assert r.rc == 0, r.err
    assert log.read_text() == "/bin/busybox"  # as the container sees it, not memfd:pyrunc-init
