"""Parity with runc 1.1.5 on the lifecycle edges engines rely on, through the real CLI.

delete of unknown/created containers, a failing poststart hook, the environment hooks inherit,
`--log`/`--log-format` errors, `--debug` lines and `-h`/`--help` on every command. Every
container gets its own default namespaces (runc's `spec`), so nothing is inherited from the host;
hooks only write files under the test's tmp dir.
"""

from __future__ import annotations

import glob
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from proc_helpers import create, wait_for
from testlib import Bundle, Runtime

pytestmark = pytest.mark.requires("root", "busybox")

COMMANDS = ("create", "start", "run", "state", "kill", "delete", "list", "ps", "exec", "pause",
            "resume", "update", "events", "spec", "features", "validate")


def new_id() -> str:
    return "p14-" + uuid.uuid4().hex[:10]


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.fixture
def cgroup_dirs(parent: str) -> Callable[[str], list[str]]:
    return lambda cid: glob.glob(f"/sys/fs/cgroup/*/{parent}/{cid}") + glob.glob(
        f"/sys/fs/cgroup/{parent}/{cid}")


@pytest.fixture
def p14_bundle(make_bundle, parent: str):  # type: ignore[no-untyped-def]
    """A busybox bundle whose cgroups live under /<parent>/<id>."""

    def _make(cid: str, *args: str, hooks: dict | None = None) -> Bundle:  # type: ignore[type-arg]
        b = make_bundle(*args)
        b.linux["cgroupsPath"] = f"/{parent}/{cid}"
        if hooks:
            b.config["hooks"] = hooks
        b.write()
        return b

    return _make


# ---- 1. delete ------------------------------------------------------------------------------

def test_delete_force_of_unknown_id_succeeds(runtime: Runtime) -> None:
    r = runtime.run("delete", "--force", new_id())
    assert (r.rc, r.out, r.err) == (0, "", "")
    r = runtime.run("delete", "-f", new_id())
    assert r.rc == 0, r.err


def test_delete_without_force_of_unknown_id_fails(runtime: Runtime) -> None:
    cid = new_id()
    r = runtime.run("delete", cid)
    assert r.rc == 1
    assert r.err.strip().endswith("does not exist"), r.err
    assert cid in r.err


def test_delete_force_twice(runtime: Runtime, p14_bundle) -> None:  # type: ignore[no-untyped-def]
    cid = new_id()
    b = p14_bundle(cid, "true")
    assert create(runtime, b.path, cid).rc == 0
    assert runtime.run("delete", "--force", cid).rc == 0
    r = runtime.run("delete", "--force", cid)
    assert r.rc == 0, r.err
    assert runtime.run("delete", cid).rc == 1


def test_delete_of_created_container_kills_init_and_removes_all(
        runtime: Runtime, p14_bundle, cgroup_dirs) -> None:  # type: ignore[no-untyped-def]
    cid = new_id()
    b = p14_bundle(cid, "sleep", "600")
    r = create(runtime, b.path, cid)
    assert r.rc == 0, r.err
    st = runtime.state(cid)
    assert st["status"] == "created"
    pid = int(st["pid"])  # type: ignore[call-overload]
    assert pid_alive(pid) and cgroup_dirs(cid)
    r = runtime.run("delete", cid)
    assert (r.rc, r.err) == (0, ""), r.err
    wait_for(lambda: not pid_alive(pid), "the waiting init to die")
    assert cgroup_dirs(cid) == []
    assert not (runtime.root / cid).exists()
    assert runtime.run("state", cid).rc == 1


# ---- 2. poststart ---------------------------------------------------------------------------

def _hook(tag: str, log: Path, code: int = 0) -> dict:  # type: ignore[type-arg]
    return {"path": "/bin/sh",
            "args": ["sh", "-c", f'echo "$0 $(cat)" >> {log}; exit {code}', tag]}


