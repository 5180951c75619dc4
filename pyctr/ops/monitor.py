"""Running a container: in the foreground, or detached under a small monitor process.

The monitor plays the part of containerd's shim or conmon. `pyctr run -d` forks it twice
(setsid between, so it survives the terminal and pyctr's exit); it makes itself a child
subreaper so that the container's init, whose parent (`runtime create`) exits at once, is
reparented to it and can be reaped for its exit code. It holds the container's stdout and
stderr pipes (or, with -t, the pty's master), writes them in docker's json-file format
(pyctr.driver.logfile), records the exit code, and deletes the container in the runtime. A foreground
`run` does the same itself, copying the output to its own stdout and stderr as well.

    pyctr run -d ──fork──> child ──setsid, fork──> monitor
         │                   └─ exits                 │ flock monitor.lock
         │                                            │ runtime create (stdio = pipes), start
         │ <────────── "ok" / "error: ..." ───────────┤ (report pipe)
       prints the id, exits                           │ pump pipes -> <id>-json.log
                                                      │ waitpid(init) -> exit code
                                                      └ runtime delete, umount, exit
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import selectors
import signal
import subprocess  # noqa: TID251 - the monitor drives the runtime's command line
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from pyctr.driver import logfile
from pyctr.errors import EngineError, PyctrError, start_failure
from pyctr.image.store import flocked
from pyctr.ops.containers import Container, Containers

PR_SET_CHILD_SUBREAPER = 36
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)


def set_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def wait_exit(pid: int) -> int:
    """Reap `pid` (and whatever else ends up reparented to us); its docker-style exit code."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if got == pid:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


def _read_pid(path: Path) -> int:
    return int(path.read_text().strip())


@contextlib.contextmanager
def forwarding_signals(pid: int) -> Iterator[None]:
    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
    old = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _start(cs: Containers, c: Container, stdin: object, stdout: object, stderr: object,
           console_socket: str | None = None) -> int:
    """runtime create + start; returns the init's pid. Cleans the runtime up on failure."""
    cdir = cs.path(c.id)
    rt = cs.runtime(c)
    rt.create(c.id, cdir, cdir / "init.pid", stdin, stdout, stderr,  # type: ignore[arg-type]
              console_socket=console_socket)
    try:
        pid = _read_pid(cdir / "init.pid")
        cs.connect(c, pid)
        cs.mark_running(c, pid)
        rt.start(c.id)
    except BaseException:
        rt.delete(c.id, force=True)
        raise
    return pid


def _log(cs: Containers, c: Container) -> logfile.JsonLog:
    return logfile.JsonLog(logfile.log_path(cs.path(c.id), c.id), c.log_max_size, c.log_max_files)


def run_foreground(cs: Containers, c: Container, interactive: bool) -> int:
    set_subreaper()
    fds: dict[int, str] = {}

    def start() -> int:
        pid, piped = _start_piped(cs, c, None if interactive else subprocess.DEVNULL)
        fds.update(piped)
        return pid

    def attach(_pid: int) -> None:
        out_r, err_r = list(fds)
        pump_logs(fds, _log(cs, c), tee={out_r: 1, err_r: 2})

    try:
        with flocked(cs.path(c.id) / "monitor.lock"):
            return _supervise(cs, c, start, attach)
    finally:
        if c.auto_remove:  # --rm: a container that failed to start goes too, as in docker
            cs.remove_files(c)


def _supervise(cs: Containers, c: Container, start: Callable[[], int],
               attach: Callable[[int], None] | None = None) -> int:
    """Start the container, attach to it, forward signals, reap it and record its exit code."""
    try:
        pid = start()
    except EngineError as exc:
        cs.finish(c, exc.exit_code)
        raise
    except BaseException:
        cs.finish(c, 125)
        raise
    with forwarding_signals(pid):
        if attach is not None:
            attach(pid)
        code = wait_exit(pid)
    cs.finish(c, code)
    return code


