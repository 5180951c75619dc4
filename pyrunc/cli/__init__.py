"""The command line, runc's byte for byte where clients parse it; a thin layer over the verbs.

A small table-driven parser instead of argparse (+12 ms at every start): flags as runc's urfave/cli
takes them (`--flag value`, `--flag=value`, `-flag`, short aliases), global flags before the
command, command flags anywhere (but after the container id for `exec` and `ps`, whose trailing
arguments belong to the process). This is the only module that prints errors and picks exit codes.
"""

from __future__ import annotations

import sys

from pyrunc import OCI_VERSION, VERSION, log
from pyrunc._typing import MYPY, Callable
from pyrunc.errors import PyruncError
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.ops.create import CreateOptions

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


class UsageError(PyruncError):
    pass


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
            raise UsageError(f"flag provided but not defined: -{name}")
        _, takes, many = flags[canon]
        if takes and not eq:
            if i >= len(argv):
                raise UsageError(f"flag needs an argument: -{name}")
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
    def __init__(self, root: str, g: dict[str, FlagValue], p: Parsed) -> None:
        self.root = root
        self.g = g
        self.p = p

    def arg(self, n: int, what: str = "container id") -> str:
        if len(self.p.args) <= n:
            raise UsageError(f"missing {what}")
        return self.p.args[n]

    def exactly(self, n: int) -> None:
        if len(self.p.args) != n:
            raise UsageError(f"requires exactly {n} argument(s), got {len(self.p.args)}")



def _create_opts(ctx: Ctx) -> CreateOptions:
    from pyrunc.ops.create import CreateOptions

    p = ctx.p
    return CreateOptions(
        bundle=p.text("bundle", "."), pid_file=p.opt("pid-file"),
        console_socket=p.opt("console-socket"), no_pivot=p.on("no-pivot"),
        no_new_keyring=p.on("no-new-keyring"),
        preserve_fds=_int(p.text("preserve-fds", "0"), "--preserve-fds"),
        systemd_cgroup=bool(ctx.g.get("systemd-cgroup")),
        rootless=rootless(ctx.g.get("rootless", "auto")))


def rootless(value: object) -> bool:
    """--rootless true|false|auto (runc's default auto: rootless when not started as root)."""
    text = str(value).lower()
    if text not in ("true", "false", "auto"):
        raise UsageError(f"invalid --rootless value {value!r} (true, false or auto)")
    return text == "true" or (text == "auto" and os.geteuid() != 0)


def default_root() -> str:
    """/run/pyrunc; for a user other than root, $XDG_RUNTIME_DIR/pyrunc when it is set (runc's rule)."""
    xdg = os.getenv("XDG_RUNTIME_DIR")
    return xdg + "/pyrunc" if os.geteuid() != 0 and xdg else "/run/pyrunc"


def _int(v: str, what: str) -> int:
    try:
        n = int(v)
    except ValueError as exc:
        raise UsageError(f"{what}: not a number: {v!r}") from exc
    if n < 0:
        raise UsageError(f"{what}: must not be negative")
    return n


def _guard() -> None:
    from pyrunc.linux import exeguard

    exeguard.ensure()


def cmd_create(ctx: Ctx) -> int:
    from pyrunc.ops.create import create

    ctx.exactly(1)
    _guard()
    create(ctx.root, ctx.arg(0), _create_opts(ctx))
    return 0


def cmd_run(ctx: Ctx) -> int:
    from pyrunc.ops.run import run

    ctx.exactly(1)
    _guard()
    return run(ctx.root, ctx.arg(0), _create_opts(ctx), detach=ctx.p.on("detach"),
               keep=ctx.p.on("keep"))


def cmd_start(ctx: Ctx) -> int:
    from pyrunc.ops.start import start

    ctx.exactly(1)
    start(ctx.root, ctx.arg(0))
    return 0


def cmd_state(ctx: Ctx) -> int:
    from pyrunc import container
    from pyrunc.sys import jsonfast

    ctx.exactly(1)
    c = container.load(ctx.root, ctx.arg(0))
    sys.stdout.write(jsonfast.dumps(c.oci_state(), indent=2) + "\n")
    return 0


def cmd_kill(ctx: Ctx) -> int:
    from pyrunc.ops.kill import kill, parse_signal

    if not 1 <= len(ctx.p.args) <= 2:
        raise UsageError("usage: kill [--all] <container-id> [signal]")
    sig = parse_signal(ctx.p.args[1] if len(ctx.p.args) > 1 else "SIGTERM")
    kill(ctx.root, ctx.arg(0), sig, ctx.p.on("all"))
    return 0


def cmd_delete(ctx: Ctx) -> int:
    from pyrunc.ops.delete import delete

    ctx.exactly(1)
    delete(ctx.root, ctx.arg(0), ctx.p.on("force"))
    return 0


