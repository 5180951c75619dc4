"""Fixtures for driving runtimes through real clients: containerd (ctr), podman and dockerd.

Every test that takes `client_runtime` runs once per runtime binary listed in the environment
variable CLIENT_TEST_RUNTIMES (comma-separated paths), DEFAULT_RUNTIMES otherwise. Each daemon
starts once per session under its own temp directory and is torn down at the end.
"""

from __future__ import annotations

import os
import subprocess  # noqa: TID251 (only for its TimeoutExpired)
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemons import Containerd, Dockerd, Podman, need, started
from images import Images, images_fixture

REPO = Path(__file__).resolve().parents[3]
PYRUNC = os.environ.get("PYRUNC") or str(REPO / ".venv" / "bin" / "pyrunc")
# pyrunc, and runc beside it: every flow must pass with pyrunc where it passes with runc.
DEFAULT_RUNTIMES = [PYRUNC, "/usr/sbin/runc"]


def client_runtimes() -> list[str]:
    listed = os.environ.get("CLIENT_TEST_RUNTIMES")
    paths = [p.strip() for p in listed.split(",")] if listed else DEFAULT_RUNTIMES
    return [p for p in paths if p]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "client_runtime" in metafunc.fixturenames:
        metafunc.parametrize("client_runtime", client_runtimes(), indirect=True,
                             scope="session", ids=lambda p: Path(p).name)


@pytest.fixture(scope="session")
def client_runtime(request: pytest.FixtureRequest) -> str:
    path: str = request.param
    if not os.access(path, os.X_OK):
        pytest.skip(f"runtime {path} is not an executable file")
    return path


# Runtimes under which a client command timed out: their later tests fail at once, so one
# hang costs one timeout, not one per test.
HUNG: dict[str, str] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[None]:
    report = yield
    runtime = _runtime_of(item)
    if runtime and call.excinfo and call.excinfo.errisinstance(subprocess.TimeoutExpired):
        HUNG.setdefault(runtime, f"{item.name}: {call.excinfo.value}")
    return report


def _runtime_of(node: pytest.Item) -> str | None:
    callspec = getattr(node, "callspec", None)
    return callspec.params.get("client_runtime") if callspec else None


@pytest.fixture(autouse=True)
def _not_hung(request: pytest.FixtureRequest) -> None:
    runtime = _runtime_of(request.node)
    if runtime in HUNG:
        pytest.fail(f"{runtime} hung in an earlier test, {HUNG[runtime]}")


@pytest.fixture
def cl_id() -> str:
    """A fresh container name; every client test names its containers cl-..."""
    return "cl-" + uuid.uuid4().hex[:10]


client_images = images_fixture("client_images", "cl-images")


@pytest.fixture(scope="session")
def containerd(client_images: Images, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Containerd]:
    need("containerd", "ctr")
    archive = str(client_images.oci_archive)
    with started(Containerd(tmp_path_factory.mktemp("cl-containerd")),
                 lambda d: d.ctr("images", "import", archive, timeout=120)) as daemon:
        yield daemon


@pytest.fixture(scope="session")
def podman(client_images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    need("podman", "conmon")
    archive = str(client_images.oci_archive)
    with started(Podman(tmp_path_factory.mktemp("cl-podman")),
                 lambda c: c.podman(None, "load", "-i", archive, timeout=120)) as client:
        yield client


@pytest.fixture(scope="session")
def dockerd(client_images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    need("dockerd", "/usr/bin/docker")
    daemon = Dockerd.for_runtimes(tmp_path_factory.mktemp("cl-dockerd"), client_runtimes())
    daemon.config_file = str(REPO / "contrib" / "docker" / "daemon.json")  # its runtime "pyrunc", as written
    archive = str(client_images.docker_archive)
    with started(daemon, lambda d: d.docker("load", "-i", archive, timeout=120)):
        yield daemon


@pytest.fixture
def ctr_id(containerd: Containerd, cl_id: str) -> Iterator[str]:
    """A container id for the test; its task and container are removed afterwards."""
    yield cl_id
    containerd.remove(cl_id)
