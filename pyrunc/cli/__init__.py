"""The command line, runc's byte for byte where clients parse it; a thin layer over the verbs.

A small table-driven parser instead of argparse (+12 ms at every start): flags as runc's urfave/cli
takes them (`--flag value`, `--flag=value`, `-flag`, short aliases), global flags before the
command, command flags anywhere (but after the container id for `exec` and `ps`, whose trailing
arguments belong to the process). This is the only module that prints errors and picks exit codes.
"""

import sys

from pyrunc import MYPY, VERSION
from pyrunc.sys import oslite as os

if MYPY:
    from collections.abc import Callable

    from pyrunc.errors import PyruncError

    # a flag's value: its string, True/False for a switch, every string of a repeatable one
    FlagValue = str | bool | list[str]

# flag spec: canonical name -> (aliases, takes a value, repeatable)
Flags = dict[str, tuple[tuple[str, ...], bool, bool]]

GLOBAL: Flags = {
    "root": ((), True, False), "log": ((), True, False), "log-format": ((), True, False),
    "debug": ((), False, False), "systemd-cgroup": ((), False, False),
    "rootless": ((), True, False), "criu": ((), True, False),
    "version": (("v",), False, False), "help": (("h",), False, False),
}
_CREATE: Flags = {
    "bundle": (("b",), True, False), "console-socket": ((), True, False),
    "pid-file": ((), True, False), "no-pivot": ((), False, False),
    "no-new-keyring": ((), False, False), "preserve-fds": ((), True, False),
    "pidfd-socket": ((), True, False),
}
_EXEC: Flags = {
    "console-socket": ((), True, False), "pidfd-socket": ((), True, False),
    "cwd": ((), True, False), "env": (("e",), True, True), "tty": (("t",), False, False),
    "user": (("u",), True, False), "additional-gids": (("g",), True, True),
    "process": (("p",), True, False), "detach": (("d",), False, False),
    "pid-file": ((), True, False), "process-label": ((), True, False),
    "apparmor": ((), True, False), "no-new-privs": ((), False, False),
    "cap": (("c",), True, True), "preserve-fds": ((), True, False),
    "cgroup": ((), True, True), "ignore-paused": ((), False, False),
}
_UPDATE: Flags = {name: ((), True, False) for name in (
    "memory", "memory-swap", "memory-reservation", "kernel-memory", "kernel-memory-tcp",
    "cpu-quota", "cpu-period", "cpu-rt-period", "cpu-rt-runtime", "cpuset-cpus",
    "cpuset-mems", "pids-limit", "blkio-weight", "l3-cache-schema", "mem-bw-schema", "cpu-idle")}
_UPDATE["resources"] = (("r",), True, False)
_UPDATE["cpu-share"] = (("cpu-shares",), True, False)  # runc's name; docker's spelling too

COMMANDS: dict[str, tuple[Flags, bool]] = {  # name -> (flags, flags stop at the first argument)
    "create": (_CREATE, False), "start": ({}, False), "state": ({}, False),
    "kill": ({"all": (("a",), False, False)}, False),
    "delete": ({"force": (("f",), False, False)}, False),
    "run": ({**_CREATE, "detach": (("d",), False, False), "keep": ((), False, False),
             "no-subreaper": ((), False, False)}, False),
    "list": ({"format": (("f",), True, False), "quiet": (("q",), False, False)}, False),
    "ps": ({"format": (("f",), True, False)}, True),
    "exec": (_EXEC, True), "pause": ({}, False), "resume": ({}, False),
    "update": (_UPDATE, False),
    "events": ({"interval": ((), True, False), "stats": ((), False, False)}, False),
    "spec": ({"bundle": (("b",), True, False), "rootless": ((), False, False)}, False),
    "features": ({}, False), "validate": ({"bundle": (("b",), True, False)}, False),
    "checkpoint": ({}, False), "restore": ({}, False),
}


def usage_error(message: str) -> "PyruncError":
    """A UsageError to raise (pyrunc.errors is loaded only when there is an error to report)."""
    from pyrunc.errors import UsageError

    return UsageError(message)


