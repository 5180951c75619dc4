"""`exec`: one more process in a running container, through `runtime exec --process`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from pyctr.driver import bundle, users
from pyctr.errors import ContainerError
from pyctr.ops.containers import Container, Containers


def process_spec(config: dict[str, Any], rootfs: Path, args: list[str], env: list[str],
                 workdir: str | None, user: str | None, tty: bool) -> dict[str, Any]:
    process = dict(config["process"])
    process["args"] = args
    process["env"] = bundle.merge_env(process.get("env", []), env)
    process["terminal"] = tty
    if workdir:
        process["cwd"] = workdir
    if user is not None:
        u = users.resolve(rootfs, user)
        process["user"] = {"uid": u.uid, "gid": u.gid,
                           **({"additionalGids": list(u.additional_gids)} if u.additional_gids else {})}
    return process


def exec_in(cs: Containers, c: Container, args: list[str], env: list[str], workdir: str | None,
            user: str | None, interactive: bool, tty: bool) -> int:
    if not args:
        raise ContainerError("exec needs a command")
    if not cs.is_alive(c):
        raise ContainerError(f"container {c.name} is not running")
    cdir = cs.path(c.id)
    config = json.loads((cdir / "config.json").read_bytes())
    process = process_spec(config, cdir / "rootfs", args, env, workdir, user, tty)
    with tempfile.NamedTemporaryFile("w", dir=cdir, prefix=".exec-", suffix=".json") as f:
        json.dump(process, f)
        f.flush()
        rt = cs.runtime(c)
        if not tty:
            return rt.exec(c.id, Path(f.name))
        return _exec_tty(cs, c, Path(f.name), interactive)


def _exec_tty(cs: Containers, c: Container, process_file: Path, interactive: bool) -> int:
    import os

    from pyctr.driver import console
    from pyctr.ops import monitor

    monitor.set_subreaper()
    with console.ConsoleSocket() as sock:
        pid_file = process_file.with_suffix(".pid")
        rc = cs.runtime(c).call("exec", "--process", str(process_file), "--detach",
                                "--console-socket", sock.path, "--pid-file", str(pid_file),
                                c.id, check=False).returncode
        if rc != 0:
            raise ContainerError(f"exec failed in the runtime (exit {rc})")
        master = sock.receive()
        pid = int(pid_file.read_text())
        pid_file.unlink()
        console.proxy(master, pid, interactive)
        del os
        return monitor.wait_exit(pid)
