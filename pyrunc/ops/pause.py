"""`pause` and `resume`: freeze and thaw every process of a container through its cgroup.

v1 writes FROZEN/THAWED to freezer.state, v2 1/0 to cgroup.freeze; either way the kernel stops the
tasks where they are (state D on v1, S on v2 as seen in /proc/<pid>/stat) and the status becomes
`paused` because the state store asks the cgroup (Manager.frozen).
"""

from __future__ import annotations

from pyrunc.errors import InvalidState


def pause(root: str, cid: str) -> None:
    from pyrunc.container import Container

    c = Container.load(root, cid)
    with c.locked():
        if c.status() not in ("running", "created"):
            raise InvalidState("container not running")
        c.cgroup().freeze()


def resume(root: str, cid: str) -> None:
    from pyrunc.container import Container

    c = Container.load(root, cid)
    with c.locked():
        if c.status() != "paused":
            raise InvalidState("container not paused")
        c.cgroup().thaw()