class Parsed:
    def __init__(self) -> None:
        self.flags: dict[str, FlagValue] = {}
        self.args: list[str] = []

    def text(self, name: str, default: str) -> str:
        """A value flag, or `default` when it was not given."""
        value = self.flags.get(name, default)
        return value if isinstance(value, str) else default

    def opt(self, name: str) -> str | None:
        value = self.flags.get(name)
        return value if isinstance(value, str) else None

    def on(self, name: str) -> bool:
        return bool(self.flags.get(name))


def _lookup(flags: Flags, name: str) -> str | None:
    if name in flags:
        return name
    for canon, (aliases, _, _) in flags.items():
        if name in aliases:
            return canon
    return None


def parse(argv: list[str], flags: Flags, stop_at_arg: bool) -> Parsed:
    out = Parsed()
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            out.args += argv[i:]
            break
        if not a.startswith("-") or a == "-" or (stop_at_arg and out.args):
            out.args.append(a)
            continue
        name, eq, value = a.lstrip("-").partition("=")
        canon = _lookup(flags, name)
        if canon is None:
            raise usage_error(f"flag provided but not defined: -{name}")
        _, takes, many = flags[canon]
        if takes and not eq:
            if i >= len(argv):
                raise usage_error(f"flag needs an argument: -{name}")
            value, i = argv[i], i + 1
        elif not takes:
            value = value if eq else "true"
        if many:
            values = out.flags.setdefault(canon, [])
            if isinstance(values, list):
                values.append(value)
        else:
            out.flags[canon] = value if takes else value.lower() not in ("false", "0")
    return out


