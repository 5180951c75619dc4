"""Running a container in the foreground: signals forwarded to it, its terminal proxied, its
exit status returned (`run`, and `exec` without --detach)."""

from __future__ import annotations

import _signal  # the C module: signal.py wraps it in enums (+4 ms)

from pyrunc.sys import oslite as os

FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1,
             _signal.SIGUSR2, _signal.SIGWINCH, _signal.SIGCONT)


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
        from pyrunc.linux import console_proxy

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
