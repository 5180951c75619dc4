"""When pyrunc acts rootless, and where its state goes (runc's rules, rootless_linux.go).

Two kinds of caller are rootless:
- a user other than root (euid != 0);
- root inside a user namespace that is not the initial one: rootless podman runs conmon and the
  runtime as uid 0 of the user namespace its pause process holds, whose ids map to the user's own
  and subordinate ids. That root cannot make cgroups outside a delegated subtree, and /run is not
  its own: state goes under $XDG_RUNTIME_DIR, unless USER says it really is root.

Kept apart from namespaces.py: the CLI asks this on every command, and it must not pull in the
syscall layer for it.
"""

from __future__ import annotations

from pyrunc.sys import oslite as os

_INITIAL_UID_MAP = ["0", "0", "4294967295"]


_cached: list[bool] = []


def is_initial_map(uid_map: str) -> bool:
    """/proc/self/uid_map text of the initial user namespace: one line, all ids to themselves."""
    lines = [line.split() for line in uid_map.splitlines() if line.strip()]
    return lines == [_INITIAL_UID_MAP]


def in_user_namespace() -> bool:
    """True unless this process sees the initial user namespace's identity map (read once)."""
    if not _cached:
        try:
            with open("/proc/self/uid_map") as f:
                _cached.append(not is_initial_map(f.read()))
        except OSError:  # no /proc: nothing says we are in one
            _cached.append(False)
    return _cached[0]


def use_rootless(value: str) -> bool:
    """--rootless true|false|auto: auto is rootless for a user other than root and for root in a
    user namespace (the cgroups there are not known to be its own)."""
    if value != "auto":
        return value == "true"
    return os.geteuid() != 0 or in_user_namespace()


def honor_xdg_runtime_dir() -> bool:
    """State under $XDG_RUNTIME_DIR: for a user other than root, and for root in a user
    namespace unless USER is root (a root shell in a container keeps /run/pyrunc)."""
    if os.geteuid() != 0:
        return True
    if not in_user_namespace():
        return False
    return os.getenv("USER") != "root"