def cmd_list(ctx: Ctx) -> int:
    from pyrunc.ops.listing import listing

    sys.stdout.write(listing(ctx.root, ctx.p.text("format", "table"), ctx.p.on("quiet")))
    return 0


def cmd_pause(ctx: Ctx) -> int:
    from pyrunc.ops.pause import pause

    ctx.exactly(1)
    pause(ctx.root, ctx.arg(0))
    return 0


def cmd_resume(ctx: Ctx) -> int:
    from pyrunc.ops.pause import resume

    ctx.exactly(1)
    resume(ctx.root, ctx.arg(0))
    return 0


def cmd_ps(ctx: Ctx) -> int:
    from pyrunc.ops.ps import ps

    sys.stdout.write(ps(ctx.root, ctx.arg(0), ctx.p.text("format", "table"), ctx.p.args[1:]))
    return 0


def cmd_update(ctx: Ctx) -> int:
    from pyrunc.ops import update

    ctx.exactly(1)
    # every flag of update takes a value (a string)
    flags = {k: v for k, v in ctx.p.flags.items() if k != "resources" and isinstance(v, str)}
    resources_file = ctx.p.opt("resources")
    if resources_file:
        resources = update.load_resources(resources_file, sys.stdin)
    else:
        resources = update.resources_from_flags(flags)
    update.update(ctx.root, ctx.arg(0), resources)
    return 0


def cmd_events(ctx: Ctx) -> int:
    from pyrunc.ops.events import events, parse_interval

    ctx.exactly(1)
    return events(ctx.root, ctx.arg(0), stats=ctx.p.on("stats"),
                  interval=parse_interval(ctx.p.text("interval", "5s")), out=sys.stdout)


def cmd_exec(ctx: Ctx) -> int:
    from pyrunc.ops.exec import exec_from_cli

    _guard()
    cid = ctx.arg(0)
    try:
        return exec_from_cli(ctx.root, cid, ctx.p.flags, ctx.p.args[1:], ctx.g)
    except (PyruncError, OSError) as exc:
        # runc: every failure of the exec itself is "exec failed: ..." with status 255, so that
        # callers (containerd's shim, CRI) tell it from the process's own exit status.
        what = str(exc) if isinstance(exc, PyruncError) else f"{exc.strerror or exc}"
        log.error(f"exec failed: {what}")
        return 255


def cmd_spec(ctx: Ctx) -> int:
    from pyrunc.spec.specgen import write_spec

    ctx.exactly(0)
    write_spec(ctx.p.text("bundle", "."), ctx.p.on("rootless"))
    return 0


def cmd_features(ctx: Ctx) -> int:
    import json

    from pyrunc.ops.features import features

    sys.stdout.write(json.dumps(features(), indent=4) + "\n")
    return 0


def cmd_validate(ctx: Ctx) -> int:
    from pyrunc.ops.validate import check_bundle

    problems, warnings = check_bundle(os.path.abspath(ctx.p.text("bundle", ".")))
    for line in warnings:
        sys.stderr.write("warning: " + line + "\n")
    for line in problems:
        sys.stderr.write(line + "\n")
    return 1 if problems else 0


def cmd_unsupported(ctx: Ctx) -> int:
    raise PyruncError("checkpoint/restore (CRIU) is not supported by pyrunc")


HANDLERS: dict[str, Callable[[Ctx], int]] = {
    "create": cmd_create, "run": cmd_run, "start": cmd_start, "state": cmd_state,
    "kill": cmd_kill, "delete": cmd_delete, "list": cmd_list, "pause": cmd_pause,
    "resume": cmd_resume, "ps": cmd_ps, "update": cmd_update, "events": cmd_events,
    "exec": cmd_exec, "spec": cmd_spec, "features": cmd_features, "validate": cmd_validate,
    "checkpoint": cmd_unsupported, "restore": cmd_unsupported,
}

USAGE = """NAME:
   pyrunc - an OCI runtime (runtime-spec 1.3) in Python, a drop-in for runc

USAGE:
   pyrunc [global options] command [command options] [arguments...]

COMMANDS:
   create    create a container
   start     executes the user defined process in a created container
   run       create and run a container
   state     output the state of a container
   kill      kill sends the specified signal (default: SIGTERM) to the container's init process
   delete    delete any resources held by the container often used with detached container
   list      lists containers started by pyrunc with the given root
   ps        ps displays the processes running inside a container
   exec      execute new process inside the container
   pause     pause suspends all processes inside the container
   resume    resumes all processes that have been previously paused
   update    update container resource constraints
   events    display container events such as OOM notifications, cpu, memory, and IO usage statistics
   spec      create a new specification file
   features  show the enabled features
   validate  check a bundle's config.json against the runtime-spec schema and semantics
   help, h   shows a list of commands or help for one command

GLOBAL OPTIONS:
   --root value        root directory for storage of container state (default: "/run/pyrunc",
                       or $XDG_RUNTIME_DIR/pyrunc for a user other than root)
   --log value         set the log file to write pyrunc logs to (default is '/dev/stderr')
   --log-format value  set the log format ('text' (default), or 'json')
   --debug             enable debug logging
   --systemd-cgroup    enable systemd cgroup support (not available without systemd)
   --rootless value    ignore cgroup permission errors ('true', 'false', or 'auto': when not
                       started as root)
   --help, -h          show help
   --version, -v       print the version
"""