def split_global(argv: list[str]) -> tuple[Parsed, str | None, list[str]]:
    """Global flags, then the command, then its arguments."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        name, eq, _ = argv[i].lstrip("-").partition("=")
        canon = _lookup(GLOBAL, name)
        i += 2 if canon and GLOBAL[canon][1] and not eq else 1  # skip a flag's separate value
    command = argv[i] if i < len(argv) else None
    return parse(argv[:i], GLOBAL, False), command, argv[i + 1:]


class Ctx:
    def __init__(self, root: str, g: "dict[str, FlagValue]", p: Parsed) -> None:
        self.root = root
        self.g = g
        self.p = p

    def arg(self, n: int, what: str = "container id") -> str:
        if len(self.p.args) <= n:
            raise usage_error(f"missing {what}")
        return self.p.args[n]

    def exactly(self, n: int) -> None:
        if len(self.p.args) != n:
            raise usage_error(f"requires exactly {n} argument(s), got {len(self.p.args)}")

    def only_id(self) -> str:
        """The container id of a verb that takes it as its one argument."""
        self.exactly(1)
        return self.p.args[0]


def default_root() -> str:
    """/run/pyrunc; $XDG_RUNTIME_DIR/pyrunc when it is set, for a user other than root or root
    of a user namespace (runc's rule)."""
    xdg = os.getenv("XDG_RUNTIME_DIR")
    if not xdg:
        return "/run/pyrunc"
    from pyrunc.linux.rootless import honor_xdg_runtime_dir

    return xdg + "/pyrunc" if honor_xdg_runtime_dir() else "/run/pyrunc"


# `start` and `delete` are lifecycle steps of the container layer, which pyrunc.ops.start and
# pyrunc.ops.delete re-export as verbs; engines call them for every container, so the CLI takes
# them from there and loads a package and a module less (~0.25M instructions, ~0.1 ms a call).
def cmd_start(ctx: Ctx) -> int:
    from pyrunc.container.start import start

    start(ctx.root, ctx.only_id())
    return 0


def cmd_state(ctx: Ctx) -> int:
    from pyrunc import container
    from pyrunc.sys import jsonfast

    c = container.load(ctx.root, ctx.only_id())
    sys.stdout.write(jsonfast.dumps(c.oci_state(), indent=2) + "\n")
    return 0


def cmd_kill(ctx: Ctx) -> int:
    from pyrunc.ops.kill import kill, parse_signal

    if not 1 <= len(ctx.p.args) <= 2:
        raise usage_error("usage: kill [--all] <container-id> [signal]")
    sig = parse_signal(ctx.p.args[1] if len(ctx.p.args) > 1 else "SIGTERM")
    kill(ctx.root, ctx.arg(0), sig, ctx.p.on("all"))
    return 0


def cmd_delete(ctx: Ctx) -> int:
    from pyrunc.container.destroy import delete

    delete(ctx.root, ctx.only_id(), ctx.p.on("force"))
    return 0


# The handlers of the other commands are in pyrunc.cli.commands, loaded when one of them runs: their
# code costs ~0.2M instructions to load, a third of a `state` above the bare interpreter.
SHORT: "dict[str, Callable[[Ctx], int]]" = {
    "start": cmd_start, "state": cmd_state, "kill": cmd_kill, "delete": cmd_delete,
}


def handler(command: str) -> "Callable[[Ctx], int]":
    """The function that runs `command` (a key of COMMANDS)."""
    if command in SHORT:
        return SHORT[command]
    from pyrunc.cli import commands

    return commands.HANDLERS[command]

def command_help(command: str) -> str:
    """runc's layout of `runc COMMAND --help` (pyrunc.cli.helptext: text no verb needs
    to load)."""
    from pyrunc.cli import helptext

    return helptext.command_help(command)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        g, command, rest = split_global(argv)
        # pyrunc.log is loaded when asked for or when there is an error to report (until then its
        # defaults are those of no flag); once loaded, every call sets it, flags or not.
        if "pyrunc.log" in sys.modules or any(f in g.flags for f in ("log", "log-format", "debug")):
            from pyrunc import log

            log.configure(g.opt("log"), g.text("log-format", "text"), g.on("debug"))
        if g.on("version"):
            from pyrunc.cli import helptext

            sys.stdout.write(helptext.version())
            return 0
        command = "help" if command == "h" else command
        if command == "help" and rest and rest[0] in COMMANDS:
            sys.stdout.write(command_help(rest[0]))
            return 0
        if command is None or g.on("help") or command == "help":
            from pyrunc.cli import helptext

            sys.stdout.write(helptext.USAGE)
            return 0 if command == "help" or g.on("help") else 1
        if command not in COMMANDS:
            raise usage_error(f"No help topic for '{command}'")
        flags, stop = COMMANDS[command]
        parsed = parse(rest, {**flags, "help": (("h",), False, False)}, stop)
        if parsed.flags.pop("help", False):
            sys.stdout.write(command_help(command))
            return 0
        if g.on("debug"):
            from pyrunc import log

            log.debug(f"pyrunc {VERSION}: {command} {' '.join(parsed.args[:1])}".rstrip())
        ctx = Ctx(os.path.abspath(g.opt("root") or default_root()), g.flags, parsed)
        return handler(command)(ctx)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 — whatever it is: one line and exit 1, no traceback
        _error(_describe(exc))
        return 1


def _describe(exc: Exception) -> str:
    """The line for a failure: a PyruncError's message, an OSError's reason and path, and any
    other exception (a bug of ours) as an internal error."""
    from pyrunc.errors import PyruncError  # loaded here: no verb that succeeds needs it

    if isinstance(exc, PyruncError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return f"internal error: {type(exc).__name__}: {exc}"


def _error(msg: str) -> None:
    from pyrunc import log

    log.error(msg)


def console() -> None:
    """bin/pyrunc's entry: `main`, then out without interpreter finalization (tearing down every
    module costs ~2 ms a call). pyrunc writes its files with os.write or closes them itself, so
    flushing the two text streams is all there is to do. No cyclic garbage collection either: a
    verb is a short-lived process whose objects live until it exits, and the collector's passes
    over them (state.json parsed into dicts) are work for nothing (`events`, which can run for the
    container's life, turns it back on)."""
    import gc

    gc.disable()
    rc = main(sys.argv[1:])
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):
            rc = rc or 1
    os._exit(rc)
