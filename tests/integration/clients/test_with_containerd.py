"""containerd's runc shim v2 driving the runtime: `ctr run --runc-binary RT` and the task verbs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from daemons import Containerd, check_exec, check_exec_tty, in_terminal, task_status, wait_until
from images import IMAGE

pytestmark = pytest.mark.requires("root", "cmd:containerd", "cmd:ctr")


def run_detached(containerd: Containerd, runtime: str, cid: str, *args: str) -> None:
    done = containerd.ctr("run", "-d", *containerd.runc_options(runtime), IMAGE, cid, *args)
    assert done.returncode == 0, done.stderr
    assert task_status(containerd, cid) == "RUNNING"


@pytest.fixture(scope="module")
def sleeper(containerd: Containerd, client_runtime: str) -> Iterator[str]:
    """A detached task, `sleep`, shared by the tests that only look at or briefly touch it."""
    cid = "cl-" + uuid.uuid4().hex[:10]
    run_detached(containerd, client_runtime, cid, "sleep", "100000")
    yield cid
    containerd.remove(cid)


def test_run_rm_returns_output_and_exit_code(containerd: Containerd, client_runtime: str,
                                             ctr_id: str) -> None:
    done = containerd.ctr("run", "--rm", *containerd.runc_options(client_runtime), IMAGE, ctr_id,
                          "sh", "-c", "echo out-$((6*7)); echo err >&2; exit 3")
    assert (done.returncode, done.stdout) == (3, "out-42\n"), done.stderr
    assert "err" in done.stderr
    assert ctr_id not in containerd.ctr("container", "ls", "-q").stdout.split()


def test_exec(containerd: Containerd, sleeper: str) -> None:
    check_exec(containerd, sleeper)


def test_exec_tty(containerd: Containerd, sleeper: str) -> None:
    check_exec_tty(containerd, sleeper)


def test_run_tty(containerd: Containerd, client_runtime: str, ctr_id: str) -> None:
    runtime = containerd.runc_options(client_runtime)
    done = in_terminal(containerd.argv("run", "--rm", "-t", *runtime, IMAGE, ctr_id,
                                       "sh", "-c", "tty; exit 7"))
    assert done.returncode == 7, done.stdout
    assert "/dev/pts/0" in done.stdout


def test_ps_lists_the_init_process(containerd: Containerd, sleeper: str) -> None:
    pid = next(line.split()[1] for line in containerd.ctr("task", "ls").stdout.splitlines()
               if line.startswith(sleeper + " "))
    done = containerd.ctr("task", "ps", sleeper)
    assert done.returncode == 0, done.stderr
    assert pid in [line.split()[0] for line in done.stdout.splitlines()[1:]]


def test_metrics(containerd: Containerd, sleeper: str) -> None:
    done = containerd.ctr("task", "metrics", sleeper)
    assert done.returncode == 0, done.stderr
    pids = [line.split() for line in done.stdout.splitlines() if line.startswith("pids.current")]
    assert pids and int(pids[0][1]) >= 1, done.stdout


def test_pause_resume(containerd: Containerd, sleeper: str) -> None:
    assert containerd.ctr("task", "pause", sleeper).returncode == 0
    try:
        assert task_status(containerd, sleeper) == "PAUSED"
    finally:
        resumed = containerd.ctr("task", "resume", sleeper)
    assert resumed.returncode == 0, resumed.stderr
    assert task_status(containerd, sleeper) == "RUNNING"
    done = containerd.ctr("task", "exec", *containerd.fifo_dir(), "--exec-id", "e3", sleeper,
                          "echo", "awake")
    assert done.stdout == "awake\n"


def test_kill_then_delete(containerd: Containerd, client_runtime: str, ctr_id: str) -> None:
    run_detached(containerd, client_runtime, ctr_id, "sh", "-c", "trap 'exit 9' TERM; "
                 "while :; do sleep 1; done")
    assert containerd.ctr("task", "kill", "-s", "SIGTERM", ctr_id).returncode == 0
    wait_until(lambda: task_status(containerd, ctr_id) == "STOPPED", "task stopped", timeout=30)
    done = containerd.ctr("task", "delete", ctr_id)
    assert done.returncode == 0, done.stderr
    assert "exit code 9" in done.stderr  # ctr warns about a non-zero exit status
    assert task_status(containerd, ctr_id) == ""


def test_failed_create_shows_the_runtime_error(containerd: Containerd, client_runtime: str,
                                               ctr_id: str) -> None:
    done = containerd.ctr("run", "--rm", *containerd.runc_options(client_runtime), IMAGE, ctr_id,
                          "/no/such/command")
    assert done.returncode != 0
    assert "/no/such/command" in done.stderr
    assert "no such file or directory" in done.stderr.lower()