def test_failing_poststart_fails_start_stops_and_destroys(
        runtime: Runtime, p14_bundle, cgroup_dirs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "hooks.log"
    cid = new_id()
    hooks = {"poststart": [_hook("poststart-1", log, code=4), _hook("poststart-2", log)],
             "poststop": [_hook("poststop", log)]}
    b = p14_bundle(cid, "sleep", "600", hooks=hooks)
    assert create(runtime, b.path, cid).rc == 0
    pid = int(runtime.state(cid)["pid"])  # type: ignore[call-overload]
    r = runtime.run("start", cid)
    assert r.rc == 1
    assert "poststart" in r.err and "exit status 4" in r.err, r.err
    # the container was stopped and the lifecycle went on (destroyed, then poststop hooks)
    wait_for(lambda: not pid_alive(pid), "the container's init to be killed")
    names = [line.split()[0] for line in log.read_text().splitlines()]
    assert names == ["poststart-1", "poststop"]
    stopped = json.loads(log.read_text().splitlines()[1].split(" ", 1)[1])
    assert (stopped["id"], stopped["status"]) == (cid, "stopped")
    assert cgroup_dirs(cid) == []
    assert runtime.run("state", cid).rc == 1
    # what engines do next: clean up with delete --force, which must not fail
    assert runtime.run("delete", "--force", cid).rc == 0


def test_failing_poststart_fails_run(runtime: Runtime, p14_bundle, cgroup_dirs,
                                     tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "hooks.log"
    cid = new_id()
    b = p14_bundle(cid, "sleep", "600", hooks={"poststart": [_hook("poststart", log, code=6)]})
    r = runtime.run("run", "-d", "--bundle", str(b.path), cid, stdin=None)
    assert r.rc == 1
    assert "poststart" in r.err and "exit status 6" in r.err, r.err
    assert r.err.count("\n") == 1, r.err  # one error line, not the clean-up's too
    assert runtime.run("state", cid).rc == 1
    assert cgroup_dirs(cid) == []


# ---- 3. hook environment --------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["createRuntime", "poststart", "poststop"])
def test_hook_without_env_inherits_the_runtimes(runtime: Runtime, p14_bundle, tmp_path: Path,
                                                kind: str) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "env"
    cid = new_id()
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"env > {out}"]}
    b = p14_bundle(cid, "true", hooks={kind: [hook]})
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "P14_MARK": "from the caller"}
    assert create(runtime, b.path, cid, env=env).rc == 0
    runtime.run("start", cid, check=True, env=env)
    wait_for(lambda: runtime.state(cid)["status"] == "stopped", "the container to stop")
    runtime.run("delete", cid, check=True, env=env)
    lines = out.read_text().splitlines()
    assert "P14_MARK=from the caller" in lines
    assert "PATH=/usr/sbin:/usr/bin:/sbin:/bin" in lines


def test_hook_with_env_gets_exactly_it(runtime: Runtime, p14_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "env"
    cid = new_id()
    hooks = {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"env > {out}"],
                           "env": ["ONLY=this"]}]}
    b = p14_bundle(cid, "true", hooks=hooks)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "P14_MARK": "from the caller"}
    runtime.run("run", "--bundle", str(b.path), cid, check=True, stdin=None, env=env)
    lines = [ln for ln in out.read_text().splitlines() if not ln.startswith(("PWD=", "SHLVL="))]
    assert lines == ["ONLY=this"]


# ---- 4. --log and --log-format --------------------------------------------------------------

@pytest.mark.parametrize("verb", [("list",), ("state", "p14-none"), ("delete", "-f", "p14-none")])
def test_invalid_log_format_is_refused(runtime: Runtime, verb: tuple[str, ...]) -> None:
    r = runtime.run("--log-format", "xml", *verb)
    assert (r.rc, r.out, r.err) == (1, "", "invalid log-format: xml\n")


def test_unopenable_log_file_is_refused(runtime: Runtime, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "log"
    r = runtime.run("--log", str(missing), "list")
    assert (r.rc, r.out, r.err) == (1, "", f"open {missing}: no such file or directory\n")
    r = runtime.run("--log", str(tmp_path), "list")
    assert (r.rc, r.err) == (1, f"open {tmp_path}: is a directory\n")


# ---- 9. --debug and --help ------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_lines_go_to_stderr(runtime: Runtime, fmt: str) -> None:
    r = runtime.run("--debug", "--log-format", fmt, "delete", "--force", "p14-none")
    assert r.rc == 0
    lines = r.err.splitlines()
    assert lines, "no debug output"
    for line in lines:
        if fmt == "json":
            entry = json.loads(line)
            assert entry["level"] == "debug" and entry["msg"] and entry["time"]
        else:
            assert line.startswith('time="') and ' level=debug msg="' in line, line


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_lines_go_to_the_log_file(runtime: Runtime, tmp_path: Path, fmt: str) -> None:
    log = tmp_path / "pyrunc.log"
    r = runtime.run("--debug", "--log", str(log), "--log-format", fmt, "delete", "-f", "p14-none")
    assert (r.rc, r.err) == (0, "")
    lines = log.read_text().splitlines()
    assert lines
    if fmt == "json":
        assert {json.loads(x)["level"] for x in lines} == {"debug"}
    else:
        assert all(" level=debug " in x for x in lines)


def test_no_debug_lines_without_debug(runtime: Runtime) -> None:
    r = runtime.run("delete", "--force", "p14-none")
    assert (r.rc, r.err) == (0, "")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_on_every_command(runtime: Runtime, command: str, flag: str) -> None:
    for argv in ((command, flag), (command, "p14-none", flag) if command not in ("exec", "ps")
                 else (command, flag, "p14-none")):
        r = runtime.run(*argv)
        assert (r.rc, r.err) == (0, ""), (argv, r.err)
        assert r.out.startswith(f"NAME:\n   pyrunc {command} - "), (argv, r.out)
        assert f"USAGE:\n   pyrunc {command}" in r.out


def test_help_command_names_one_command(runtime: Runtime) -> None:
    r = runtime.run("help", "delete")
    assert r.rc == 0 and "--force, -f" in r.out
