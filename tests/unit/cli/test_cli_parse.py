"""The CLI parser: runc's flag forms, global flags before the command, exec's trailing args."""

from __future__ import annotations

import pytest

from pyrunc import cli
from pyrunc.cli import COMMANDS, GLOBAL, commands, parse, split_global
from pyrunc.errors import UsageError


def cmd(name, *argv):
    flags, stop = COMMANDS[name]
    return parse(list(argv), flags, stop)


def test_split_global():
    g, command, rest = split_global(["--root", "/r", "--log", "/l", "--log-format", "json",
                                     "create", "--bundle", "b", "id"])
    assert g.flags == {"root": "/r", "log": "/l", "log-format": "json"}
    assert command == "create"
    assert rest == ["--bundle", "b", "id"]


def test_split_global_equals_and_bools():
    g, command, rest = split_global(["--root=/r", "--debug", "--systemd-cgroup", "state", "x"])
    assert g.flags == {"root": "/r", "debug": True, "systemd-cgroup": True}
    assert (command, rest) == ("state", ["x"])


def test_split_global_value_looking_like_a_command():
    g, command, rest = split_global(["--root", "run", "list"])
    assert g.flags["root"] == "run" and command == "list" and rest == []


def test_split_global_no_command():
    g, command, rest = split_global(["--version"])
    assert g.flags == {"version": True} and command is None and rest == []
    assert split_global(["-v"])[0].flags == {"version": True}


def test_unknown_global_flag():
    with pytest.raises(UsageError, match="flag provided but not defined: -nope"):
        split_global(["--nope", "list"])


@pytest.mark.parametrize("argv", [
    ["--bundle", "/b", "id"], ["--bundle=/b", "id"], ["-b", "/b", "id"], ["-bundle", "/b", "id"],
    ["id", "--bundle", "/b"], ["-b=/b", "id"],
])
def test_create_flag_forms(argv):
    p = cmd("create", *argv)
    assert p.flags == {"bundle": "/b"} and p.args == ["id"]


def test_create_all_flags():
    p = cmd("create", "--bundle", "b", "--pid-file", "p", "--console-socket", "s", "--no-pivot",
            "--no-new-keyring", "--preserve-fds", "2", "id")
    assert p.flags == {"bundle": "b", "pid-file": "p", "console-socket": "s", "no-pivot": True,
                       "no-new-keyring": True, "preserve-fds": "2"}
    assert p.args == ["id"]


def test_bool_flag_with_value():
    assert cmd("run", "--detach=false", "id").flags == {"detach": False}
    assert cmd("run", "-d", "--keep", "id").flags == {"detach": True, "keep": True}
    assert cmd("delete", "-f", "id").flags == {"force": True}
    assert cmd("delete", "--force=true", "id").flags == {"force": True}


def test_kill_args():
    p = cmd("kill", "--all", "id", "KILL")
    assert p.flags == {"all": True} and p.args == ["id", "KILL"]
    assert cmd("kill", "id", "9").args == ["id", "9"]


def test_list_flags():
    assert cmd("list", "-f", "json", "-q").flags == {"format": "json", "quiet": True}
    assert cmd("list", "--format=table").flags == {"format": "table"}


def test_exec_trailing_args_are_the_process():
    p = cmd("exec", "-t", "--env", "A=1", "-e", "B=2", "id", "sh", "-c", "echo --env")
    assert p.flags == {"tty": True, "env": ["A=1", "B=2"]}
    assert p.args == ["id", "sh", "-c", "echo --env"]


def test_ps_trailing_args():
    p = cmd("ps", "--format", "json", "id", "-ef")
    assert p.flags == {"format": "json"} and p.args == ["id", "-ef"]


def test_double_dash():
    p = cmd("exec", "--", "id", "ls")
    assert p.args == ["id", "ls"] and p.flags == {}
    assert cmd("kill", "--", "id", "-9").args == ["id", "-9"]


def test_errors():
    with pytest.raises(UsageError, match="flag provided but not defined: -nope"):
        cmd("create", "--nope", "id")
    with pytest.raises(UsageError, match="flag needs an argument: -bundle"):
        cmd("create", "id", "--bundle")
    with pytest.raises(UsageError):
        cmd("start", "--force", "id")


def test_every_command_has_a_handler():
    assert set(COMMANDS) == set(cli.SHORT) | set(commands.HANDLERS)
    assert not set(cli.SHORT) & set(commands.HANDLERS)
    for name, (aliases, takes, _) in GLOBAL.items():
        assert isinstance(takes, bool) and all(a != name for a in aliases)


def test_main_usage_errors(capsys):
    assert cli.main(["--root", "/nonexistent-pyrunc-root", "frobnicate"]) == 1
    assert "frobnicate" in capsys.readouterr().err
    assert cli.main(["--root", "/nonexistent-pyrunc-root", "create", "--nope", "x"]) == 1
    assert capsys.readouterr().err.strip() == "flag provided but not defined: -nope"


def test_main_state_unknown(capsys, tmp_path):
    assert cli.main(["--root", str(tmp_path), "state", "nope"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == "container nope does not exist"


def test_main_list_empty(capsys, tmp_path):
    assert cli.main(["--root", str(tmp_path / "none"), "list", "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert cli.main(["--root", str(tmp_path / "none"), "list", "-f", "json"]) == 0
    assert capsys.readouterr().out.strip() == "null"
