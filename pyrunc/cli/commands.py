"""The handlers of the commands other than the short verbs (`start`, `state`, `kill`, `delete`,
which engines call for every container and pyrunc.cli keeps): loaded when one of them runs."""

from __future__ import annotations

import sys

from pyrunc import MYPY
from pyrunc.cli import Ctx, usage_error
from pyrunc.sys import oslite as os

if MYPY:
    from collections.abc import Callable

    from pyrunc.ops.create import CreateOptions


def _create_opts(ctx: Ctx) -> CreateOptions:
    # the container layer's type (pyrunc.ops.create re-exports it): `run` need not load that verb
    from pyrunc.container.create import CreateOptions

    p = ctx.p
    return CreateOptions(
        bundle=p.text("bundle", "."), pid_file=p.opt("pid-file"),
        console_socket=p.opt("console-socket"), no_pivot=p.on("no-pivot"),
        no_new_keyring=p.on("no-new-keyring"),
        preserve_fds=_int(p.text("preserve-fds", "0"), "--preserve-fds"),
        systemd_cgroup=bool(ctx.g.get("systemd-cgroup")),
        rootless=rootless(ctx.g.get("rootless", "auto")))


def rootless(value: object) -> bool:
    """--rootless true|false|auto (runc's default auto: rootless when not started as root, or
    as root of a user namespace, as rootless podman runs it)."""
    text = str(value).lower()
    if text not in ("true", "false", "auto"):
        raise usage_error(f"invalid --rootless value {value!r} (true, false or auto)")
    from pyrunc.linux.rootless import use_rootless

    return use_rootless(text)


def _int(v: str, what: str) -> int:
    try:
        n = int(v)
    except ValueError as exc:
        raise usage_error(f"{what}: not a number: {v!r}") from exc
    if n < 0:
        raise usage_error(f"{what}: must not be negative")
    return n


def _guard() -> None:
    from pyrunc.linux import exeguard

    exeguard.ensure()


def cmd_create(ctx: Ctx) -> int:
    from pyrunc.ops.create import create

    cid = ctx.only_id()
    _guard()
    create(ctx.root, cid, _create_opts(ctx))
    return 0


def cmd_run(ctx: Ctx) -> int:
    from pyrunc.ops.run import run

    cid = ctx.only_id()
    _guard()
    return run(ctx.root, cid, _create_opts(ctx), detach=ctx.p.on("detach"),
               keep=ctx.p.on("keep"))


def cmd_list(ctx: Ctx) -> int:
    from pyrunc.ops.listing import listing

    sys.stdout.write(listing(ctx.root, ctx.p.text("format", "table"), ctx.p.on("quiet")))
    return 0


def cmd_pause(ctx: Ctx) -> int:
    from pyrunc.ops.pause import pause

    pause(ctx.root, ctx.only_id())
    return 0


def cmd_resume(ctx: Ctx) -> int:
    from pyrunc.ops.pause import resume

    resume(ctx.root, ctx.only_id())
    return 0


def cmd_ps(ctx: Ctx) -> int:
    from pyrunc.ops.ps import ps

    sys.stdout.write(ps(ctx.root, ctx.arg(0), ctx.p.text("format", "table"), ctx.p.args[1:]))
    return 0


def cmd_update(ctx: Ctx) -> int:
    from pyrunc.ops import update

    cid = ctx.only_id()
    # every flag of update takes a value (a string)
    flags = {k: v for k, v in ctx.p.flags.items() if k != "resources" and isinstance(v, str)}
    resources_file = ctx.p.opt("resources")
    if resources_file:
        resources = update.load_resources(resources_file, sys.stdin)
    else:
        resources = update.resources_from_flags(flags)
    update.update(ctx.root, cid, resources)
    return 0


def cmd_events(ctx: Ctx) -> int:
    import gc

    from pyrunc.ops.events import events, parse_interval

    gc.enable()  # it can run for the container's whole life (console turned collection off)
    return events(ctx.root, ctx.only_id(), stats=ctx.p.on("stats"),
                  interval=parse_interval(ctx.p.text("interval", "5s")), out=sys.stdout)


def cmd_exec(ctx: Ctx) -> int:
    from pyrunc.errors import PyruncError
    from pyrunc.ops.exec import exec_from_cli

    _guard()
    cid = ctx.arg(0)
    try:
        return exec_from_cli(ctx.root, cid, ctx.p.flags, ctx.p.args[1:], ctx.g)
    except (PyruncError, OSError) as exc:
        # runc: every failure of the exec itself is "exec failed: ..." with status 255, so that
        # callers (containerd's shim, CRI) tell it from the process's own exit status.
        what = str(exc) if isinstance(exc, PyruncError) else f"{exc.strerror or exc}"
        from pyrunc import log  # (loaded where a line is written)

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
    from pyrunc.errors import PyruncError

    raise PyruncError("checkpoint/restore (CRIU) is not supported by pyrunc")


HANDLERS: dict[str, Callable[[Ctx], int]] = {
    "create": cmd_create, "run": cmd_run, "list": cmd_list, "pause": cmd_pause,
    "resume": cmd_resume, "ps": cmd_ps, "update": cmd_update, "events": cmd_events,
    "exec": cmd_exec, "spec": cmd_spec, "features": cmd_features, "validate": cmd_validate,
    "checkpoint": cmd_unsupported, "restore": cmd_unsupported,
}
