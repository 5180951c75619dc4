"""A default seccomp profile in the spirit of docker's.

Docker's profile is an allowlist of ~350 syscalls; this one keeps its effect for the calls that
matter (kernel modules, keyrings, clocks, mount and namespace games, kexec, bpf, perf, ...) as a
denylist returning EPERM, and, like docker, lifts the CAP_SYS_ADMIN-gated ones when that
capability is granted.
"""

from __future__ import annotations

from typing import Any

ALWAYS_DENIED = (
    "acct", "add_key", "create_module", "delete_module", "finit_module", "get_kernel_syms",
    "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
    "lookup_dcookie", "move_pages", "nfsservctl", "open_by_handle_at", "perf_event_open",
    "query_module", "reboot", "request_key", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "stime", "swapoff", "swapon", "_sysctl", "sysfs", "uselib", "userfaultfd",
    "ustat", "vm86", "vm86old", "mbind", "set_mempolicy", "get_mempolicy",
)
# Allowed by docker only with CAP_SYS_ADMIN.
SYS_ADMIN_GATED = (
    "bpf", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "mount",
    "mount_setattr", "move_mount", "name_to_handle_at", "open_tree", "pivot_root", "quotactl",
    "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
)
EPERM = 1
ENOSYS = 38


def default_profile(capabilities: set[str]) -> dict[str, Any]:
    denied = list(ALWAYS_DENIED)
    if "CAP_SYS_ADMIN" not in capabilities:
        denied += [s for s in SYS_ADMIN_GATED if s != "clone3"]
    syscalls: list[dict[str, Any]] = [
        {"names": sorted(denied), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}]
    if "CAP_SYS_ADMIN" not in capabilities:
        # As docker does: ENOSYS makes libc fall back to clone(2), whose flags we can see.
        syscalls.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                          "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "syscalls": syscalls,
    }
