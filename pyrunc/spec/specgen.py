"""`pyrunc spec`: the starter config.json, field for field what `runc spec` writes.

Only `ociVersion` differs (ours is the version we implement). `--rootless` makes the same edits as
runc: a user namespace mapping root to the caller, no network namespace (an unprivileged user cannot
configure one), /sys bind-mounted (sysfs cannot be mounted without owning the network namespace),
no devpts `gid=5` (the group is unmapped) and no device cgroup rules.
"""

from __future__ import annotations

import json

from pyrunc import OCI_VERSION
from pyrunc._typing import MYPY
from pyrunc.errors import SpecError
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.spec.types import Config, Linux, Mount, Process

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

_MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
]
_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def _process() -> Process:
    return {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {"bounding": list(_CAPS), "effective": list(_CAPS),
                         "permitted": list(_CAPS), "ambient": list(_CAPS)},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    }


def _mounts() -> list[Mount]:
    return [
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
    ]


def _linux() -> Linux:
    return {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        "maskedPaths": list(_MASKED_PATHS),
        "readonlyPaths": list(_READONLY_PATHS),
    }


def _make_rootless(spec: Config) -> None:
    """runc's specconv.ToRootless, applied to the default spec."""
    linux = spec["linux"]
    namespaces = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    namespaces.append({"type": "user"})
    spec["linux"] = {
        "uidMappings": [{"containerID": 0, "hostID": os.geteuid(), "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": os.getegid(), "size": 1}],
        "namespaces": namespaces,
        "maskedPaths": linux["maskedPaths"],
        "readonlyPaths": linux["readonlyPaths"],
    }
    for mount in spec["mounts"]:
        if mount["destination"] == "/sys":
            mount["type"], mount["source"] = "none", "/sys"
            mount["options"] = ["rbind", "nosuid", "noexec", "nodev", "ro"]
        elif "options" in mount:
            # uid=/gid= name ids of the host, which the one-id mapping does not contain.
            mount["options"] = [o for o in mount["options"] if not o.startswith(("uid=", "gid="))]


def default_spec(rootless: bool = False) -> Config:
    spec: Config = {
        "ociVersion": OCI_VERSION,
        "process": _process(),
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": _mounts(),
        "linux": _linux(),
    }
    if rootless:
        _make_rootless(spec)
    return spec


def dumps(spec: Config) -> str:
    """Go's json.MarshalIndent(spec, "", "\\t"): tab indents, no trailing newline."""
    return json.dumps(spec, indent="\t")


def write_spec(bundle: str, rootless: bool = False) -> None:
    """Write `<bundle>/config.json`; never overwrite one (runc's wording on refusal)."""
    path = os.path.join(bundle, "config.json")
    data = dumps(default_spec(rootless))  # ASCII: json.dumps escapes the rest
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise SpecError("File config.json exists. Remove it first") from None
    except OSError as exc:
        raise SpecError(f"open {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as f:
        f.write(data)
