"""The shim's event loop: one thread, epoll, timers and SIGCHLD.

One thread on purpose: the shim forks containers in-process (pyrunc's create and exec), and a fork
from a threaded process inherits whatever locks other threads held. SIGCHLD reaches the loop
through Python's wakeup fd; the handler itself does nothing, the loop reaps.
"""

from __future__ import annotations

import _signal
import select
import time

from pyrunc._typing import MYPY
from pyrunc.sys import oslite as os

if MYPY:
    from collections.abc import Callable

IN, OUT = select.EPOLLIN, select.EPOLLOUT
ERR = select.EPOLLERR | select.EPOLLHUP


class Loop:
    def __init__(self) -> None:
        self.ep = select.epoll()
        self.callbacks: dict[int, Callable[[int], None]] = {}
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = 0
        self.idle: list[Callable[[], None]] = []  # run after each round of callbacks
        self.stopped = False
        self.on_sigchld: Callable[[], None] | None = None
        self._wake_r = -1

    def add(self, fd: int, events: int, cb: Callable[[int], None]) -> None:
        self.ep.register(fd, events)
        self.callbacks[fd] = cb

    def modify(self, fd: int, events: int) -> None:
        self.ep.modify(fd, events)

    def remove(self, fd: int) -> None:
        if self.callbacks.pop(fd, None) is not None:
            try:
                self.ep.unregister(fd)
            except (OSError, ValueError):
                pass

    def call_later(self, delay: float, cb: Callable[[], None]) -> int:
        self.seq += 1
        self.timers.append((time.monotonic() + delay, self.seq, cb))
        return self.seq

    def cancel(self, handle: int) -> None:
        self.timers = [t for t in self.timers if t[1] != handle]

    def watch_children(self, cb: Callable[[], None]) -> None:
        """Call `cb` (from the loop) whenever SIGCHLD arrived."""
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_r = r
        _signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        _signal.signal(_signal.SIGCHLD, _nothing)
        self.on_sigchld = cb
        self.add(r, IN, self._drain_wakeup)

    def _drain_wakeup(self, _events: int) -> None:
        try:
            while os.read(self._wake_r, 256):
                pass
        except BlockingIOError:
            pass
        if self.on_sigchld is not None:
            self.on_sigchld()

    def _timeout(self) -> float:
        if not self.timers:
            return -1
        return max(0.0, min(t[0] for t in self.timers) - time.monotonic())

    def _run_timers(self) -> None:
        now = time.monotonic()
        due = [t for t in self.timers if t[0] <= now]
        if due:
            self.timers = [t for t in self.timers if t[0] > now]
            for _, _, timer_cb in sorted(due, key=lambda t: (t[0], t[1])):
                timer_cb()

    def run(self) -> None:
        while not self.stopped:
            for fd, events in self.ep.poll(self._timeout()):
                cb = self.callbacks.get(fd)
                if cb is not None:
                    cb(events)
            self._run_timers()
            for idle_cb in self.idle:
                idle_cb()


def _nothing(_sig: int, _frame: object) -> None:
    """SIGCHLD's handler: the wakeup fd alone wakes the loop."""
