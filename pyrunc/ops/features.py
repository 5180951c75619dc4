"""The features structure (`pyrunc features`): what this runtime recognizes and implements.

features.md asks that the structure be decided when the runtime is built, not probed on the host:
the lists below name what pyrunc's mechanisms recognize, including what the running kernel may
lack. Two exceptions follow runc: `seccomp.supportedFlags` (the flags this kernel accepts) and
AppArmor/SELinux `enabled` (whether the host has the LSM at all, since pyrunc only drives it).

Each list is read from the table its mechanism checks its input against (pyrunc.spec for
namespaces and hooks, pyrunc.linux.* for the rest), so that what is reported cannot drift from
what is implemented.
"""

from __future__ import annotations

import re

from pyrunc import OCI_VERSION, spec
from pyrunc._typing import MYPY
from pyrunc.linux import caps, procattrs, rootfs, seccomp
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.spec.types import JSONObject

OCI_VERSION_MIN = "1.0.0"
OCI_VERSION_MAX = OCI_VERSION

HOOKS = spec.HOOKS

# What rootfs.py really applies.
MOUNT_OPTIONS = tuple(o for o in rootfs.MOUNT_OPTIONS if o not in rootfs.UNSUPPORTED)

NAMESPACES = spec.NAMESPACES

# Index = capability number (linux/capability.h), 0 .. CAP_LAST_CAP (40 since Linux 5.9).
CAPABILITIES = tuple(caps.NAMES[bit] for bit in sorted(caps.NAMES))

CGROUP = {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True}

SECCOMP_ACTIONS = tuple(sorted(seccomp.ACTIONS))
SECCOMP_OPERATORS = tuple(sorted(seccomp.OPS))
SECCOMP_ARCHS = tuple(sorted(f"SCMP_ARCH_{arch}" for arch in seccomp.ARCHES))
# Flag -> the kernel release that introduced it (seccomp(2)); the flags are seccomp.FLAGS' (a
# unit test holds the two together).
SECCOMP_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": (3, 17),
    "SECCOMP_FILTER_FLAG_LOG": (4, 14),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (4, 17),
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (5, 19),
}

# runc's order; the modes are procattrs.MPOL_MODES' (a unit test holds the two together).
MEMORY_POLICY_MODES = (
    "MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED",
    "MPOL_PREFERRED_MANY", "MPOL_LOCAL",
)
MEMORY_POLICY_FLAGS = tuple(sorted(procattrs.MPOL_FLAGS))

# Not implemented: say so, as features.md asks ("true to what is implemented").
INTEL_RDT = {"enabled": False}
NET_DEVICES = False


def kernel_release(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of `release` (default: the running kernel), e.g. "6.1.0-18-amd64" -> (6, 1)."""
    match = re.match(r"(\d+)(?:\.(\d+))?", release or os.uname().release)
    if not match:
        return (0, 0)
    return (int(match[1]), int(match[2] or 0))


def supported_seccomp_flags(release: str | None = None) -> list[str]:
    have = kernel_release(release)
    return [flag for flag, since in SECCOMP_FLAGS.items() if have >= since]


def seccomp_enabled() -> bool:
    """The seccomp mechanism needs libseccomp's bindings (Debian's python3-seccomp)."""
    from importlib.util import find_spec

    return find_spec("seccomp") is not None


def apparmor_enabled() -> bool:
    try:
        return os.read_bytes("/sys/module/apparmor/parameters/enabled").strip() == b"Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def _seccomp() -> JSONObject:
    return {
        "enabled": seccomp_enabled(),
        "actions": list(SECCOMP_ACTIONS),
        "operators": list(SECCOMP_OPERATORS),
        "archs": list(SECCOMP_ARCHS),
        "knownFlags": list(SECCOMP_FLAGS),
        "supportedFlags": supported_seccomp_flags(),
    }


def _linux() -> JSONObject:
    return {
        "namespaces": list(NAMESPACES),
        "capabilities": list(CAPABILITIES),
        "cgroup": dict(CGROUP),
        "seccomp": _seccomp(),
        "apparmor": {"enabled": apparmor_enabled()},
        "selinux": {"enabled": selinux_enabled()},
        "intelRdt": dict(INTEL_RDT),
        "mountExtensions": {"idmap": {"enabled": _idmap_mounts()}},
        "netDevices": {"enabled": NET_DEVICES},
        "memoryPolicy": {"modes": list(MEMORY_POLICY_MODES), "flags": list(MEMORY_POLICY_FLAGS)},
    }


def features() -> JSONObject:
    """The runtime-spec features.md structure, ready for `json.dumps`."""
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": list(HOOKS),
        "mountOptions": list(MOUNT_OPTIONS),
        "linux": _linux(),
    }


def _idmap_mounts() -> bool:
    """Idmapped bind mounts need mount_setattr(2) (Linux 5.12): probe it with an empty call."""
    from pyrunc.sys import linux

    try:
        linux.mount_setattr(-1, "", 0, 0)
    except OSError as exc:
        return exc.errno != 38  # ENOSYS; EBADF/EINVAL: the call exists
    return True
