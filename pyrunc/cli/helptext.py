"""The help texts of the command line, runc's layout: loaded only by --help, -v and `help`."""

from __future__ import annotations

import sys

from pyrunc import OCI_VERSION, VERSION
from pyrunc.cli import COMMANDS

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
                       or $XDG_RUNTIME_DIR/pyrunc for a user other than root or root of a
                       user namespace)
   --log value         set the log file to write pyrunc logs to (default is '/dev/stderr')
   --log-format value  set the log format ('text' (default), or 'json')
   --debug             enable debug logging
   --systemd-cgroup    enable systemd cgroup support (not available without systemd)
   --rootless value    ignore cgroup permission errors ('true', 'false', or 'auto': when not
                       started as root, or as root of a user namespace)
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
