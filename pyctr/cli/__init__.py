"""The `pyctr` command line: argv -> one handler per verb; the only place that prints errors.

Exit status: 0 on success, 1 on an error (125 when `run` itself fails or a command line cannot
be parsed, as docker does), and for `run` in the foreground the container's own exit status.
"""

from __future__ import annotations

import argparse  # noqa: TID251 - pyctr is not the runtime's hot path
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyctr.errors import EngineError, NotFound, PyctrError
from pyctr.image import reference
from pyctr.image.store import Store

if TYPE_CHECKING:
    from pyctr.driver.bundle import RunOptions
    from pyctr.image.registry import Registry
    from pyctr.ops.containers import Container, Containers

# Each verb imports what it needs (python -X importtime): the registry client, http.client and
# ssl, the bundle writer, the monitor, the build are 5-60 ms each, and most verbs use none.

Handler = Callable[[argparse.Namespace], int]
HANDLERS: dict[str, Handler] = {}


def verb(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn
    return register


def _store(a: argparse.Namespace) -> Store:
    return Store(Path(a.root))


def _registry(ref: reference.Reference, a: argparse.Namespace) -> Registry:
    from pyctr.ops import distribution

    return distribution.registry_for(ref, a.insecure, connect_timeout=a.connect_timeout,
                                     read_timeout=a.read_timeout, retries=a.retries)


def _image(store: Store, text: str, a: argparse.Namespace, pull_missing: bool) -> Any:
    try:
        return store.lookup(text)
    except NotFound:
        if not pull_missing:
            raise
    from pyctr.ops import distribution

    ref = reference.parse(text)
    print(f"Unable to find image '{ref.familiar()}' locally", file=sys.stderr)
    return distribution.pull(store, ref, _registry(ref, a))


# --- images --------------------------------------------------------------------------------


@verb("pull")
def cmd_pull(a: argparse.Namespace) -> int:
    from pyctr.image import platforms
    from pyctr.ops import distribution

    ref = reference.parse(a.image)
    want = platforms.parse_platform(a.platform) if a.platform else None
    distribution.pull(_store(a), ref, _registry(ref, a), want)
    print(str(ref))
    return 0


@verb("push")
def cmd_push(a: argparse.Namespace) -> int:
    from pyctr.ops import distribution

    store = _store(a)
    img = store.lookup(a.image)
    ref = reference.parse(a.destination or img.name)
    distribution.push(store, img, ref, _registry(ref, a))
    return 0


@verb("login")
def cmd_login(a: argparse.Namespace) -> int:
    import getpass

    from pyctr.image.auth import CredentialStore
    from pyctr.image.registry import Registry

    user = a.username or input("Username: ")
    if a.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = a.password if a.password is not None else getpass.getpass("Password: ")
    host = a.server
    ref = reference.parse(f"{host}/x")
    Registry(ref.api_host, insecure=a.insecure, credentials=(user, password),
             connect_timeout=a.connect_timeout, read_timeout=a.read_timeout,
             retries=a.retries).ping()
    CredentialStore().set(host, user, password)
    print("Login Succeeded")
    return 0


@verb("logout")
def cmd_logout(a: argparse.Namespace) -> int:
    from pyctr.image.auth import CredentialStore

    if not CredentialStore().remove(a.server):
        raise NotFound(f"not logged in to {a.server}")
    print(f"Removing login credentials for {a.server}")
    return 0


@verb("images")
def cmd_images(a: argparse.Namespace) -> int:
    store = _store(a)
    rows = []
    for img in store.images():
        ref = reference.parse(img.name)
        repo = ref.familiar().split("@")[0].rsplit(":", 1)[0] if ref.tag else ref.familiar().split("@")[0]
        manifest = store.manifest(img)
        size = sum(layer.get("size", 0) for layer in manifest.get("layers", []))
        image_id = manifest["config"]["digest"].removeprefix("sha256:")[:12]
        rows.append((repo, ref.tag or "<none>", image_id, f"{size / 1e6:.1f}MB"))
    if a.quiet:
        print("\n".join(dict.fromkeys(r[2] for r in rows)))
        return 0
    _table(["REPOSITORY", "TAG", "IMAGE ID", "SIZE"], rows)
    return 0


@verb("tag")
def cmd_tag(a: argparse.Namespace) -> int:
    store = _store(a)
    img = store.lookup(a.source)
    source = (img.descriptor.get("annotations") or {}).get("io.pyctr.source")
    store.add_ref(a.target, img.descriptor, source=source)
    return 0


@verb("rmi")
def cmd_rmi(a: argparse.Namespace) -> int:
    from pyctr.ops import imageops
    from pyctr.ops.containers import Containers

    store = _store(a)
    cs = Containers(store)
    for text in a.images:
        for name in imageops.remove_image(store, cs, text, a.force):
            print(f"Untagged: {reference.parse(name).familiar()}")
    for digest in imageops.prune(store, cs)[0]:
        print(f"Deleted: {digest}")
    return 0


@verb("prune")
def cmd_prune(a: argparse.Namespace) -> int:
    from pyctr.ops import imageops
    from pyctr.ops.containers import Containers

    store = _store(a)
    cache = imageops.prune_build_cache(store, everything=getattr(a, "all", False))
    blobs, unpacked = imageops.prune(store, Containers(store))
    for key in cache:
        print(f"deleted build cache: {key[:12]}")
    for digest in blobs:
        print(f"deleted blob: {digest}")
    print(f"Total: {len(blobs)} blobs, {len(unpacked)} unpacked layers, "
          f"{len(cache)} build cache entries removed")
    return 0


@verb("builder")
def cmd_builder(a: argparse.Namespace) -> int:
    """`builder prune [-a]`: the build cache (entries holding layers no image holds, or every
    entry with -a), then the blobs and unpacked layers nothing holds any more."""
    return cmd_prune(a)


@verb("inspect")
def cmd_inspect(a: argparse.Namespace) -> int:
    store = _store(a)
    out = []
    for text in a.objects:
        try:
            img = store.lookup(text)
            manifest = store.manifest(img)
            out.append({"Id": manifest["config"]["digest"], "RepoTags": [img.name],
                        "Digest": img.digest, "Manifest": manifest,
                        "Config": store.config(manifest)})
        except NotFound:
            from pyctr.ops.containers import Containers

            cs = Containers(store)
            out.append(cs.inspect(cs.find(text)))
    if a.format is None:
        print(json.dumps(out, indent=4))
        return 0
    from pyctr.cli import gotemplate

    for doc in out:
        print(gotemplate.render(a.format, doc))
    return 0


@verb("commit")
def cmd_commit(a: argparse.Namespace) -> int:
    from pyctr.ops import imageops
    from pyctr.ops.containers import Containers

    store = _store(a)
    cs = Containers(store)
    img = imageops.commit(store, cs, cs.find(a.container), a.image, a.message, a.author)
    print(store.image_id(img))
    return 0


@verb("save")
def cmd_save(a: argparse.Namespace) -> int:
    from pyctr.ops import archive

    store = _store(a)
    archive.save(store, [store.lookup(i) for i in a.images], Path(a.output), a.format)
    return 0


@verb("load")
def cmd_load(a: argparse.Namespace) -> int:
    from pyctr.ops import archive

    for name in archive.load(_store(a), Path(a.input)):
        print(f"Loaded image: {name}")
    return 0


@verb("build")
def cmd_build(a: argparse.Namespace) -> int:
    from pyctr.driver.runtime import find_runtime
    from pyctr.ops import build

    if a.network not in ("none", "host"):
        raise PyctrError(f"unsupported --network {a.network!r} for build (none or host)")
    store = _store(a)
    opts = build.BuildOptions(
        context=Path(a.context), dockerfile=Path(a.file) if a.file else None, tags=a.tag,
        build_args=build.parse_build_args(a.build_arg), no_cache=a.no_cache,
        network=a.network, target=a.target, quiet=a.quiet)
    for tag in opts.tags:
        reference.parse(tag)  # a bad -t fails before the first step
    img = build.build(store, opts, find_runtime(a.runtime),
                      lambda text: _image(store, text, a, pull_missing=True))
    image_id = store.image_id(img)
    if a.quiet:
        print(image_id)
        return 0
    print(f"Successfully built {image_id.removeprefix('sha256:')[:12]}")
    for tag in opts.tags:
        print(f"Successfully tagged {reference.parse(tag).familiar()}")
    return 0


# --- containers ----------------------------------------------------------------------------


def _run_options(a: argparse.Namespace) -> RunOptions:
    from pyctr.driver import logfile
    from pyctr.driver.bundle import RunOptions, parse_size
    from pyctr.driver.firewall import parse_publish

    for spec in a.publish:
        parse_publish(spec)  # a bad -p fails before anything is made
    if (a.publish or a.publish_all) and (a.network in ("none", "host")
                                         or a.network.startswith("container:")):
        raise PyctrError(f"--publish needs a bridge network, not --network {a.network}")
    max_size, max_files = logfile.parse_opts(a.log_opt)
    return RunOptions(
        args=a.command, entrypoint=a.entrypoint, env=a.env, workdir=a.workdir, user=a.user,
        hostname=a.hostname, volumes=a.volume, read_only=a.read_only,
        memory=parse_size(a.memory) if a.memory else None, cpus=a.cpus,
        pids_limit=a.pids_limit, cap_add=a.cap_add, cap_drop=a.cap_drop, network=a.network,
        publish=a.publish, publish_all=a.publish_all,
        tty=a.tty, seccomp=a.seccomp != "unconfined",
        log_max_size=max_size, log_max_files=max_files)


@verb("run")
def cmd_run(a: argparse.Namespace) -> int:
    from pyctr.driver.runtime import find_runtime
    from pyctr.ops import monitor
    from pyctr.ops.containers import Containers

    store = _store(a)
    cs = Containers(store)
    img = _image(store, a.image, a, pull_missing=True)
    c = cs.create(img, _run_options(a), find_runtime(a.runtime), a.name, a.rm)
    if a.detach:
        monitor.run_detached(cs, c)
        print(c.id)
        return 0
    if a.tty:
        return monitor.run_tty(cs, c, a.interactive)
    return monitor.run_foreground(cs, c, a.interactive)


@verb("ps")
def cmd_ps(a: argparse.Namespace) -> int:
    from pyctr.ops.containers import Containers

    cs = Containers(_store(a))
    rows = []
    listed = [(c, alive) for c in cs.all() if (alive := cs.is_alive(c)) or a.all]
    ports = _published(cs, [c for c, alive in listed if alive])
    for c, alive in listed:
        status = "Up" if alive else (f"Exited ({c.exit_code})" if c.exit_code is not None
                                     else "Created")
        rows.append((c.short_id, reference.parse(c.image).familiar() if "/" in c.image
                     else c.image[:19], json.dumps(" ".join(c.command))[:30], status,
                     ", ".join(ports.get(c.id, [])), c.name))
    if a.quiet:
        print("\n".join(r[0] for r in rows))
        return 0
    _table(["CONTAINER ID", "IMAGE", "COMMAND", "STATUS", "PORTS", "NAMES"], rows)
    return 0


def _published(cs: Containers, running: list[Container]) -> dict[str, list[str]]:
    """docker's PORTS: the bindings of running containers on bridge networks."""
    from pyctr.ops import containers

    if not any(containers.is_bridge(c.network) for c in running):
        return {}
    from pyctr.ops import networking

    found = networking.published(cs.store)
    return {c.id: [networking.port_text(p) for p in found.get(c.id, [])] for c in running}


@verb("port")
def cmd_port(a: argparse.Namespace) -> int:
    from pyctr.ops import networking
    from pyctr.ops.containers import Containers

    cs = Containers(_store(a))
    c = cs.find(a.container)
    ports = networking.published(cs.store).get(c.id, []) if cs.is_alive(c) else []
    if a.private_port:
        number, _, proto = a.private_port.partition("/")
        ports = [p for p in ports if str(p.container_port) == number
                 and p.proto == (proto or "tcp")]
        if not ports:
            raise NotFound(f"No public port '{number}/{proto or 'tcp'}' published for "
                           f"{a.container}")
        print("\n".join(f"{p.host_ip or '0.0.0.0'}:{p.host_port}" for p in ports))
        return 0
    for p in ports:
        print(f"{p.container_port}/{p.proto} -> {p.host_ip or '0.0.0.0'}:{p.host_port}")
    return 0


@verb("logs")
def cmd_logs(a: argparse.Namespace) -> int:
    import time

    from pyctr.driver import logfile
    from pyctr.ops.containers import Containers

    cs = Containers(_store(a))
    c = cs.find(a.container)
    path = logfile.log_path(cs.path(c.id), c.id)
    for older in logfile.files(path)[:-1]:
        _print_log(older, 0)
    offset = 0
    while True:
        alive = a.follow and cs.is_alive(c)
        offset = _print_log(path, offset)
        if not alive:
            return 0
        time.sleep(0.1)


def _print_log(path: Path, offset: int) -> int:
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size < offset:
                offset = 0  # rotated under us: the new current file starts again
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return offset
    complete = data.rfind(b"\n") + 1
    for line in data[:complete].splitlines():
        entry = json.loads(line)
        stream = sys.stdout if entry.get("stream") == "stdout" else sys.stderr
        stream.write(entry["log"])
        stream.flush()
    return offset + complete


def _each(a: argparse.Namespace, act: Callable[[Containers, Any], object]) -> int:
    """Apply `act` to each named container, printing its name as docker does."""
    from pyctr.ops.containers import Containers

    cs = Containers(_store(a))
    for text in a.containers:
        act(cs, cs.find(text))
        print(text)
    return 0


@verb("stop")
def cmd_stop(a: argparse.Namespace) -> int:
    return _each(a, lambda cs, c: cs.stop(c, a.time))


@verb("kill")
def cmd_kill(a: argparse.Namespace) -> int:
    return _each(a, lambda cs, c: cs.kill(c, a.signal))


@verb("rm")
def cmd_rm(a: argparse.Namespace) -> int:
    return _each(a, lambda cs, c: cs.remove(c, a.force))


@verb("wait")
def cmd_wait(a: argparse.Namespace) -> int:
    from pyctr.ops.containers import Containers

    cs = Containers(_store(a))
    for text in a.containers:
        c = cs.wait(cs.find(text))
        print(c.exit_code if c and c.exit_code is not None else -1)
    return 0


@verb("exec")
def cmd_exec(a: argparse.Namespace) -> int:
    from pyctr.ops import execution
    from pyctr.ops.containers import Containers

    cs = Containers(_store(a))
    return execution.exec_in(cs, cs.find(a.container), a.command, a.env, a.workdir, a.user,
                             a.interactive, a.tty)


@verb("volume")
def cmd_volume(a: argparse.Namespace) -> int:
    import uuid

    from pyctr.image.volumes import Volumes
    from pyctr.ops.containers import Containers

    store = _store(a)
    vols = Volumes(store)
    if a.action == "create":
        name = a.name or uuid.uuid4().hex + uuid.uuid4().hex
        vols.create(name)
        print(name)
    elif a.action == "ls":
        names = vols.names()
        print("\n".join(names) if a.quiet else "\n".join(
            ["DRIVER    VOLUME NAME", *(f"local     {n}" for n in names)]))
    elif a.action == "inspect":
        print(json.dumps([vols.inspect(n) for n in a.names], indent=4))
    else:
        containers = Containers(store).all()
        for name in a.names:
            vols.remove(name, [c.name for c in containers if name in c.volumes])
            print(name)
    return 0


@verb("network")
def cmd_network(a: argparse.Namespace) -> int:
    from pyctr.ops import networking

    store = _store(a)
    if a.action == "create":
        print(networking.create_network(store, a.name, a.subnet).id)
    elif a.action == "ls":
        nets = networking.list_networks(store)
        rows = [(n.id[:12], n.name, "bridge", n.subnet) for n in nets]
        rows += [("", name, name, "") for name in ("host", "none")]
        if a.quiet:
            print("\n".join(r[1] for r in rows))
            return 0
        _table(["NETWORK ID", "NAME", "DRIVER", "SUBNET"], rows)
    elif a.action == "inspect":
        by_name = {n.name: n for n in networking.list_networks(store)}
        missing = [n for n in a.names if n not in by_name]
        if missing:
            raise NotFound(f"network {missing[0]} not found")
        print(json.dumps([networking.inspect(by_name[n]) for n in a.names], indent=4))
    else:
        for name in a.names:
            networking.remove_network(store, name)
            print(name)
    return 0


def _table(headers: list[str], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for row in [tuple(headers), *rows]:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _exit_code(verb: str, exc: PyctrError) -> int:
    """docker's: 125 when `run` itself fails, 126 and 127 when its command cannot run."""
    if verb in ("run", "exec") and isinstance(exc, EngineError):
        return exc.exit_code
    return 125 if verb == "run" else 1


_IMAGE_ALIASES = {"prune": ["prune"], "ls": ["images"], "rm": ["rmi"]}
_ALIAS_VERBS = ("image", "system")


def main(argv: list[str] | None = None) -> int:
    from pyctr.cli.cli_args import parser

    args = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    a = p.parse_args(args)
    if a.verb in _ALIAS_VERBS:  # `image ls`, `system prune`: the verbs they stand for
        before = args[: args.index(a.verb)]
        a = p.parse_args(before + _IMAGE_ALIASES[a.action] + a.rest)
    try:
        return HANDLERS[a.verb](a)
    except PyctrError as exc:
        if a.debug:
            raise
        print(f"pyctr: {exc}", file=sys.stderr)
        return _exit_code(a.verb, exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
