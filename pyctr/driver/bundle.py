"""Image config + `run` options -> an OCI bundle's config.json (runtime-spec shape).

The defaults are those of `runc spec` and docker: pid/ipc/uts/mount (and network) namespaces,
docker's masked and read-only paths and default capabilities, the default mounts, and a seccomp
profile. Entrypoint + Cmd, Env, WorkingDir, User, Volumes and Labels come from the image; the
options override them.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyctr.driver import seccomp_profile, users
from pyctr.driver.paths import secure_join
from pyctr.errors import ContainerError

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")
ALL_CAPS = DEFAULT_CAPS + (
    "CAP_DAC_READ_SEARCH", "CAP_LINUX_IMMUTABLE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_LEASE", "CAP_AUDIT_CONTROL", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE")
MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([bkmg]?)b?$", re.IGNORECASE)


@dataclass
class RunOptions:
    args: list[str] = field(default_factory=list)
    entrypoint: str | None = None
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    volumes: list[str] = field(default_factory=list)
    read_only: bool = False
    memory: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    network: str = "none"
    # --network container:<id>: that container's /proc/<pid>/ns/net and its /etc directory
    join_netns: str = ""
    shared_etc: str = ""
    publish: list[str] = field(default_factory=list)
    publish_all: bool = False  # -P: every port the image EXPOSEs, on a free host port
    tty: bool = False
    seccomp: bool = True
    log_max_size: int = 10 << 20
    log_max_files: int = 3


def parse_size(text: str) -> int:
    m = _SIZE.match(text.strip())
    if not m:
        raise ContainerError(f"invalid size {text!r}")
    scale = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def capabilities(add: list[str], drop: list[str]) -> list[str]:
    def norm(c: str) -> str:
        c = c.upper()
        return c if c == "ALL" or c.startswith("CAP_") else "CAP_" + c
    caps = list(DEFAULT_CAPS)
    adds, drops = [norm(c) for c in add], [norm(c) for c in drop]
    caps = list(ALL_CAPS) if "ALL" in adds else caps + [c for c in adds if c not in caps]
    if "ALL" in drops:
        return [c for c in adds if c != "ALL"] if "ALL" not in adds else []
    unknown = [c for c in adds + drops if c != "ALL" and c not in ALL_CAPS]
    if unknown:
        raise ContainerError(f"unknown capability {unknown[0]}")
    return [c for c in caps if c not in drops]


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    env: dict[str, str] = {}
    for item in base + extra:
        key, sep, value = item.partition("=")
        if not sep:  # `-e NAME` takes the value from our own environment
            if key not in os.environ:
                continue
            value = os.environ[key]
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH.split("=", 1)[1])
    return [f"{k}={v}" for k, v in env.items()]


def process_args(image: dict[str, Any], opts: RunOptions) -> list[str]:
    if opts.entrypoint is not None:
        entry = [opts.entrypoint] if opts.entrypoint else []
        cmd = opts.args  # docker: --entrypoint resets the image's Cmd
    else:
        entry = list(image.get("Entrypoint") or [])
        cmd = opts.args or list(image.get("Cmd") or [])
    args = entry + cmd
    if not args:
        raise ContainerError("no command specified")
    return args


def default_mounts() -> list[dict[str, Any]]:
    """The runtime-spec defaults (as `runc spec` writes them), /proc as docker mounts it."""
    from pyrunc.spec.specgen import default_spec

    mounts: list[dict[str, Any]] = [dict(m) for m in default_spec()["mounts"]]
    for m in mounts:
        if m["destination"] == "/proc":
            m["options"] = ["nosuid", "noexec", "nodev"]
    return mounts


def bind(source: Path | str, dest: str, ro: bool = False) -> dict[str, Any]:
    return {"destination": dest, "type": "bind", "source": str(source),
            "options": ["rbind", "rprivate"] + (["ro"] if ro else [])}


def volume_mounts(image: dict[str, Any], opts: RunOptions, rootfs: Path,
                  cdir: Path) -> list[dict[str, Any]]:
    mounts = []
    explicit = set()
    for spec in opts.volumes:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not parts[1].startswith("/"):
            raise ContainerError(f"invalid volume {spec!r} (want /host:/ctr[:ro])")
        host = Path(parts[0]).resolve()
        host.mkdir(parents=True, exist_ok=True) if not host.exists() else None
        ro = len(parts) == 3 and "ro" in parts[2].split(",")
        mounts.append(bind(host, parts[1], ro))
        explicit.add(parts[1].rstrip("/") or "/")
    for n, dest in enumerate(sorted(image.get("Volumes") or {})):
        if dest.rstrip("/") in explicit:
            continue
        vol = cdir / "volumes" / str(n)
        if not vol.exists():
            populate_volume(secure_join(rootfs, dest), vol)
        mounts.append(bind(vol, dest))
    return mounts


def populate_volume(src: Path, vol: Path) -> None:
    """A new volume gets the image's content at its mount point, with owners and modes (docker
    copies them too: a VOLUME a non-root image user owns stays writable for that user)."""
    vol.parent.mkdir(parents=True, exist_ok=True)
    if not src.is_dir() or src.is_symlink():
        vol.mkdir(exist_ok=True)
        return
    shutil.copytree(src, vol, symlinks=True, dirs_exist_ok=True)
    for top, dirs, files in os.walk(src):
        rel = Path(top).relative_to(src)
        for name in [".", *dirs, *files]:
            st = os.lstat(Path(top) / name)
            os.lchown(vol / rel / name, st.st_uid, st.st_gid)
            if name == "." or not os.path.islink(Path(top) / name):
                # chown clears setuid/setgid bits; put the mode back after it.
                os.chmod(vol / rel / name, st.st_mode & 0o7777)


def ensure_workdir(rootfs: Path, cwd: str, uid: int, gid: int) -> None:
    """Create a missing working directory (docker does), owned by the process's user."""
    target = secure_join(rootfs, cwd)
    if target.exists() or target == rootfs:
        return
    missing = []
    while not target.exists() and target != rootfs:
        missing.append(target)
        target = target.parent
    for path in reversed(missing):
        path.mkdir(0o755)
        os.lchown(path, uid, gid)


