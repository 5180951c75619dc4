"""`run`: create + start in the foreground, forward signals, return the container's exit status.

With `terminal: true` and no --console-socket, run keeps the pty master itself and proxies the
caller's terminal (raw mode, window size), as `runc run` does.
"""

from __future__ import annotations

from pyrunc.container import destroy, start
from pyrunc.container.create import CreateOptions, create
from pyrunc.container.foreground import wait_foreground
from pyrunc.sys import linux


def run(root: str, cid: str, opts: CreateOptions, detach: bool = False, keep: bool = False) -> int:
    if not detach:
        # The init may be a grandchild (user namespaces): reap it as its subreaper.
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    opts.own_console = not detach and not opts.console_socket
    opts.durable_state = detach or keep  # otherwise the state is gone when run returns
    c = create(root, cid, opts)
    master = -1
    if opts.console_ours is not None:
        from pyrunc.linux import console

        master = console.recv_master(opts.console_ours)
    try:
        start.start(root, cid)
    except BaseException:
        destroy.delete(root, cid, force=True)
        raise
    if detach:
        return 0
    status = wait_foreground(c.pid, master)
    if not keep:
        destroy.delete(root, cid, force=True)
    return status
