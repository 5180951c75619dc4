"""Hooks (runtime-spec 1.3): each gets the state JSON on stdin, its own args, env and timeout.

prestart/createRuntime run in the runtime's namespaces during create, createContainer in the
container's mount namespace before pivot_root, startContainer inside the container just before the
user process, poststart after it started, poststop after delete. A failing hook before start aborts
the create; a poststart failure fails the start (start.py), poststop failures are logged and the
rest still run (the caller decides: `run_all(..., tolerate=True)`).

A hook with `env` gets exactly that environment; without `env` (absent or null) it inherits the
runtime's own, as runc's hooks do (Go's exec.Cmd with a nil Env). `"env": []` is an empty one.
The hooks that run in the container (createContainer, startContainer) get, as in runc, the
container process's environment instead: the init passes it as `default_env`; without it they get
an empty one, never the runtime's (it is not the container's to see).
"""

from __future__ import annotations

import _signal  # the C module: signal.py wraps it in enums (+4 ms)
import select
from posix import environ as _runtime_environ  # bytes -> bytes: the runtime's own

from pyrunc._typing import MYPY
from pyrunc.errors import HookError
from pyrunc.sys import jsonfast
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.spec.types import Hook, OCIState

_IN_CONTAINER = ("createContainer", "startContainer")


def hook_env(hook: Hook, name: str,
             default_env: list[str] | None = None) -> dict[bytes, bytes] | dict[str, str]:
    """The environment a hook runs with: its own `env`, else `default_env`, else the runtime's."""
    env = hook.get("env")
    if env is None:
        if default_env is None and name not in _IN_CONTAINER:
            return _runtime_environ
        env = default_env or []
    return dict(e.partition("=")[::2] for e in env)


def _spawn(hook: Hook, name: str, stdin_r: int, out_w: int,
           default_env: list[str] | None) -> int:
    actions = [(os.POSIX_SPAWN_DUP2, stdin_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
               (os.POSIX_SPAWN_DUP2, out_w, 2)]
    args = hook.get("args") or [hook["path"]]
    return os.posix_spawn(hook["path"], args, hook_env(hook, name, default_env),
                          file_actions=actions, setsigdef=(_signal.SIGPIPE,))


def _collect(pid: int, out_r: int, timeout: float | None) -> tuple[int | None, bytes]:
    """Read the hook's output until it exits or the timeout passes; None status means timed out."""
    pidfd = os.pidfd_open(pid)
    out = b""
    try:
        poller = select.poll()
        poller.register(out_r, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        deadline = None if timeout is None else __import__("time").monotonic() + timeout
        while True:
            left = None if deadline is None else max(0, deadline - __import__("time").monotonic())
            events = poller.poll(None if left is None else int(left * 1000))
            if not events:
                os.kill(pid, _signal.SIGKILL)
                os.waitpid(pid, 0)
                return None, out
            for fd, _ in events:
                if fd == out_r:
                    chunk = os.read(out_r, 65536)
                    if not chunk:
                        poller.unregister(out_r)
                    out = (out + chunk)[-4096:]
                elif fd == pidfd:
                    _, status = os.waitpid(pid, 0)
                    return os.waitstatus_to_exitcode(status), out
    finally:
        os.close(pidfd)


def run(hook: Hook, name: str, index: int, state: OCIState,
        default_env: list[str] | None = None) -> None:
    path = hook.get("path", "")
    what = f"{name} hook #{index} ({path})"
    if not isinstance(path, str) or not path.startswith("/"):
        raise HookError(f"{what}: path must be absolute")
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        try:
            pid = _spawn(hook, name, stdin_r, out_w, default_env)
        except OSError as exc:
            raise HookError(f"error running {what}: {exc.strerror}") from exc
        os.close(stdin_r)
        os.close(out_w)
        stdin_r = out_w = -1
        try:
            os.write(stdin_w, jsonfast.dumps(state, compact=False).encode())
        except BrokenPipeError:
            pass
        os.close(stdin_w)
        stdin_w = -1
        timeout = hook.get("timeout")
        code, out = _collect(pid, out_r, timeout)
    finally:
        for fd in (stdin_r, stdin_w, out_r, out_w):
            if fd >= 0:
                os.close(fd)
    if code is None:
        raise HookError(f"error running {what}: timed out after {timeout}s")
    if code != 0:
        tail = out.decode(errors="replace").strip().replace("\n", " | ")
        raise HookError(f"error running {what}: exit status {code}" + (f": {tail}" if tail else ""))


def run_all(hooks: list[Hook], name: str, state: OCIState,
            tolerate: bool = False, default_env: list[str] | None = None) -> list[str]:
    """Run hooks in order; with `tolerate`, failures are returned instead of raised."""
    failures = []
    for i, hook in enumerate(hooks):
        try:
            run(hook, name, i, state, default_env)
        except HookError as exc:
            if not tolerate:
                raise
            failures.append(str(exc))
    return failures