# command -> its arguments, for `pyrunc COMMAND --help` (the one-line descriptions are in USAGE)
_ARGS = {"create": "<container-id>", "start": "<container-id>", "run": "<container-id>",
         "state": "<container-id>", "kill": "<container-id> [signal]", "delete": "<container-id>",
         "list": "", "ps": "<container-id> [ps options]", "pause": "<container-id>",
         "exec": "<container-id> <command> [command options]  || -p process.json <container-id>",
         "resume": "<container-id>", "update": "<container-id>", "events": "<container-id>",
         "spec": "", "features": "", "validate": "", "checkpoint": "<container-id>",
         "restore": "<container-id>"}
_FLAG_HELP = {
    "bundle": "path to the root of the bundle directory, defaults to the current directory",
    "console-socket": "path to an AF_UNIX socket which will receive a file descriptor "
                      "referencing the master end of the console's pseudoterminal",
    "pid-file": "specify the file to write the process id to",
    "no-pivot": "do not use pivot root to jail process inside rootfs",
    "no-new-keyring": "do not create a new session keyring for the container",
    "preserve-fds": "pass N additional file descriptors to the container",
    "detach": "detach from the container's process",
    "keep": "do not delete the container after it exits",
    "force": "forcibly deletes the container if it is still running (uses SIGKILL)",
    "all": "send the specified signal to all processes inside the container",
    "format": "select one of: table or json", "quiet": "display only container IDs",
    "resources": "path to the file containing the resources to update or '-' to read from the "
                 "standard input (all other options are then ignored)",
    "interval": "set the stats collection interval (default: 5s)",
    "stats": "display the container's stats then exit", "env": "set environment variables",
    "tty": "allocate a pseudo-TTY", "user": "UID (format: <uid>[:<gid>])",
    "process": "path to the process.json", "cwd": "current working directory in the container",
}


def command_help(command: str) -> str:
    """runc's layout of `runc COMMAND --help`: name, usage, options."""
    about = next((ln.split(None, 1)[1] for ln in USAGE.splitlines()
                  if ln.startswith("   ") and ln.split(None, 1)[0] == command), command)
    flags = COMMANDS[command][0]
    usage = f"pyrunc {command}{' [command options]' if flags else ''} {_ARGS[command]}".rstrip()
    out = f"NAME:\n   pyrunc {command} - {about}\n\nUSAGE:\n   {usage}\n"
    if flags:
        rows = []
        for name, (aliases, takes, _) in flags.items():
            value = " value" if takes else ""
            rows.append((", ".join(f"-{'-' if len(n) > 1 else ''}{n}{value}"
                                   for n in (name, *aliases)), _FLAG_HELP.get(name, "")))
        width = max(len(r[0]) for r in rows) + 2
        out += "\nOPTIONS:\n" + "".join(f"   {n:{width}}{h}".rstrip() + "\n" for n, h in rows)
    return out


def version() -> str:
    commit = "unknown"
    try:
        from pyrunc import _build  # type: ignore[attr-defined]

        commit = _build.COMMIT
    except ImportError:
        pass
    return f"pyrunc version {VERSION}\ncommit: {commit}\nspec: {OCI_VERSION}\npython: {sys.version.split()[0]}\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        g, command, rest = split_global(argv)
        log.configure(g.opt("log"), g.text("log-format", "text"), g.on("debug"))
        if g.on("version"):
            sys.stdout.write(version())
            return 0
        command = "help" if command == "h" else command
        if command == "help" and rest and rest[0] in HANDLERS:
            sys.stdout.write(command_help(rest[0]))
            return 0
        if command is None or g.on("help") or command == "help":
            sys.stdout.write(USAGE)
            return 0 if command == "help" or g.on("help") else 1
        if command not in HANDLERS:
            raise UsageError(f"No help topic for '{command}'")
        flags, stop = COMMANDS[command]
        parsed = parse(rest, {**flags, "help": (("h",), False, False)}, stop)
        if parsed.flags.pop("help", False):
            sys.stdout.write(command_help(command))
            return 0
        log.debug(f"pyrunc {VERSION}: {command} {' '.join(parsed.args[:1])}".rstrip())
        ctx = Ctx(os.path.abspath(g.opt("root") or default_root()), g.flags, parsed)
        return HANDLERS[command](ctx)
    except PyruncError as exc:
        log.error(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        log.error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 1
    except Exception as exc:  # noqa: BLE001 — a bug of ours: still one line and exit 1, no traceback
        log.error(f"internal error: {type(exc).__name__}: {exc}")
        return 1
