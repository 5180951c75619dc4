"""podman and conmon driving the runtime given by `podman --runtime PATH`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from daemons import TERM_SERVER, Podman, stop_term_server
from images import IMAGE

pytestmark = pytest.mark.requires("root", "cmd:podman", "cmd:conmon")

# busybox sh runs a trap only once its foreground `sleep 1` ends: TERM then means exit 0.
SERVER = TERM_SERVER


@pytest.fixture(scope="module")
def server(podman: Podman, client_runtime: str) -> Iterator[str]:
    """A detached container for the tests that look at or exec into a running one."""
    name = "cl-" + uuid.uuid4().hex[:10]
    done = podman.run(client_runtime, "-d", "--name", name, IMAGE, "sh", "-c", SERVER)
    assert done.returncode == 0, done.stderr
    yield name
    podman.podman(client_runtime, "rm", "--force", "--time", "0", name)


def test_run_rm_returns_output_and_exit_code(podman: Podman, client_runtime: str) -> None:
    done = podman.run(client_runtime, "--rm", IMAGE,
                         "sh", "-c", "echo out-$((6*7)); echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out-42\n", "err\n"), done.stderr


def test_run_tty(podman: Podman, client_runtime: str) -> None:
    done = podman.run(client_runtime, "--rm", "-t", IMAGE, "sh", "-c", "tty; exit 4")
    assert (done.returncode, done.stdout.strip()) == (4, "/dev/pts/0"), done.stderr


def test_exec(podman: Podman, client_runtime: str, server: str) -> None:
    done = podman.podman(client_runtime, "exec", server, "sh", "-c", "echo exec-$((6*7)); exit 5")
    assert (done.returncode, done.stdout) == (5, "exec-42\n"), done.stderr


def test_exec_tty(podman: Podman, client_runtime: str, server: str) -> None:
    done = podman.podman(client_runtime, "exec", "-t", server, "tty")
    assert (done.returncode, done.stdout.strip()[:9]) == (0, "/dev/pts/"), done.stderr


def test_top(podman: Podman, client_runtime: str, server: str) -> None:
    done = podman.podman(client_runtime, "top", server, "pid", "args")
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[1].strip().split(maxsplit=1)
    assert first == ["1", "sh -c " + SERVER]


def test_detached_stop_rm(podman: Podman, client_runtime: str, cl_id: str) -> None:
    done = podman.run(client_runtime, "-d", "--name", cl_id, IMAGE, "sh", "-c", SERVER)
    assert done.returncode == 0, done.stderr
    try:
        stop_term_server(podman.podman, client_runtime, cl_id)
    finally:
        rm = podman.podman(client_runtime, "rm", "--force", cl_id)
    assert rm.returncode == 0, rm.stderr
    listed = podman.podman(client_runtime, "ps", "--all", "--format", "{{.Names}}")
    assert cl_id not in listed.stdout.split()


def test_failed_create_shows_the_runtime_error(podman: Podman, client_runtime: str) -> None:
    done = podman.run(client_runtime, "--rm", IMAGE, "/no/such/command")
    assert done.returncode == 127, done.stderr  # podman: the command was not found
    assert "/no/such/command" in done.stderr
    assert "no such file or directory" in done.stderr.lower()


def test_tmpfs_starts_with_the_image_content(podman: Podman, client_runtime: str) -> None:
    """`podman run --tmpfs DIR` asks for runc's `tmpcopyup`: the tmpfs starts as a copy of DIR."""
    done = podman.run(client_runtime, "--rm", "--tmpfs", "/bin", IMAGE, "/bin/sh", "-c",
                      "grep -c ' /bin tmpfs' /proc/mounts; ls /bin | grep -c '^sh$'")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"], done.stdout
