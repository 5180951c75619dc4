"""`run`: create + start in the foreground, forward signals, return the container's exit status.

With `terminal: true` and no --console-socket, run keeps the pty master itself and proxies the
caller's terminal (raw mode, window size), as `runc run` does.
"""

from __future__ import annotations

import _signal  # the C module: signal.py wraps it in enums (+4 ms)
import os

from pyrunc import delete, linux, sockets, start
from pyrunc.create import CreateOptions, create
from pyrunc.errors import PyruncError

FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1,
             _signal.SIGUSR2, _signal.SIGWINCH, _signal.SIGCONT)


def run(root: str, cid: str, opts: CreateOptions, detach: bool = False, keep: bool = False) -> int:
    if not detach:
        # The init may be a grandchild (user namespaces): reap it as its subreaper.
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    own_tty = None
    if not detach and not opts.console_socket and _wants_terminal(opts.bundle):
        own_tty, opts.console_fd = console_pair()
    try:
        c = create(root, cid, opts)
    finally:
        if opts.console_fd >= 0:
            os.close(opts.console_fd)
    master = recv_master(own_tty) if own_tty is not None else -1
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


def _wants_terminal(bundle: str) -> bool:
    from pyrunc import spec

    cfg = spec.load_json(os.path.join(os.path.abspath(bundle), "config.json"))
    return bool(isinstance(cfg, dict) and (cfg.get("process") or {}).get("terminal"))


def console_pair() -> tuple[sockets.Socket, int]:
    ours, theirs = sockets.pair(sockets.SOCK_STREAM)
    return ours, theirs.detach()


def recv_master(sock: sockets.Socket) -> int:
    _, fds = sockets.recv_fds(sock, 64, 1)
    sock.close()
    if not fds:
        raise PyruncError("the container did not send its terminal")
    return fds[0]


def _forward(pid: int) -> None:
    pidfd = os.pidfd_open(pid)

    def handler(sig: int, _frame: object) -> None:
        try:
            linux.pidfd_send_signal(pidfd, sig)
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
