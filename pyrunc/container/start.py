"""`start`: release the init blocked on exec.fifo, then run the poststart hooks.

A failing poststart hook fails `start` (runtime-spec 1.3, lifecycle step 9: "generate an error,
stop the container, and continue the lifecycle at step 12"): the container is killed and destroyed
(cgroups, state), the poststop hooks run, and the error names the hook. The remaining poststart
hooks do not run. runc 1.1.5 does the same (it runs poststart hooks at create, then destroys).
"""

from pyrunc import MYPY, container
from pyrunc.container import state
from pyrunc.sys import oslite as os

if MYPY:
    import socket

# errno.ENXIO and errno.ENOENT (the same on every Linux architecture): the errno module builds a
# table of ~130 names when loaded, ~0.2M instructions of every start for two numbers.
_ENXIO, _ENOENT = 6, 2


def release(c: container.Container) -> None:
    """Write the one byte the init waits for; the fifo's absence then means "started"."""
    try:
        fd = os.open(c.fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (_ENXIO, _ENOENT):
            from pyrunc.errors import InvalidState  # (see pyrunc.errors: only when failing)

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
        ready = _notify_socket(c)
        hooks = c.config.get("hooks", {}).get("poststart", [])
        before = _exe(c.pid) if hooks else None
        release(c)
        if hooks:
            _after_release(c, before, ready)
    if ready is not None:
        from pyrunc.container import notify

        notify.wait_and_forward(ready, c.pid)


def _after_release(c: container.Container, before: str | None,
                   ready: "socket.socket | None") -> None:
    """The poststart hooks, once the process is executed; a failing one stops the container."""
    from pyrunc.errors import HookError  # only a start with poststart hooks can raise it

    try:
        _wait_executed(c.pid, before)
        poststart(c)
    except HookError:
        if ready is not None:
            ready.close()
        _stop_and_destroy(c)
        raise


def _notify_socket(c: container.Container) -> "socket.socket | None":
    """sd_notify's socket when the caller set NOTIFY_SOCKET (pyrunc.container.notify is loaded
    only then: most starts never need it)."""
    if not os.getenv("NOTIFY_SOCKET"):
        return None
    from pyrunc.container import notify

    return notify.listen(c.dir)


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def _wait_executed(pid: int, before: str | None, timeout: float = 1.0) -> None:
    """Poststart hooks run "after the user-specified process is executed" (runtime.md step 9):
    until the init's executable changes from the waiting one (or it is gone), at most `timeout`."""
    import time

    deadline = time.monotonic() + timeout
    while _exe(pid) == before and before is not None and time.monotonic() < deadline:
        time.sleep(0.0005)


def poststart(c: container.Container) -> None:
    hooks = c.config.get("hooks", {}).get("poststart", [])
    if hooks:
        from pyrunc.container import hooks as hookmod

        hookmod.run_all(hooks, "poststart", c.oci_state("running"))


def _stop_and_destroy(c: container.Container) -> None:
    """Lifecycle steps 12 and 13 after a failed poststart hook: kill, destroy, poststop."""
    from pyrunc import log
    from pyrunc.container import destroy  # the shared teardown; only on this failure path

    log.debug(f"{c.id}: a poststart hook failed; killing and destroying the container")
    try:
        destroy.destroy(c)
    except Exception as exc:  # noqa: BLE001 — the hook's error is the one to report
        log.warning(f"{c.id}: destroying the container after the failed poststart hook: {exc}")
