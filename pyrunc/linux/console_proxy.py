"""`run` with a terminal of its own: copy between the caller's terminal and the pty master."""

from __future__ import annotations

import fcntl
import select
import signal
import termios
import tty

from pyrunc.sys import oslite as os


def _resize(master: int) -> None:
    try:
        size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def proxy(master: int, pid: int) -> None:
    """Until the pty closes (the container exited): stdin -> master, master -> stdout."""
    interactive = os.isatty(0)
    saved = termios.tcgetattr(0) if interactive else None
    if interactive:
        tty.setraw(0)
        _resize(master)
        signal.signal(signal.SIGWINCH, lambda *_: _resize(master))
    fds = [master, 0]
    try:
        while True:
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    return
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    fds.remove(0)
                    continue
                os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
