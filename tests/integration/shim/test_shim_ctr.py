"""containerd drives pyrunc through its own shim: `ctr --runtime io.containerd.pyrunc.v2`.

Every container here is created, started, exec'd into, signalled, paused and deleted by the shim
daemon calling pyrunc in-process; the checks are what ctr reports and what the host shows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess  # noqa: TID251 (test helper)
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from daemons import (
    check_exec,
    check_exec_tty,
    in_terminal,
    run,
    task_fields,
    task_status,
    wait_until,
)
from images import IMAGE, Images
from shim_fixtures import SHIM_STATE, ShimContainerd, start_shim_containerd

from pyrunc.shim import messages as m
from pyrunc.shim import ttrpc, wire

if TYPE_CHECKING:
    from pyrunc.shim.wire import Msg, Table

pytestmark = pytest.mark.requires("root", "cmd:containerd", "cmd:ctr", "busybox")


def new_id() -> str:
    return "shim-" + uuid.uuid4().hex[:10]


def task_pid(cd: ShimContainerd, cid: str) -> int:
    fields = task_fields(cd, cid)
    if not fields:
        raise AssertionError(f"no task {cid}")
    return int(fields[1])


def shim_pid_of(pid: int) -> int:
    """The parent of a container's init: the shim daemon that reaps it."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


@pytest.fixture
def cid(shim_containerd: ShimContainerd) -> Iterator[str]:
    name = new_id()
    yield name
    shim_containerd.remove(name)


@pytest.fixture
def sleeper(shim_containerd: ShimContainerd, cid: str) -> str:
    done = shim_containerd.ctr("run", "-d", *shim_containerd.run_flags(), IMAGE, cid,
                               "sleep", "100000")
    assert done.returncode == 0, done.stderr
    assert task_status(shim_containerd, cid) == "RUNNING"
    return cid


def test_run_rm_returns_output_and_exit_code(shim_containerd: ShimContainerd, cid: str) -> None:
    done = shim_containerd.ctr("run", "--rm", *shim_containerd.run_flags(), IMAGE, cid,
                               "sh", "-c", "echo out-$((6*7)); echo err >&2; exit 3")
    assert (done.returncode, done.stdout) == (3, "out-42\n"), done.stderr
    assert "err" in done.stderr
    assert cid not in shim_containerd.ctr("container", "ls", "-q").stdout.split()
    # pyrunc's state for the container is gone with it
    assert not (SHIM_STATE / shim_containerd.namespace / cid).exists()


def test_stdin_reaches_the_container_and_ends(shim_containerd: ShimContainerd, cid: str) -> None:
    argv = shim_containerd.argv("run", "--rm", *shim_containerd.run_flags(), IMAGE, cid,
                                "sh", "-c", "tr a-z A-Z; echo done")
    done = run(argv, input="hello shim\n")
    assert (done.returncode, done.stdout) == (0, "HELLO SHIM\ndone\n"), done.stderr


def test_run_tty(shim_containerd: ShimContainerd, cid: str) -> None:
    argv = shim_containerd.argv("run", "--rm", "-t", *shim_containerd.run_flags(), IMAGE, cid,
                                "sh", "-c", "tty; exit 7")
    done = in_terminal(argv)
    assert done.returncode == 7, done.stdout
    assert "/dev/pts/0" in done.stdout


def test_containers_of_a_namespace_share_one_shim(shim_containerd: ShimContainerd,
                                                  sleeper: str) -> None:
    other = new_id()
    try:
        done = shim_containerd.ctr("run", "-d", *shim_containerd.run_flags(), IMAGE, other,
                                   "sleep", "100000")
        assert done.returncode == 0, done.stderr
        first, second = task_pid(shim_containerd, sleeper), task_pid(shim_containerd, other)
        assert shim_pid_of(first) == shim_pid_of(second)
        cmdline = Path(f"/proc/{shim_pid_of(first)}/cmdline").read_bytes()
        assert b"containerd-shim-pyrunc-v2" in cmdline
    finally:
        shim_containerd.remove(other)


def test_exec(shim_containerd: ShimContainerd, sleeper: str) -> None:
    check_exec(shim_containerd, sleeper)


def test_exec_tty(shim_containerd: ShimContainerd, sleeper: str) -> None:
    check_exec_tty(shim_containerd, sleeper)


