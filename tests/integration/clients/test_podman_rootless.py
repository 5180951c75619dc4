"""Rootless podman driving the runtime: `podman --runtime PATH` run by a real unprivileged user the
test makes (with ranges in /etc/subuid and /etc/subgid), as podman's default mode on a desktop.

podman re-executes itself in a user namespace held by its pause process (newuidmap/newgidmap map
root to the user and 1..65536 to its subordinate range) and runs conmon and the runtime there, as
that namespace's root. On this host: no slirp4netns or pasta, so `--network none`; native rootless
overlay (kernel >= 5.13) for storage; cgroup v1, so podman asks for no cgroup at all. Everything
lives under one temp dir (storage, XDG_RUNTIME_DIR, HOME); teardown kills every process left of the
user (podman's pause process outlives each command) by pid, and the user is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from daemons import TERM_SERVER, Done, Podman, stop_term_server
from images import IMAGE, Images
from testlib import HostUser, unprivileged_user

pytestmark = pytest.mark.requires("root", "cmd:podman", "cmd:conmon", "userns", "cmd:setpriv",
                                  "cmd:useradd", "cmd:newuidmap")


@dataclass
class RootlessPodman:
    """podman as `user`, with the private containers.conf and storage.conf of daemons.Podman."""

    user: HostUser
    top: Path

    def start(self, archive: Path) -> None:
        conf = Podman(self.top)
        (self.top / "containers.conf").write_text(conf.conf())
        (self.top / "storage.conf").write_text(conf.storage_conf())
        for d in ("networks", "tmp", "home", "vol"):
            (self.top / d).mkdir()
        (self.top / "xdg").mkdir(mode=0o700)
        shutil.copy(archive, self.top / "image.tar")
        for path in [self.top, *self.top.rglob("*")]:
            os.lchown(path, self.user.uid, self.user.gid)
        loaded = self.podman(None, "load", "-i", str(self.top / "image.tar"), timeout=120)
        assert loaded.returncode == 0, f"podman load failed: {loaded.stderr}"

    def podman(self, runtime: str | None, *args: str, timeout: float = 60) -> Done[str]:
        env = {"PATH": os.environ["PATH"], "HOME": str(self.top / "home"), "USER": self.user.name,
               "XDG_RUNTIME_DIR": str(self.top / "xdg"), "TMPDIR": str(self.top / "tmp"),
               "CONTAINERS_CONF": str(self.top / "containers.conf"),
               "CONTAINERS_STORAGE_CONF": str(self.top / "storage.conf")}
        argv = Podman(self.top).argv(runtime, *args)
        return self.user.run(*argv, env=env, timeout=timeout)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.podman(None, "rm", "--all", "--force", "--time", "0", timeout=30)
        _kill_processes_of(self.user.uid)
        shutil.rmtree(self.top, ignore_errors=True)


def _kill_processes_of(uid: int) -> None:
    """SIGKILL each process of the test's user (podman's pause process, a conmon left over)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if entry.stat().st_uid == uid:
                os.kill(int(entry.name), signal.SIGKILL)


@pytest.fixture(scope="module")
def rootless_podman(client_images: Images) -> Iterator[RootlessPodman]:
    with unprivileged_user("rl-" + uuid.uuid4().hex[:6], subids=True) as user:
        top = Path(tempfile.mkdtemp(prefix="rl-podman-"))
        client = RootlessPodman(user, top)
        try:
            client.start(client_images.oci_archive)
            yield client
        finally:
            client.stop()


@pytest.fixture
def runtime(rootless_podman: RootlessPodman, client_runtime: str) -> str:
    if rootless_podman.user.run(client_runtime, "--version").returncode != 0:
        pytest.skip(f"{client_runtime} is not executable by other users here")
    return client_runtime


def _maps(user: HostUser) -> list[list[str]]:
    start, count = user.subids("uid")
    return [["0", str(user.uid), "1"], ["1", str(start), str(count)]]


def test_rootless_run_rm(rootless_podman: RootlessPodman, runtime: str) -> None:
    done = rootless_podman.podman(runtime, "run", "--rm", "--network", "none", IMAGE, "sh", "-c",
                                  "echo out-$((6*7)); id -u; cat /proc/self/uid_map; exit 3")
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["out-42", "0"]
    assert [line.split() for line in lines[2:]] == _maps(rootless_podman.user)
    listed = rootless_podman.podman(runtime, "ps", "--all", "--format", "{{.Names}}")
    assert listed.stdout.strip() == ""


def test_rootless_files_belong_to_the_mapped_ids(rootless_podman: RootlessPodman,
                                                 runtime: str) -> None:
    """Seen from the host: root of the container is the user, uid 1000 its subordinate 100000+999."""
    vol = rootless_podman.top / "vol"
    name = uuid.uuid4().hex[:8]
    done = rootless_podman.podman(runtime, "run", "--rm", "--network", "none", "-v",
                                  f"{vol}:/vol", IMAGE, "sh", "-c",
                                  f"touch /vol/{name}-root /vol/{name}-app && "
                                  f"chown 1000:1000 /vol/{name}-app")
    assert done.returncode == 0, done.stderr
    user = rootless_podman.user
    owner = (vol / f"{name}-root").stat()
    assert (owner.st_uid, owner.st_gid) == (user.uid, user.gid)
    app = (vol / f"{name}-app").stat()
    assert (app.st_uid, app.st_gid) == (user.subids("uid")[0] + 999, user.subids("gid")[0] + 999)


def test_rootless_detached_exec_stop(rootless_podman: RootlessPodman, runtime: str) -> None:
    name = "rl-" + uuid.uuid4().hex[:8]
    done = rootless_podman.podman(runtime, "run", "-d", "--name", name, "--network", "none",
                                  IMAGE, "sh", "-c", TERM_SERVER)
    assert done.returncode == 0, done.stderr
    try:
        ex = rootless_podman.podman(runtime, "exec", name, "sh", "-c",
                                    "echo exec-$((6*7)); cat /proc/self/uid_map; exit 5")
        assert ex.returncode == 5, ex.stderr
        assert ex.stdout.splitlines()[0] == "exec-42"
        assert [line.split() for line in ex.stdout.splitlines()[1:]] == _maps(rootless_podman.user)
        stop_term_server(rootless_podman.podman, runtime, name)
    finally:
        rm = rootless_podman.podman(runtime, "rm", "--force", name)
    assert rm.returncode == 0, rm.stderr
