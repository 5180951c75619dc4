"""dockerd driving the runtime registered as `--add-runtime NAME=PATH`, via containerd's shim."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from daemons import Dockerd, Done
from images import IMAGE

pytestmark = pytest.mark.requires("root", "cmd:dockerd")

SERVER = "trap 'exit 0' TERM; echo up; while :; do sleep 1; done"
CAP_SYS_RESOURCE = 24


class Docker:
    """`docker run` and friends with the runtime under test; no network (dockerd has no bridge)."""

    def __init__(self, daemon: Dockerd, runtime: str) -> None:
        self.daemon, self.runtime = daemon, daemon.runtime_name(runtime)

    def run(self, *args: str) -> Done[str]:
        return self.daemon.docker("run", "--runtime", self.runtime, "--network", "none", *args)

    def __call__(self, *args: str) -> Done[str]:
        return self.daemon.docker(*args)


@pytest.fixture
def docker(dockerd: Dockerd, client_runtime: str) -> Docker:
    return Docker(dockerd, client_runtime)


@pytest.fixture(scope="module")
def server(dockerd: Dockerd, client_runtime: str) -> Iterator[str]:
    """A detached container that the exec, pause, update and top tests share."""
    name = "cl-" + uuid.uuid4().hex[:10]
    done = Docker(dockerd, client_runtime).run("-d", "--name", name, IMAGE, "sh", "-c", SERVER)
    assert done.returncode == 0, done.stderr
    yield name
    dockerd.docker("rm", "--force", name)


def test_run_rm_returns_output_and_exit_code(docker: Docker) -> None:
    done = docker.run("--rm", IMAGE, "sh", "-c", "echo out-$((6*7)); echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out-42\n", "err\n"), done.stderr


def test_run_tty(docker: Docker) -> None:
    done = docker.run("--rm", "-t", IMAGE, "sh", "-c", "tty; exit 4")
    assert (done.returncode, done.stdout.strip()) == (4, "/dev/pts/0"), done.stderr


def test_exec(docker: Docker, server: str) -> None:
    done = docker("exec", server, "sh", "-c", "echo exec-$((6*7)); exit 5")
    assert (done.returncode, done.stdout) == (5, "exec-42\n"), done.stderr


def test_exec_tty(docker: Docker, server: str) -> None:
    done = docker("exec", "-t", server, "tty")
    assert (done.returncode, done.stdout.strip()[:9]) == (0, "/dev/pts/"), done.stderr


def test_top(docker: Docker, server: str) -> None:
    pid = docker("inspect", "-f", "{{.State.Pid}}", server).stdout.strip()
    done = docker("top", server, "-o", "pid,comm")  # docker asks the runtime for the pids
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    assert [pid, "sh"] in rows
    assert all(comm == "sleep" for p, comm in rows if p != pid), rows


def test_pause_unpause(docker: Docker, server: str) -> None:
    assert docker("pause", server).returncode == 0
    try:
        assert docker("inspect", "-f", "{{.State.Status}}", server).stdout.strip() == "paused"
    finally:
        unpaused = docker("unpause", server)
    assert unpaused.returncode == 0, unpaused.stderr
    assert docker("exec", server, "echo", "awake").stdout == "awake\n"


def test_update_memory(docker: Docker, server: str) -> None:
    done = docker("update", "--memory", "64m", "--memory-swap", "128m", server)
    assert done.returncode == 0, done.stderr
    limit = docker("exec", server, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert limit.stdout.strip() == str(64 << 20)


def test_detached_rm_force(docker: Docker, cl_id: str) -> None:
    done = docker.run("-d", "--name", cl_id, IMAGE, "sh", "-c", SERVER)
    assert done.returncode == 0, done.stderr
    assert docker("inspect", "-f", "{{.State.Status}}", cl_id).stdout.strip() == "running"
    removed = docker("rm", "-f", cl_id)
    assert removed.returncode == 0, removed.stderr
    assert cl_id not in docker("ps", "-a", "--format", "{{.Names}}").stdout.split()


def test_failed_create_shows_the_runtime_error(docker: Docker) -> None:
    done = docker.run("--rm", IMAGE, "/no/such/command")
    assert done.returncode == 127, done.stderr  # docker: the command was not found
    assert "/no/such/command" in done.stderr
    assert "no such file or directory" in done.stderr.lower()


def test_capability_outside_the_bounding_set(docker: Docker, client_runtime: str) -> None:
    """runc refuses a capability root cannot grant; runtime-spec 1.3 (config.md, capabilities)
    says it MUST be logged as a warning and SHOULD NOT fail the container: pyrunc does that."""
    with open("/proc/self/status") as f:
        bounding = int(next(ln for ln in f if ln.startswith("CapBnd:")).split()[1], 16)
    if bounding & (1 << CAP_SYS_RESOURCE):
        pytest.skip("root's bounding set has CAP_SYS_RESOURCE: nothing for the runtime to refuse")
    done = docker.run("--rm", "--cap-add", "SYS_RESOURCE", IMAGE, "grep", "CapEff", "/proc/self/status")
    if os.path.basename(client_runtime) == "runc":
        assert done.returncode != 0
        assert "operation not permitted" in done.stderr.lower(), done.stderr
        return
    assert done.returncode == 0, done.stderr
    eff = int(done.stdout.split()[1], 16)
    assert eff and not eff & (1 << CAP_SYS_RESOURCE), done.stdout


def test_contrib_daemon_json_as_written(dockerd: Dockerd) -> None:
    """contrib/docker/daemon.json registers "pyrunc" at /usr/local/bin/pyrunc, which `make install`
    links to the venv's launcher: a container runs through it, and the runtime is really pyrunc."""
    if not os.path.exists("/usr/local/bin/pyrunc"):
        pytest.skip("needs `make install` (/usr/local/bin/pyrunc)")
    name = "cl-" + uuid.uuid4().hex[:10]
    r = dockerd.docker("run", "--name", name, "--runtime", "pyrunc", "--network", "none", IMAGE,
                       "echo", "contrib ok")
    try:
        assert (r.returncode, r.stdout) == (0, "contrib ok\n"), r.stderr
        info = dockerd.docker("inspect", "-f", "{{.HostConfig.Runtime}}", name)
        assert info.stdout.strip() == "pyrunc"
    finally:
        dockerd.docker("rm", "-f", name)
