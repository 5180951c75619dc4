"""File descriptors: --preserve-fds, systemd's LISTEN_FDS, and the junk real clients leave around.

The fds are set up by a `sh` wrapper (`exec 3<file ...; exec pyrunc ...`) so that they have
exactly the numbers the runtime is meant to see, whatever the test process has open itself. Inside,
`ls /proc/$$/fd` (one name a line) lists the container shell's own fds (not those of `ls`).
"""

from __future__ import annotations

import os
import shlex

import pytest
from proc_helpers import create, detached, wait_for

pytestmark = pytest.mark.requires("root", "busybox")

# No pipeline or command substitution (ash would hold a pipe while `ls` looks), and not the last
# command (ash would exec it: $$ would be `ls` itself, with its directory fd).
SHOW = 'echo "[$LISTEN_FDS][$LISTEN_PID][$_OCI_SYNCPIPE]"; ls /proc/$$/fd; true'


@pytest.fixture
def files(tmp_path):
    for n in (3, 4, 5):
        (tmp_path / f"f{n}").write_text(f"content-{n}\n")
    return tmp_path


def _wrapped(runtime, files, prefix: str, *args: str) -> list[str]:
    """sh: open fds 3, 4, 5 on files, run `prefix` (env assignments), exec pyrunc `args`."""
    opens = " ".join(f"{n}<{shlex.quote(str(files / f'f{n}'))}" for n in (3, 4, 5))
    cmd = f"exec {opens}; {prefix} exec {shlex.join(runtime.argv(*args))}"
    return ["sh", "-c", cmd]


def _fds(lines: list[str]) -> list[int]:
    return sorted(int(x) for x in lines)


def test_preserve_fds_passes_exactly_n(runtime, make_bundle, cid, files):
    b = make_bundle("sh", "-c", f"cat <&3; cat <&4; {SHOW}")
    r = detached(runtime, _wrapped(runtime, files, "", "run", "--preserve-fds", "2",
                                   "-b", str(b.path), cid))
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[:2] == ["content-3", "content-4"]
    assert lines[2] == "[][][]"
    assert _fds(lines[3:]) == [0, 1, 2, 3, 4]


def test_without_preserve_fds_only_stdio_reaches_the_workload(runtime, make_bundle, cid, files):
    b = make_bundle("sh", "-c", SHOW)
    r = detached(runtime, _wrapped(runtime, files, "", "run", "-b", str(b.path), cid))
    assert r.rc == 0, r.err
    assert _fds(r.out.splitlines()[1:]) == [0, 1, 2]


def test_listen_fds_for_the_runtime_are_passed_on(runtime, make_bundle, cid, files):
    b = make_bundle("sh", "-c", f"cat <&3; {SHOW}")
    # $$ of the wrapper shell is pyrunc's pid once it execs: the fds are meant for pyrunc.
    r = detached(runtime, _wrapped(runtime, files, "LISTEN_PID=$$ LISTEN_FDS=1",
                                   "run", "-b", str(b.path), cid))
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "content-3"
    assert lines[1] == "[1][1][]"
    assert _fds(lines[2:]) == [0, 1, 2, 3]


def test_listen_fds_meant_for_another_process_are_not(runtime, make_bundle, cid, files):
    b = make_bundle("sh", "-c", SHOW)
    r = detached(runtime, _wrapped(runtime, files, "LISTEN_PID=1 LISTEN_FDS=2",
                                   "run", "-b", str(b.path), cid))
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "[][][]"
    assert _fds(lines[1:]) == [0, 1, 2]


def test_client_junk_does_not_break_create_or_reach_the_workload(runtime, make_bundle, cid,
                                                                 files, tmp_path):
    """containerd's shim leaks its socket as fd 3; podman sets _OCI_SYNCPIPE=3 without the fd."""
    outdir = tmp_path / "out"
    outdir.mkdir()
    b = make_bundle("sh", "-c", f"exec > /out/$ID; {SHOW}")
    b.config["mounts"].append({"destination": "/out", "type": "bind", "source": str(outdir),
                               "options": ["rbind", "rw"]})
    env = {**os.environ, "_OCI_SYNCPIPE": "3", "_OCI_STARTPIPE": "4"}
    for name, leak in (("leaked", f"exec 3<{shlex.quote(str(files / 'f3'))}; "), ("env-only", "")):
        b.process["env"] = [*b.process["env"][:2], f"ID={name}"]
        b.write()
        argv = ["sh", "-c", leak + "exec " + shlex.join(
            runtime.argv("create", "-b", str(b.path), f"{cid}-{name}"))]
        r = create(runtime, b.path, cid, argv=argv, env=env)
        assert r.rc == 0, (name, r.err)
        runtime.run("start", f"{cid}-{name}", check=True)
        wait_for(lambda: runtime.state(f"{cid}-{name}")["status"] == "stopped",  # noqa: B023
                 "the container to stop")
        lines = (outdir / name).read_text().splitlines()
        assert lines[0] == "[][][]", name
        assert _fds(lines[1:]) == [0, 1, 2], name


def test_exec_preserve_fds(runtime, make_bundle, cid, files):
    b = make_bundle("sleep", "600")
    assert create(runtime, b.path, cid).rc == 0
    r = detached(runtime, _wrapped(runtime, files, "", "exec", "--preserve-fds", "1", cid,
                                   "sh", "-c", f"cat <&3; {SHOW}"))
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "content-3"
    assert _fds(lines[2:]) == [0, 1, 2, 3]
