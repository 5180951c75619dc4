"""The features structure (`pyrunc features`): what this runtime recognizes and implements.

features.md asks that the structure be decided when the runtime is built, not probed on the host:
the lists below name what pyrunc's mechanisms recognize, including what the running kernel may
lack. Two exceptions follow runc: `seccomp.supportedFlags` (the flags this kernel accepts) and
AppArmor/SELinux `enabled` (whether the host has the LSM at all, since pyrunc only drives it).

The module-level constants are the single list each mechanism should check its input against;
`pyrunc.ops.validate` uses them too.
"""

from __future__ import annotations

import re

from pyrunc import OCI_VERSION
from pyrunc._typing import Any
from pyrunc.linux import caps, rootfs
from pyrunc.sys import oslite as os

OCI_VERSION_MIN = "1.0.0"
OCI_VERSION_MAX = OCI_VERSION

HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")

# What rootfs.py really applies.
MOUNT_OPTIONS = tuple(o for o in rootfs.MOUNT_OPTIONS if o not in rootfs.UNSUPPORTED)

NAMESPACES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

# Index = capability number (linux/capability.h), 0 .. CAP_LAST_CAP (40 since Linux 5.9).
CAPABILITIES = tuple(caps.NAMES[bit] for bit in sorted(caps.NAMES))

CGROUP = {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True}

SECCOMP_ACTIONS = (
    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP",
)
SECCOMP_OPERATORS = (
    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE",
)
SECCOMP_ARCHS = (
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB", "SCMP_ARCH_X32",
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64",
)
# Flag -> the kernel release that introduced it (seccomp(2)).
SECCOMP_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": (3, 17),
    "SECCOMP_FILTER_FLAG_LOG": (4, 14),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (4, 17),
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (5, 19),
}

MEMORY_POLICY_MODES = (
    "MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED",
    "MPOL_PREFERRED_MANY", "MPOL_LOCAL",
)
MEMORY_POLICY_FLAGS = ("MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES")

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
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def _seccomp() -> dict[str, Any]:
    return {
        "enabled": seccomp_enabled(),
        "actions": list(SECCOMP_ACTIONS),
        "operators": list(SECCOMP_OPERATORS),
        "archs": list(SECCOMP_ARCHS),
        "knownFlags": list(SECCOMP_FLAGS),
        "supportedFlags": supported_seccomp_flags(),
    }


def _linux() -> dict[str, Any]:
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


def features() -> dict[str, Any]:
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
