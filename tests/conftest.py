"""Shared fixtures: the installed pyrunc command, busybox bundles, and the `requires` marker.

Every integration test drives a real binary on a real bundle. Each test gets its own `--root`
directory and container ids, so tests (and helpers running suites side by side) never collide.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYRUNC = os.environ.get("PYRUNC") or str(REPO / ".venv" / "bin" / "pyrunc")
BUSYBOX = "/usr/bin/busybox"
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


@dataclass
class Result:
    rc: int
    out: str
    err: str


@dataclass
class Runtime:
    """A runtime binary with a private --root; `run(...)` returns rc, stdout, stderr."""

    binary: str
    root: Path

    def argv(self, *args: str, root: bool = True) -> list[str]:
        return [self.binary, *(["--root", str(self.root)] if root else []), *args]

    def run(self, *args: str, input: str | None = None, timeout: float = 60,
            check: bool = False, root: bool = True, **kw: object) -> Result:
        p = subprocess.run(self.argv(*args, root=root), input=input, capture_output=True,
                           text=True, timeout=timeout, **kw)  # type: ignore[call-overload]
        r = Result(p.returncode, p.stdout, p.stderr)
        if check and r.rc != 0:
            raise AssertionError(f"{args} failed rc={r.rc}: {r.err}{r.out}")
        return r

    def state(self, cid: str) -> dict[str, object]:
        return json.loads(self.run("state", cid, check=True).out)  # type: ignore[no-any-return]


def make_rootfs(rootfs: Path) -> None:
    """A minimal busybox-static root: /bin/<applet> links, /etc/passwd and /etc/group."""
    for d in ("bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "usr/bin"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True)
    for name in applets.stdout.split():
        link = rootfs / "bin" / name
        if not link.exists():
            link.symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        "app:x:1000:1000:app:/tmp:/bin/sh\n")
    (rootfs / "etc" / "group").write_text(
        "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nextra:x:2000:app\n")
    (rootfs / "tmp").chmod(0o1777)


_ROOTFS_CACHE: dict[str, Path] = {}


def base_config(args: list[str]) -> dict[str, object]:
    """The same defaults `runc spec` writes, with `args`, and terminal off."""
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                             for k in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyrunc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }


class Bundle:
    """A bundle directory with a busybox rootfs; edit `.config` and call `.write()`."""

    def __init__(self, path: Path, rootfs_src: Path, args: list[str]) -> None:
        self.path = path
        self.rootfs = path / "rootfs"
        shutil.copytree(rootfs_src, self.rootfs, symlinks=True)
        self.config: dict = base_config(args)  # type: ignore[type-arg]
        self.write()

    def write(self) -> None:
        (self.path / "config.json").write_text(json.dumps(self.config, indent=2))

    @property
    def process(self) -> dict:  # type: ignore[type-arg]
        return self.config["process"]  # type: ignore[no-any-return]

    @property
    def linux(self) -> dict:  # type: ignore[type-arg]
        return self.config["linux"]  # type: ignore[no-any-return]


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