def test_pause_resume(shim_containerd: ShimContainerd, sleeper: str) -> None:
    assert shim_containerd.ctr("task", "pause", sleeper).returncode == 0
    assert task_status(shim_containerd, sleeper) == "PAUSED"
    pid = task_pid(shim_containerd, sleeper)
    stat = Path(f"/proc/{pid}/stat").read_text()
    assert stat[stat.rindex(")") + 2] == "D"  # frozen by the v1 freezer
    assert shim_containerd.ctr("task", "resume", sleeper).returncode == 0
    assert task_status(shim_containerd, sleeper) == "RUNNING"


def test_metrics(shim_containerd: ShimContainerd, sleeper: str) -> None:
    done = shim_containerd.ctr("task", "metrics", sleeper)
    assert done.returncode == 0, done.stderr
    rows = dict(line.split(None, 1) for line in done.stdout.splitlines() if line.strip())
    assert rows["pids.current"].strip() == "1"
    assert int(rows["memory.usage_in_bytes"]) > 0


def test_ps_lists_the_init_process(shim_containerd: ShimContainerd, sleeper: str) -> None:
    pid = task_pid(shim_containerd, sleeper)
    done = shim_containerd.ctr("task", "ps", sleeper)
    assert done.returncode == 0, done.stderr
    assert str(pid) in [line.split()[0] for line in done.stdout.splitlines()[1:]]


def test_kill_delivers_the_signal(shim_containerd: ShimContainerd, cid: str) -> None:
    done = shim_containerd.ctr("run", "-d", *shim_containerd.run_flags(), IMAGE, cid, "sh", "-c",
                               "trap 'exit 42' TERM; while :; do sleep 0.1; done")
    assert done.returncode == 0, done.stderr
    pid = task_pid(shim_containerd, cid)
    assert shim_containerd.ctr("task", "kill", "-s", "SIGTERM", cid).returncode == 0
    wait_until(lambda: task_status(shim_containerd, cid) == "STOPPED", "task stopped",
               timeout=20)
    assert not Path(f"/proc/{pid}").exists()
    done = shim_containerd.ctr("task", "delete", cid)
    assert done.returncode == 0, done.stderr
    assert "exit code 42" in done.stderr  # ctr warns with the exit status of the deleted task
    assert task_status(shim_containerd, cid) == ""


def test_kill_all(shim_containerd: ShimContainerd, sleeper: str) -> None:
    assert shim_containerd.ctr("task", "kill", "-a", "-s", "SIGKILL", sleeper).returncode == 0
    wait_until(lambda: task_status(shim_containerd, sleeper) == "STOPPED", "task stopped",
               timeout=20)


def test_checkpoint_is_refused_clearly(shim_containerd: ShimContainerd, sleeper: str) -> None:
    done = shim_containerd.ctr("task", "checkpoint", sleeper)
    assert done.returncode != 0
    assert "checkpoint" in done.stderr and "pyrunc" in done.stderr, done.stderr


def _events_of(cd: ShimContainerd, cid: str, action: Callable[[], None]) -> list[str]:
    """The topics `ctr events` shows for container cid while `action` runs, in order."""
    watcher = subprocess.Popen(cd.argv("events"), stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # subscribed
        action()
        time.sleep(1.0)  # the shim publishes after each reply
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=10)
    # "2026-12-02 16:27:27.18 +0000 UTC <namespace> /tasks/start {...}"
    topics = [next((f for f in line.split() if f.startswith("/")), "") for line in out.splitlines()
              if f'"{cid}"' in line]
    return [t for t in topics if t.startswith("/tasks/")]


def test_task_events(shim_containerd: ShimContainerd, cid: str) -> None:
    def lifecycle() -> None:
        cd = shim_containerd
        assert cd.ctr("run", "-d", *cd.run_flags(), IMAGE, cid, "sleep", "100000").returncode == 0
        assert cd.ctr("task", "exec", *cd.fifo_dir(), "--exec-id", "ev1", cid,
                      "true").returncode == 0
        assert cd.ctr("task", "pause", cid).returncode == 0
        assert cd.ctr("task", "resume", cid).returncode == 0
        assert cd.ctr("task", "kill", "-s", "SIGKILL", cid).returncode == 0
        wait_until(lambda: task_status(cd, cid) == "STOPPED", "task stopped", timeout=20)
        assert cd.ctr("task", "delete", cid).returncode == 0

    topics = _events_of(shim_containerd, cid, lifecycle)
    assert topics == ["/tasks/create", "/tasks/start", "/tasks/exec-added",
                      "/tasks/exec-started", "/tasks/exit", "/tasks/paused", "/tasks/resumed",
                      "/tasks/exit", "/tasks/delete"], topics


