"""Where the shim daemon stands on the host, set by the `start` that forks it, as runc's shim
manager sets it (runtime/v2/runc/manager/manager_linux.go, runtime/v2/shim/util_unix.go):

- its OOM score: containerd's oom_score_adj + 1 (at most 1000), so that the OOM killer takes the
  shim before containerd (AdjustOOMScore). Containers the shim creates start from that score too,
  unless their config sets process.oomScoreAdj, as under runc's shim, whose runc inherits it.
- the runtime options' shim_cgroup: the cgroup it runs in (v1: every hierarchy where that path
  exists, at least one; v2: the one). One shim serves a namespace, so the first `start` of the
  namespace places it; later ones find it running.
"""

from __future__ import annotations

from pyrunc.shim import ttrpc
from pyrunc.sys import oslite as os

OOM_SCORE_ADJ_MAX = 1000
CGROUP_ROOT = "/sys/fs/cgroup"


def _in_user_namespace() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def shim_score(parent_score: int) -> int:
    return max(-OOM_SCORE_ADJ_MAX, min(parent_score + 1, OOM_SCORE_ADJ_MAX))


def adjust_oom_score(pid: int) -> None:
    """The shim's oom_score_adj: containerd's (our parent's) + 1. As containerd, a permission
    error is no error when unprivileged or in a user namespace."""
    with open(f"/proc/{os.getppid()}/oom_score_adj") as f:
        score = shim_score(int(f.read()))
    try:
        os.write_existing(f"/proc/{pid}/oom_score_adj", str(score))
    except PermissionError:
        if os.geteuid() != 0 or _in_user_namespace():
            return
        raise


def join_cgroup(pid: int, path: str, root: str = CGROUP_ROOT) -> list[str]:
    """Move pid into cgroup `path` (absolute, from the hierarchy's root); the cgroup.procs files
    written. RpcError naming options.shim_cgroup when the cgroup exists nowhere."""
    rel = path.strip("/")
    if not rel or ".." in rel.split("/"):
        raise ttrpc.RpcError(ttrpc.INVALID_ARGUMENT,
                             f"options.shim_cgroup: {path!r} is not a cgroup path")
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        hierarchies = [root]  # cgroup v2 alone
    else:
        hierarchies = sorted(os.path.join(root, name) for name in os.listdir(root)
                             if name != "unified" and not os.path.islink(os.path.join(root, name)))
    done: list[str] = []
    for h in hierarchies:
        procs = os.path.join(h, rel, "cgroup.procs")
        if not os.path.isdir(os.path.join(h, rel)):
            continue
        try:
            os.write_existing(procs, str(pid))
        except OSError as exc:
            raise ttrpc.RpcError(ttrpc.UNKNOWN, f"options.shim_cgroup: {procs}: "
                                 f"{exc.strerror}") from exc
        done.append(procs)
    if not done:
        raise ttrpc.RpcError(ttrpc.NOT_FOUND, f"options.shim_cgroup: {path!r}: no such cgroup "
                             f"under {root}")
    return done
