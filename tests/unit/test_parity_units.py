"""Unprivileged checks of the runc-parity pieces: kernelTCP plan, update flags, help, log setup."""

from __future__ import annotations

import pytest

from pyrunc import cli, log
from pyrunc.container import hooks
from pyrunc.errors import PyruncError
from pyrunc.linux.cgroups import plan
from pyrunc.ops.update import resources_from_flags


def files(entries: list[plan.Entry]) -> dict[str, str]:
    return {e.file: e.value for e in entries}


def test_kernel_tcp_is_a_v1_file_and_a_v2_warning() -> None:
    res = {"memory": {"kernelTCP": 10 << 20, "kernel": 1 << 20}}
    assert files(plan.render_v1(res))["memory.kmem.tcp.limit_in_bytes"] == str(10 << 20)
    assert plan.warnings(res) == [
        "linux.resources.memory.kernel is not supported by the kernel any more and is ignored"]
    assert [w.split()[0] for w in plan.warnings(res, v2=True)] == [
        "linux.resources.memory.kernel", "linux.resources.memory.kernelTCP"]
    assert "memory.kmem.tcp.limit_in_bytes" not in files(plan.render_v2(res))


def test_cpu_share_is_runcs_update_flag() -> None:
    flags, stop = cli.COMMANDS["update"]
    for spelling in ("--cpu-share", "--cpu-shares"):
        p = cli.parse([spelling, "300", "--cpu-quota", "-1", "--memory", "1g", "id"], flags, stop)
        assert resources_from_flags(p.flags) == {"cpu": {"shares": 300, "quota": -1},
                                                 "memory": {"limit": 1 << 30}}


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_has_help(command: str) -> None:
    text = cli.command_help(command)
    assert text.startswith(f"NAME:\n   pyrunc {command} - ")
    for canon, (aliases, _, _) in cli.COMMANDS[command][0].items():
        assert f"--{canon}" in text
        assert all(f"-{a}" in text for a in aliases)


def test_log_format_and_file_are_checked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PyruncError, match=r"\Ainvalid log-format: xml\Z"):
        log.configure(None, "xml")
    with pytest.raises(PyruncError, match=r"\Aopen .*/nope/log: no such file or directory\Z"):
        log.configure(str(tmp_path / "nope" / "log"))
    log.configure(str(tmp_path / "log"), "json")
    assert (tmp_path / "log").exists()
    log.configure(None)


def test_hook_env() -> None:
    assert hooks.hook_env({"env": ["A=1", "B=x=y"]}, "poststart") == {"A": "1", "B": "x=y"}
    assert hooks.hook_env({"env": []}, "poststop") == {}
    inherited = hooks.hook_env({}, "createRuntime")
    assert b"PATH" in inherited or "PATH" in inherited
    # inside the container: the process env the init passes, never the runtime's
    assert hooks.hook_env({}, "startContainer") == {}
    assert hooks.hook_env({}, "startContainer", ["HOME=/root"]) == {"HOME": "/root"}
