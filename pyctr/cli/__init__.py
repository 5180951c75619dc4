"""The `pyctr` command line: argv -> one handler per verb; the only place that prints errors.

Exit status: 0 on success, 1 on an error (125 when `run` itself fails, as docker does), and for
`run` in the foreground the container's own exit status.
"""

from __future__ import annotations

import argparse  # noqa: TID251 - pyctr is not the runtime's hot path
import getpass
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pyctr.driver import logfile
from pyctr.driver.bundle import RunOptions, parse_size
from pyctr.driver.runtime import find_runtime
from pyctr.errors import EngineError, NotFound, PyctrError
from pyctr.image import platforms, reference
from pyctr.image.auth import CredentialStore
from pyctr.image.registry import Registry
from pyctr.image.store import Store
from pyctr.ops import distribution, imageops, monitor
from pyctr.ops.containers import Containers

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
    return distribution.registry_for(ref, a.insecure, connect_timeout=a.connect_timeout,
                                     read_timeout=a.read_timeout, retries=a.retries)


def _image(store: Store, text: str, a: argparse.Namespace, pull_missing: bool) -> Any:
    try:
        return store.lookup(text)
    except NotFound:
        if not pull_missing:
            raise
    ref = reference.parse(text)
    print(f"Unable to find image '{ref.familiar()}' locally", file=sys.stderr)
    return distribution.pull(store, ref, _registry(ref, a))


# --- images --------------------------------------------------------------------------------


@verb("pull")
def cmd_pull(a: argparse.Namespace) -> int:
    ref = reference.parse(a.image)
    want = platforms.parse_platform(a.platform) if a.platform else None
    distribution.pull(_store(a), ref, _registry(ref, a), want)
    print(str(ref))
    return 0


@verb("push")
def cmd_push(a: argparse.Namespace) -> int:
    store = _store(a)
    img = store.lookup(a.image)
    ref = reference.parse(a.destination or img.name)
    distribution.push(store, img, ref, _registry(ref, a))
    return 0


@verb("login")
def cmd_login(a: argparse.Namespace) -> int:
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
    store = _store(a)
    blobs, unpacked = imageops.prune(store, Containers(store))
    for digest in blobs:
        print(f"deleted blob: {digest}")
    print(f"Total: {len(blobs)} blobs, {len(unpacked)} unpacked layers removed")
    return 0


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


# --- containers ----------------------------------------------------------------------------


def _run_options(a: argparse.Namespace) -> RunOptions:
    if a.network not in ("none", "host"):
        raise PyctrError(f"unsupported --network {a.network!r} (none or host)")
    return RunOptions(
        args=a.command, entrypoint=a.entrypoint, env=a.env, workdir=a.workdir, user=a.user,
        hostname=a.hostname, volumes=a.volume, read_only=a.read_only,
        memory=parse_size(a.memory) if a.memory else None, cpus=a.cpus,
        pids_limit=a.pids_limit, cap_add=a.cap_add, cap_drop=a.cap_drop, network=a.network,
        tty=a.tty, seccomp=a.seccomp != "unconfined",
        **dict(zip(("log_max_size", "log_max_files"), logfile.parse_opts(a.log_opt), strict=True)))


@verb("run")
def cmd_run(a: argparse.Namespace) -> int:
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
    cs = Containers(_store(a))
    rows = []
    for c in cs.all():
        alive = cs.is_alive(c)
        if not (alive or a.all):
            continue
        status = "Up" if alive else (f"Exited ({c.exit_code})" if c.exit_code is not None
                                     else "Created")
        rows.append((c.short_id, reference.parse(c.image).familiar() if "/" in c.image
                     else c.image[:19], json.dumps(" ".join(c.command))[:30], status, c.name))
    if a.quiet:
        print("\n".join(r[0] for r in rows))
        return 0
    _table(["CONTAINER ID", "IMAGE", "COMMAND", "STATUS", "NAMES"], rows)
    return 0


@verb("logs")
def cmd_logs(a: argparse.Namespace) -> int:
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
    cs = Containers(_store(a))
    for text in a.containers:
        c = cs.wait(cs.find(text))
        print(c.exit_code if c and c.exit_code is not None else -1)
    return 0


@verb("exec")
def cmd_exec(a: argparse.Namespace) -> int:
    from pyctr.ops import execution

    cs = Containers(_store(a))
    return execution.exec_in(cs, cs.find(a.container), a.command, a.env, a.workdir, a.user,
                             a.interactive, a.tty)


@verb("volume")
def cmd_volume(a: argparse.Namespace) -> int:
    from pyctr.image.volumes import Volumes

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


def main(argv: list[str] | None = None) -> int:
    from pyctr.cli.cli_args import parser

    args = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    a = p.parse_args(args)
    if a.verb == "image":
        before = args[: args.index("image")]
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
