"""`start`: release the init blocked on exec.fifo, then run the poststart hooks."""

from __future__ import annotations

import errno

from pyrunc import container, log, notify, state
from pyrunc import oslite as os
from pyrunc.errors import InvalidState


def release(c: container.Container) -> None:
    """Write the one byte the init waits for; the fifo's absence then means "started"."""
    try:
        fd = os.open(c.fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ENOENT):
            raise InvalidState("container not running") from exc
        raise
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)
    os.unlink(c.fifo)


def start(root: str, cid: str) -> None:
    c = container.load(root, cid)
    with c.locked():
        state.check_transition(c.status(), "start", cid)
        ready = notify.listen(c.dir)
        release(c)
        poststart(c)
    if ready is not None:
        notify.wait_and_forward(ready, c.pid)


def poststart(c: container.Container) -> None:
    hooks = c.config.get("hooks", {}).get("poststart", [])
    if hooks:
        from pyrunc import hooks as hookmod

        for failure in hookmod.run_all(hooks, "poststart", c.oci_state("running"), tolerate=True):
            log.warning(failure)
