"""The argument parser of `pyctr` (kept apart from the handlers in pyctr.cli)."""

from __future__ import annotations

import argparse  # noqa: TID251 - pyctr is not the runtime's hot path
import os
import sys
from typing import NoReturn

from pyctr.image.store import DEFAULT_ROOT


def _add_run(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run a command in a new container", add_help=False)
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("--rm", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--name")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("--entrypoint")
    p.add_argument("-h", "--hostname")
    p.add_argument("-v", "--volume", action="append", default=[])
    p.add_argument("--read-only", action="store_true")
    p.add_argument("-m", "--memory")
    p.add_argument("--cpus", type=float)
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--cap-add", action="append", default=[])
    p.add_argument("--cap-drop", action="append", default=[])
    p.add_argument("--network", "--net", default="none",
                   help="none (the default: lo only), host, bridge (pyctr0), a network's name "
                   "or container:NAME (another container's network namespace)")
    p.add_argument("-p", "--publish", action="append", default=[],
                   metavar="[[IP:][HOST]:]CONTAINER[/tcp|udp]")
    p.add_argument("-P", "--publish-all", action="store_true",
                   help="publish every port the image exposes on a free host port")
    p.add_argument("--security-opt", dest="seccomp", type=lambda s: s.removeprefix("seccomp="))
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--log-opt", action="append", default=[])
    p.add_argument("--help", action="help")
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)


def _add_images(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("pull", help="pull an image from a registry")
    p.add_argument("--platform")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("image")
    p = sub.add_parser("push", help="push an image to a registry")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("image")
    p.add_argument("destination", nargs="?")
    p = sub.add_parser("login", help="store credentials for a registry")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("server")
    sub.add_parser("logout").add_argument("server")
    p = sub.add_parser("images", help="list images")
    p.add_argument("-q", "--quiet", action="store_true")
    p = sub.add_parser("tag")
    p.add_argument("source")
    p.add_argument("target")
    p = sub.add_parser("rmi")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("images", nargs="+")
    p = sub.add_parser("prune", help="remove unreferenced blobs, unpacked layers and build cache")
    p.add_argument("-f", "--force", action="store_true", help="(no prompt is shown anyway)")
    p = sub.add_parser("inspect")
    p.add_argument("-f", "--format")
    p.add_argument("objects", nargs="+")
    p = sub.add_parser("commit")
    p.add_argument("-m", "--message", default="")
    p.add_argument("-a", "--author", default="")
    p.add_argument("container")
    p.add_argument("image")
    p = sub.add_parser("save")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--format", choices=("docker", "oci"), default="docker")
    p.add_argument("images", nargs="+")
    sub.add_parser("load").add_argument("-i", "--input", required=True)


def _add_build(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("build", help="build an image from a Dockerfile")
    p.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]")
    p.add_argument("-f", "--file", metavar="PATH", help="the Dockerfile (default CONTEXT/Dockerfile)")
    p.add_argument("--build-arg", action="append", default=[], metavar="KEY[=VALUE]")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--target", help="build up to this stage")
    p.add_argument("--network", default="none",
                   help="the network of RUN steps: none (the default: lo only) or host")
    p.add_argument("-q", "--quiet", action="store_true", help="print the image id only")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("context")


def _add_containers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ps")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p = sub.add_parser("port", help="the published ports of a container")
    p.add_argument("container")
    p.add_argument("private_port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")
    p = sub.add_parser("logs")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("container")
    p = sub.add_parser("stop")
    p.add_argument("-t", "--time", type=float, default=10)
    p.add_argument("containers", nargs="+")
    p = sub.add_parser("kill")
    p.add_argument("-s", "--signal", default="KILL")
    p.add_argument("containers", nargs="+")
    p = sub.add_parser("rm")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("containers", nargs="+")
    sub.add_parser("wait").add_argument("containers", nargs="+")
    p = sub.add_parser("exec")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)


def _add_networks(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    network = sub.add_parser("network", help="bridge networks: create|ls|rm|inspect")
    actions = network.add_subparsers(dest="action", required=True)
    p = actions.add_parser("create")
    p.add_argument("--subnet")
    p.add_argument("-d", "--driver", choices=("bridge",), default="bridge")
    p.add_argument("name")
    actions.add_parser("ls").add_argument("-q", "--quiet", action="store_true")
    actions.add_parser("rm").add_argument("names", nargs="+")
    actions.add_parser("inspect").add_argument("names", nargs="+")


def _add_volumes(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    volume = sub.add_parser("volume", help="named volumes: create|ls|rm|inspect")
    actions = volume.add_subparsers(dest="action", required=True)
    actions.add_parser("create").add_argument("name", nargs="?")
    actions.add_parser("ls").add_argument("-q", "--quiet", action="store_true")
    actions.add_parser("rm").add_argument("names", nargs="+")
    actions.add_parser("inspect").add_argument("names", nargs="+")


class _Parser(argparse.ArgumentParser):
    """docker's status for a command line it cannot parse: 125, not argparse's 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(125, f"{self.prog}: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pyctr", description="images and containers on an OCI runtime")
    p.add_argument("--root", default=os.environ.get("PYCTR_ROOT", str(DEFAULT_ROOT)))
    p.add_argument("--runtime", default=os.environ.get("PYCTR_RUNTIME"))
    p.add_argument("--debug", action="store_true")
    env = os.environ.get
    p.add_argument("--connect-timeout", type=float, metavar="SECONDS",
                   default=float(env("PYCTR_CONNECT_TIMEOUT", "10")),
                   help="registry connect timeout (default 10, $PYCTR_CONNECT_TIMEOUT)")
    p.add_argument("--read-timeout", type=float, metavar="SECONDS",
                   default=float(env("PYCTR_READ_TIMEOUT", "30")),
                   help="registry read timeout, per read (default 30, $PYCTR_READ_TIMEOUT)")
    p.add_argument("--retries", type=int, default=int(env("PYCTR_RETRIES", "3")),
                   help="retries of a failed registry request, with backoff (default 3)")
    sub = p.add_subparsers(dest="verb", required=True)
    _add_images(sub)
    _add_build(sub)
    _add_run(sub)
    _add_containers(sub)
    _add_volumes(sub)
    _add_networks(sub)
    builder = sub.add_parser("builder", help="builder prune: the build cache")
    prune = builder.add_subparsers(dest="action", required=True).add_parser("prune")
    prune.add_argument("-a", "--all", action="store_true", help="every entry, not only unused ones")
    prune.add_argument("-f", "--force", action="store_true", help="(no prompt is shown anyway)")
    system = sub.add_parser("system", help="system prune")
    system.add_argument("action", choices=("prune",))
    system.add_argument("rest", nargs=argparse.REMAINDER)
    image = sub.add_parser("image", help="image prune|ls|rm")
    image.add_argument("action", choices=("prune", "ls", "rm"))
    image.add_argument("rest", nargs=argparse.REMAINDER)
    return p
