"""`run`: create + start in the foreground, forward signals, return the container's exit status.

With `terminal: true` and no --console-socket, run keeps the pty master itself and proxies the
caller's terminal (raw mode, window size), as `runc run` does.
"""

from __future__ import annotations

import _signal  # the C module: signal.py wraps it in enums (+4 ms)

from pyrunc import delete, linux, start
from pyrunc import oslite as os
from pyrunc.create import CreateOptions, create

FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1,
             _signal.SIGUSR2, _signal.SIGWINCH, _signal.SIGCONT)


def run(root: str, cid: str, opts: CreateOptions, detach: bool = False, keep: bool = False) -> int:
    if not detach:
        # The init may be a grandchild (user namespaces): reap it as its subreaper.
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    opts.own_console = not detach and not opts.console_socket
    opts.durable_state = detach or keep  # otherwise the state is gone when run returns
    c = create(root, cid, opts)
    master = -1
    if opts.console_ours is not None:
        from pyrunc import console

        master = console.recv_master(opts.console_ours)
    try:
        start.start(root, cid)
    except BaseException:
        delete.delete(root, cid, force=True)
        raise
    if detach:
        return 0
    status = wait_foreground(c.pid, master)
    if not keep:
        delete.delete(root, cid, force=True)
    return status


def _forward(pid: int) -> None:
    pidfd = os.pidfd_open(pid)

    def handler(sig: int, _frame: object) -> None:
        try:
            _signal.pidfd_send_signal(pidfd, sig)
        except OSError:
            pass

    for sig in FORWARDED:
        if sig != _signal.SIGWINCH:
            _signal.signal(sig, handler)


def wait_foreground(pid: int, master: int) -> int:
    _forward(pid)
    if master >= 0:
        from pyrunc import console_proxy

        console_proxy.proxy(master, pid)
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if got == pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code