def run_tty(cs: Containers, c: Container, interactive: bool) -> int:
    from pyctr.driver import console

    set_subreaper()
    try:
        with flocked(cs.path(c.id) / "monitor.lock"), \
                console.ConsoleSocket(cs.path(c.id)) as sock:
            return _supervise(
                cs, c,
                lambda: _start(cs, c, subprocess.DEVNULL, subprocess.DEVNULL, None, sock.path),
                lambda pid: console.proxy(sock.receive(), pid, interactive))
    finally:
        if c.auto_remove:
            cs.remove_files(c)


def run_detached(cs: Containers, c: Container) -> None:
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        _daemonize_and_monitor(cs, c, w)
    os.close(w)
    os.waitpid(child, 0)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode(errors="replace")
    if msg != "ok":
        raise start_failure(msg.removeprefix("error: ") or "the container monitor died")


def _daemonize_and_monitor(cs: Containers, c: Container, report: int) -> None:
    code = 0
    try:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        _redirect_stdio(cs.path(c.id) / "monitor.log")
        monitor(cs, c, report)
    except BaseException as exc:  # the monitor must never return into pyctr's main
        with contextlib.suppress(OSError):
            os.write(report, f"error: {exc}".encode())
        print(f"monitor: {exc!r}", file=sys.stderr)
        code = 1
    finally:
        os._exit(code)


def _redirect_stdio(log: Path) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    err = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(err, 2)
    os.close(null)
    os.close(err)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115


def monitor(cs: Containers, c: Container, report: int) -> None:
    set_subreaper()
    cdir = cs.path(c.id)
    with flocked(cdir / "monitor.lock"), contextlib.ExitStack() as stack:
        try:
            pid, fds = _start_monitored(cs, c, stack)
        except PyctrError as exc:
            os.write(report, f"error: {exc}".encode())
            os.close(report)
            cs.finish(c, exc.exit_code if isinstance(exc, EngineError) else 125)
            return
        os.write(report, b"ok")
        os.close(report)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        pump_logs(fds, _log(cs, c))
        code = wait_exit(pid)
        cs.finish(c, code)
    if c.auto_remove:
        cs.remove_files(c)


def _start_monitored(cs: Containers, c: Container,
                     stack: contextlib.ExitStack) -> tuple[int, dict[int, str]]:
    """Start with stdout/stderr on pipes, or with -t on a pty whose master the monitor keeps
    (so that `run -dit IMAGE sh` waits on its terminal instead of reading EOF)."""
    if c.tty:
        from pyctr.driver import console

        sock = stack.enter_context(console.ConsoleSocket())
        pid = _start(cs, c, subprocess.DEVNULL, subprocess.DEVNULL, subprocess.DEVNULL, sock.path)
        return pid, {sock.receive(): "stdout"}
    return _start_piped(cs, c, subprocess.DEVNULL)


def _start_piped(cs: Containers, c: Container, stdin: object) -> tuple[int, dict[int, str]]:
    """Start with stdout and stderr on pipes: (pid, {read end: stream name})."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = _start(cs, c, stdin, out_w, err_w)
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    return pid, {out_r: "stdout", err_r: "stderr"}


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError as exc:
        if exc.errno == errno.EIO:  # a pty master once every slave fd is closed
            return b""
        raise


def pump_logs(fds: dict[int, str], log: logfile.JsonLog, tee: dict[int, int] | None = None) -> None:
    """Copy the pipes into a json-file log, one entry per line, until every pipe is closed;
    with `tee`, also copy each to the fd it maps to (a foreground run's stdout and stderr)."""
    pending = {fd: b"" for fd in fds}
    sel = selectors.DefaultSelector()
    for fd in fds:
        sel.register(fd, selectors.EVENT_READ)
    try:
        while sel.get_map():
            for key, _ in sel.select():
                fd = key.fd
                data = _read(fd)
                if tee and fd in tee and data:
                    with contextlib.suppress(OSError):
                        _write_all(tee[fd], data)
                if not data:
                    if pending[fd]:
                        log.write(fds[fd], pending[fd])
                    sel.unregister(fd)
                    os.close(fd)
                    continue
                *lines, pending[fd] = (pending[fd] + data).split(b"\n")
                for line in lines:
                    log.write(fds[fd], line + b"\n")
    finally:
        log.close()


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