@pytest.mark.requires("cgroup-v1")
def test_oom_event(shim_containerd: ShimContainerd, cid: str) -> None:
    def oom() -> None:
        done = shim_containerd.ctr("run", "--rm", "--memory-limit", str(8 << 20),
                                   *shim_containerd.run_flags(), IMAGE, cid, "sh", "-c",
                                   "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo ${#x}")
        assert done.returncode == 137, (done.returncode, done.stderr)

    assert "/tasks/oom" in _events_of(shim_containerd, cid, oom)


def test_containerd_restart_keeps_the_task(shim_containerd: ShimContainerd, sleeper: str) -> None:
    pid = task_pid(shim_containerd, sleeper)
    shim_containerd.restart()
    assert task_status(shim_containerd, sleeper) == "RUNNING"
    assert task_pid(shim_containerd, sleeper) == pid
    assert Path(f"/proc/{pid}").exists()
    assert shim_containerd.ctr("task", "kill", "-s", "SIGKILL", sleeper).returncode == 0
    wait_until(lambda: task_status(shim_containerd, sleeper) == "STOPPED", "task stopped",
               timeout=20)
    done = shim_containerd.ctr("task", "delete", sleeper)
    assert done.returncode == 0, done.stderr


def _shim_call(cd: ShimContainerd, cid: str, method: str, table: Table, request: Msg) -> bytes:
    """A call straight to the shim, over ttrpc, as containerd makes it."""
    bundle = cd.top / "state" / "io.containerd.runtime.v2.task" / cd.namespace / cid
    client = ttrpc.Client((bundle / "address").read_text())
    try:
        return client.call("containerd.task.v2.Task", method, wire.encode(table, request))
    finally:
        client.close()


@pytest.mark.requires("cgroup-v1")
def test_update_sets_the_cgroup(shim_containerd: ShimContainerd, sleeper: str) -> None:
    limit = 48 << 20
    resources = json.dumps({"memory": {"limit": limit}, "pids": {"limit": 77}}).encode()
    _shim_call(shim_containerd, sleeper, "Update", m.UPDATE_TASK_REQUEST, {
        "id": sleeper, "resources": {
            "type_url": "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
            "value": resources}})
    cgroup = f"{shim_containerd.namespace}/{sleeper}"
    assert Path(f"/sys/fs/cgroup/memory/{cgroup}/memory.limit_in_bytes").read_text() == f"{limit}\n"
    assert Path(f"/sys/fs/cgroup/pids/{cgroup}/pids.max").read_text() == "77\n"


def test_state_and_errors_over_ttrpc(shim_containerd: ShimContainerd, sleeper: str) -> None:
    state = wire.decode(m.STATE_RESPONSE, _shim_call(
        shim_containerd, sleeper, "State", m.STATE_REQUEST, {"id": sleeper}))
    assert (state["id"], state["status"]) == (sleeper, m.RUNNING)
    assert state["pid"] == task_pid(shim_containerd, sleeper)
    with pytest.raises(ttrpc.RpcError) as err:
        _shim_call(shim_containerd, sleeper, "State", m.STATE_REQUEST, {"id": "nonexistent"})
    assert err.value.code == ttrpc.NOT_FOUND
    with pytest.raises(ttrpc.RpcError) as err:
        _shim_call(shim_containerd, sleeper, "Delete", m.DELETE_REQUEST, {"id": sleeper})
    assert err.value.code == ttrpc.FAILED_PRECONDITION  # running: containerd must kill it first
    with pytest.raises(ttrpc.RpcError) as err:
        _shim_call(shim_containerd, sleeper, "Nope", m.STATE_REQUEST, {"id": sleeper})
    assert err.value.code == ttrpc.UNIMPLEMENTED


def _mounted(path: Path) -> bool:
    return any(line.split()[4] == str(path) for line in
               Path("/proc/self/mountinfo").read_text().splitlines())


def test_a_failed_create_leaves_nothing(shim_containerd: ShimContainerd, cid: str) -> None:
    done = shim_containerd.ctr("run", "--rm", *shim_containerd.run_flags(), IMAGE, cid,
                               "/no/such/program")
    assert done.returncode != 0
    assert "/no/such/program" in done.stderr, done.stderr
    bundle = shim_containerd.top / "state" / "io.containerd.runtime.v2.task" / \
        shim_containerd.namespace / cid
    assert not _mounted(bundle / "rootfs")
    assert not (SHIM_STATE / shim_containerd.namespace / cid).exists()
    assert task_status(shim_containerd, cid) == ""


