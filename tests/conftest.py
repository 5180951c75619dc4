"""Shared fixtures: the installed pyrunc command, busybox bundles, and the `requires` marker.

Every integration test drives a real binary on a real bundle. Each test gets its own `--root`
directory and container ids, so tests (and helpers running suites side by side) never collide.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testlib import BUSYBOX, Bundle, Result, Runtime, base_config, make_rootfs  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
PYRUNC = os.environ.get("PYRUNC") or str(REPO / ".venv" / "bin" / "pyrunc")
REFERENCE = REPO.parent / "shared" / "reference"


def _why_not(what: str) -> str | None:
    """The reason a requirement is unmet, or None when it is met."""
    if what == "root":
        return None if os.geteuid() == 0 else "needs root"
    if what == "busybox":
        return None if os.path.exists(BUSYBOX) else "needs busybox-static"
    if what == "reference":
        return None if REFERENCE.is_dir() else "needs ../shared/reference"
    if what == "cgroup-v1":
        return None if os.path.isdir("/sys/fs/cgroup/memory") else "needs a cgroup v1 memory hierarchy"
    if what == "cgroup-v2":
        ok = os.path.exists("/sys/fs/cgroup/cgroup.controllers") or os.path.exists(
            "/sys/fs/cgroup/unified/cgroup.controllers")
        return None if ok else "needs a cgroup v2 mount"
    if what == "userns":
        try:
            with open("/proc/sys/user/max_user_namespaces") as f:
                return None if int(f.read()) > 0 else "user namespaces disabled"
        except OSError:
            return "no user namespaces"
    if what.startswith("cmd:"):
        return None if shutil.which(what[4:]) else f"needs {what[4:]} on PATH"
    if what == "seccomp":
        try:
            import seccomp  # noqa: F401
        except ImportError:
            return "needs libseccomp's Python bindings (python3-seccomp)"
        return None
    raise ValueError(f"unknown requirement {what!r}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stress: long reliability runs (make stress)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for mark in item.iter_markers("requires"):
            for what in mark.args:
                reason = _why_not(what)
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if _why_not("busybox"):
        pytest.skip("needs busybox-static")
    path = tmp_path_factory.mktemp("rootfs-src") / "rootfs"
    make_rootfs(path)
    return path


@pytest.fixture
def make_bundle(tmp_path: Path, busybox_rootfs: Path) -> Callable[..., Bundle]:
    counter = iter(range(1000))

    def _make(*args: str) -> Bundle:
        path = tmp_path / f"bundle{next(counter)}"
        path.mkdir()
        return Bundle(path, busybox_rootfs, list(args) or ["true"])

    return _make


@pytest.fixture
def bundle(make_bundle: Callable[..., Bundle]) -> Bundle:
    return make_bundle("true")


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """pyrunc with a private --root; every container left at the end is force-deleted."""
    root = tmp_path / "state"
    rt = Runtime(PYRUNC, root)
    yield rt
    _cleanup(rt)


def _cleanup(rt: Runtime) -> None:
    if not rt.root.is_dir():
        return
    for entry in rt.root.iterdir():
        if entry.is_dir():
            subprocess.run(rt.argv("delete", "--force", entry.name), capture_output=True, timeout=30)


@pytest.fixture
def cid() -> str:
    return "t-" + uuid.uuid4().hex[:12]