def etc_files(cdir: Path, hostname: str, network: str) -> list[dict[str, Any]]:
    """/etc/hostname, /etc/hosts and /etc/resolv.conf, as docker provides them."""
    etc = cdir / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "hostname").write_text(hostname + "\n")
    hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    (etc / "hosts").write_text(hosts + f"127.0.1.1\t{hostname}\n")
    resolv = ""
    if network == "host":
        try:
            resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            resolv = ""
    (etc / "resolv.conf").write_text(resolv)
    return [bind(etc / n, f"/etc/{n}") for n in ("hostname", "hosts", "resolv.conf")]


def shared_etc_files(etc: Path) -> list[dict[str, Any]]:
    """--network container:<id>: that container's /etc/hostname, hosts and resolv.conf, as
    docker shares them (the same files: what its network learns, this one sees)."""
    return [bind(etc / n, f"/etc/{n}") for n in ("hostname", "hosts", "resolv.conf")]


def _shared_hostname(opts: RunOptions) -> str:
    if not opts.shared_etc:
        return ""
    try:
        return (Path(opts.shared_etc) / "hostname").read_text().strip()
    except OSError:
        return ""


def resources(opts: RunOptions) -> dict[str, Any]:
    res: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if opts.memory:
        res["memory"] = {"limit": opts.memory}
    if opts.cpus:
        res["cpu"] = {"quota": int(opts.cpus * 100000), "period": 100000}
    if opts.pids_limit:
        res["pids"] = {"limit": opts.pids_limit}
    return res


def lo_hook() -> dict[str, Any]:
    """A createRuntime hook that brings lo up in the container's new network namespace."""
    pkg_parent = str(Path(__file__).resolve().parents[2])  # the directory holding pyctr/
    return {"path": sys.executable, "args": [sys.executable, "-S", "-m", "pyctr.driver.nethook"],
            "env": [f"PYTHONPATH={pkg_parent}"], "timeout": 30}


def make_spec(image_config: dict[str, Any], opts: RunOptions, cid: str, cdir: Path,
              rootfs: Path, lo_up_hook: bool = False) -> dict[str, Any]:
    image = image_config.get("config") or {}
    user = users.resolve(rootfs, opts.user if opts.user is not None else image.get("User", ""))
    caps = capabilities(opts.cap_add, opts.cap_drop)
    hostname = opts.hostname or _shared_hostname(opts) or cid[:12]
    env = merge_env(list(image.get("Env") or []), [f"HOSTNAME={hostname}", *opts.env])
    if opts.tty and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home or '/'}")
    process: dict[str, Any] = {
        "terminal": opts.tty,
        "user": {"uid": user.uid, "gid": user.gid,
                 **({"additionalGids": list(user.additional_gids)} if user.additional_gids else {})},
        "args": process_args(image, opts),
        "env": env,
        "cwd": opts.workdir or image.get("WorkingDir") or "/",
        "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": False,
    }
    ensure_workdir(rootfs, process["cwd"], user.uid, user.gid)
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if opts.network != "host":
        namespaces.append({"type": "network", **({"path": opts.join_netns}
                                                 if opts.join_netns else {})})
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "resources": resources(opts),
        "cgroupsPath": f"/pyctr/{cid}",
        "maskedPaths": MASKED_PATHS,
        "readonlyPaths": READONLY_PATHS,
    }
    if opts.seccomp:
        linux["seccomp"] = seccomp_profile.default_profile(set(caps))
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": str(rootfs), "readonly": opts.read_only},
        "hostname": hostname,
        "mounts": default_mounts() + (shared_etc_files(Path(opts.shared_etc)) if opts.shared_etc
                                      else etc_files(cdir, hostname, opts.network))
        + volume_mounts(image, opts, rootfs, cdir),
        "linux": linux,
        "annotations": {str(k): str(v) for k, v in (image.get("Labels") or {}).items()},
    }
    if lo_up_hook and opts.network != "host" and not opts.join_netns:
        spec["hooks"] = {"createRuntime": [lo_hook()]}
    return spec
