"""Busybox bundles with the defaults `runc spec` writes, built without any runtime installed."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

BUSYBOX = "/usr/bin/busybox"

_DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

RUNC_SPEC_DEFAULTS: dict[str, Any] = {
    "ociVersion": "1.0.2-dev",
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {k: list(_DEFAULT_CAPS)
                         for k in ("bounding", "effective", "inheritable", "permitted", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "runc",
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
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
}


def default_config(args: list[str]) -> dict[str, Any]:
    """`runc spec`'s config.json with `args` as the process and no terminal."""
    config = copy.deepcopy(RUNC_SPEC_DEFAULTS)
    config["process"]["args"] = list(args)
    config["process"]["terminal"] = False
    return config


def make_rootfs(rootfs: Path) -> None:
    """A busybox-static root: /bin/busybox, one symlink per applet, passwd and group files."""
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True)
    for name in applets.stdout.split():
        link = rootfs / "bin" / name
        if not link.is_symlink() and not link.exists():
            link.symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (rootfs / "tmp").chmod(0o1777)


def write_bundle(path: Path, rootfs_src: Path, config: dict[str, Any]) -> Path:
    """A bundle at `path` with a copy of `rootfs_src` and `config`; returns `path`."""
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "rootfs").exists():
        shutil.copytree(rootfs_src, path / "rootfs", symlinks=True)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    return path