def test_containers_outlive_a_dead_shim(shim_containerd: ShimContainerd, sleeper: str) -> None:
    """SIGKILL the shim while containerd is down: the container goes on running. containerd, back,
    finds the shim gone and runs `containerd-shim-pyrunc-v2 delete` for the task (which removes
    the container, as with runc's shim), and the next container gets a new shim."""
    pid = task_pid(shim_containerd, sleeper)
    shim = shim_pid_of(pid)
    assert shim_containerd.proc is not None
    shim_containerd.proc.terminate()
    shim_containerd.proc.wait(30)
    os.kill(shim, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{shim}").exists(), "shim gone", timeout=10)
    time.sleep(0.5)
    stat = Path(f"/proc/{pid}/stat").read_text()
    assert stat[stat.rindex(")") + 2] == "S"  # still sleeping, not killed with its shim
    shim_containerd.start()
    wait_until(lambda: task_status(shim_containerd, sleeper) in ("", "STOPPED"), "cleanup",
               timeout=30)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), "container removed", timeout=30)
    assert not (SHIM_STATE / shim_containerd.namespace / sleeper).exists()
    # containerd ran our `delete` and could read its DeleteResponse
    log = [line for line in (shim_containerd.top / "containerd.log").read_text().splitlines()
           if sleeper in line]
    assert any("cleaning up after shim disconnected" in line for line in log), log
    assert not any("failed to clean up" in line or "failed to delete" in line for line in log), log
    other = new_id()
    try:
        done = shim_containerd.ctr("run", "--rm", *shim_containerd.run_flags(), IMAGE, other,
                                   "echo", "again")
        assert (done.returncode, done.stdout) == (0, "again\n"), done.stderr
    finally:
        shim_containerd.remove(other)


def test_the_workload_inherits_no_ignored_signals(shim_containerd: ShimContainerd,
                                                  cid: str) -> None:
    """The shim is Python, which ignores SIGPIPE and SIGXFSZ; the container must not inherit that."""
    done = shim_containerd.ctr("run", "--rm", *shim_containerd.run_flags(), IMAGE, cid,
                               "grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["SigBlk:", "0" * 16, "SigIgn:", "0" * 16], done.stdout


@pytest.fixture(scope="module")
def quick_idle(shim_images: Images, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[ShimContainerd]:
    with start_shim_containerd(shim_images, tmp_path_factory.mktemp("shim-idle"), idle="1"
                               ) as daemon:
        yield daemon


def test_an_idle_shim_exits_and_a_new_one_takes_over(quick_idle: ShimContainerd) -> None:
    from pyrunc.shim.main import socket_address

    socket = Path(socket_address(str(quick_idle.sock), quick_idle.namespace)[len("unix://"):])
    cid = new_id()
    done = quick_idle.ctr("run", "--rm", *quick_idle.run_flags(), IMAGE, cid, "true")
    assert done.returncode == 0, done.stderr
    assert socket.exists()
    # its last task gone, the shim lingers PYRUNC_SHIM_IDLE (1 s here), then leaves nothing behind
    wait_until(lambda: not socket.exists(), "the shim's socket removed", timeout=20)
    wait_until(lambda: not (SHIM_STATE / quick_idle.namespace).exists(), "the shim's state removed",
               timeout=10)
    done = quick_idle.ctr("run", "--rm", *quick_idle.run_flags(), IMAGE, new_id(), "echo", "hi")
    assert (done.returncode, done.stdout) == (0, "hi\n"), done.stderr


def test_parallel_runs_share_the_shim(shim_containerd: ShimContainerd) -> None:
    """containerd calls the one shim over several connections at once: each container gets its
    own output and exit status."""
    ids = [new_id() for _ in range(6)]
    procs = [subprocess.Popen(shim_containerd.argv(
        "run", "--rm", *shim_containerd.run_flags(), IMAGE, cid, "sh", "-c",
        f"echo {cid}; sleep 0.$((RANDOM % 5)); exit {n}"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for n, cid in enumerate(ids)]
    try:
        results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    finally:
        for cid in ids:
            shim_containerd.remove(cid)
    for n, (cid, (out, err, rc)) in enumerate(zip(ids, results, strict=True)):
        assert (rc, out) == (n, f"{cid}\n"), err
