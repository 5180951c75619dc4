"""Containers: records, creation from an image, and the life cycle around the runtime.

    <root>/containers/<id>/container.json   the record (written temp + fsync + rename)
    <root>/containers/<id>/config.json      the bundle's config; the directory is the bundle
    <root>/containers/<id>/{rootfs,upper,work}  overlayfs mount point, writable layer, workdir
    <root>/containers/<id>/monitor.lock     held (flock) by whoever waits for the container's
                                            exit: `run` in the foreground, or its monitor

Taking `monitor.lock` shared therefore blocks until the container has exited and its exit
code is recorded: `wait`, `stop` and `rm -f` use that instead of polling.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyctr.driver.logfile import DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE
from pyctr.driver.runtime import Runtime
from pyctr.errors import ContainerError, NotFound
from pyctr.image.store import Image, Store, atomic_write, flocked, now, private_dir

if TYPE_CHECKING:
    from pyctr.driver import bundle
    from pyctr.driver.firewall import PortMapping

# The bundle writer, layers, rootfs and networking are imported by the steps that use them:
# `ps`, `logs`, `wait` and `stop` need none of them (python -X importtime: ~20 ms).

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@dataclass
class Container:
    id: str
    name: str
    image: str
    image_digest: str
    command: list[str]
    runtime: str
    created: str = field(default_factory=now)
    status: str = "created"
    pid: int = 0
    exit_code: int | None = None
    started: str | None = None
    finished: str | None = None
    rootfs_mode: str = "overlay"
    auto_remove: bool = False
    chain_ids: list[str] = field(default_factory=list)
    tty: bool = False
    volumes: list[str] = field(default_factory=list)
    log_max_size: int = DEFAULT_MAX_SIZE
    log_max_files: int = DEFAULT_MAX_FILES
    network: str = "none"

    @property
    def short_id(self) -> str:
        return self.id[:12]


class Containers:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.dir = store.containers

    def path(self, cid: str) -> Path:
        return self.dir / cid

    def save(self, c: Container) -> None:
        atomic_write(self.path(c.id) / "container.json", json.dumps(asdict(c), indent=2).encode())

    def load(self, cid: str) -> Container:
        try:
            data = json.loads((self.path(cid) / "container.json").read_bytes())
        except FileNotFoundError as exc:
            raise NotFound(f"No such container: {cid}") from exc
        return Container(**data)

    def all(self) -> list[Container]:
        out = []
        for entry in sorted(self.dir.iterdir()):
            if entry.name.startswith("."):
                continue
            with contextlib.suppress(NotFound, ValueError, TypeError):
                out.append(self.load(entry.name))
        return sorted(out, key=lambda c: c.created, reverse=True)

    def find(self, text: str) -> Container:
        """By name, full id or unique id prefix."""
        everything = self.all()
        for c in everything:
            if c.name == text or c.id == text:
                return c
        matches = [c for c in everything if c.id.startswith(text)] if len(text) >= 3 else []
        if len(matches) == 1:
            return matches[0]
        raise NotFound(f"No such container: {text}")

    def inspect(self, c: Container) -> dict[str, Any]:
        """docker's shape (Id, Name, State, Config, Mounts, ...) plus pyctr's own record."""
        from pyctr.ops import networking

        alive = self.is_alive(c)
        status = "running" if alive else ("exited" if c.exit_code is not None else "created")
        try:
            spec = json.loads((self.path(c.id) / "config.json").read_bytes())
        except (OSError, ValueError):
            spec = {}
        process = spec.get("process") or {}
        return {
            "Id": c.id, "Name": "/" + c.name, "Created": c.created, "Image": c.image_digest,
            "Path": c.command[0] if c.command else "", "Args": c.command[1:],
            "State": {"Status": status, "Running": alive, "Pid": c.pid if alive else 0,
                      "ExitCode": c.exit_code or 0, "StartedAt": c.started or "",
                      "FinishedAt": c.finished or ""},
            "Config": {"Image": c.image, "Cmd": c.command, "Tty": c.tty,
                       "Env": process.get("env", []), "WorkingDir": process.get("cwd", ""),
                       "Hostname": spec.get("hostname", "")},
            "Mounts": [{"Type": "bind", "Source": m["source"], "Destination": m["destination"]}
                       for m in spec.get("mounts", []) if m.get("type") == "bind"],
            "HostConfig": {"LogConfig": {"Type": "json-file", "Config": {
                "max-size": str(c.log_max_size), "max-file": str(c.log_max_files)}}},
            "NetworkSettings": networking.settings(self.store, c.network, c.id),
            "Bundle": str(self.path(c.id)),
            "Pyctr": asdict(c),
        }

    def runtime(self, c: Container) -> Runtime:
        return Runtime.under(c.runtime, self.store.root)

    # --- creation -------------------------------------------------------------------------

    def create(self, img: Image, opts: bundle.RunOptions, runtime: str, name: str | None = None,
               auto_remove: bool = False) -> Container:
        from pyctr.driver import bundle
        from pyctr.image import layers, rootfs

        cid = uuid.uuid4().hex + uuid.uuid4().hex
        if opts.network.startswith("container:"):
            opts = self._join_container(opts)
        manifest = self.store.manifest(img)
        config = self.store.config(manifest)
        with flocked(self.dir / ".names.lock"):
            name = self._check_name(name or _random_name(cid))
            cdir = self.path(cid)
            cdir.mkdir(mode=0o700)
            private_dir(cdir)
            c = Container(cid, name, img.name or img.digest, img.digest, [], runtime,
                          auto_remove=auto_remove, tty=opts.tty,
                          log_max_size=opts.log_max_size, log_max_files=opts.log_max_files,
                          network=opts.network)
            self.save(c)
        try:
            with self.store.gc_lock():
                lower = rootfs.image_layers(self.store, manifest, config)
                c.chain_ids = layers.chain_ids(config["rootfs"]["diff_ids"])
                c.rootfs_mode = rootfs.prepare(lower, cdir)
            opts = self._named_volumes(c, opts, cdir / "rootfs")
            spec = bundle.make_spec(config, opts, cid, cdir, cdir / "rootfs",
                                    lo_up_hook=needs_lo_hook(runtime)
                                    and not is_bridge(opts.network))
            c.command = spec["process"]["args"]
            if is_bridge(c.network):
                from pyctr.driver.firewall import parse_publish
                from pyctr.ops import networking

                ports = [parse_publish(p) for p in opts.publish]
                if opts.publish_all:
                    ports += exposed_ports(config, ports)
                networking.join(self.store, c.network, cid, c.name, spec["hostname"], ports)
            atomic_write(cdir / "config.json", json.dumps(spec, indent=2).encode())
            self.save(c)
        except BaseException:
            self.remove_files(c)
            raise
        return c

    def _join_container(self, opts: bundle.RunOptions) -> bundle.RunOptions:
        """--network container:NAME: the running container's network namespace and /etc
        files (its hostname too), as docker shares them."""
        other = self.find(opts.network.removeprefix("container:"))
        if not self.is_alive(other) or not other.pid:
            raise ContainerError(f"cannot join the network of container {other.name}: "
                                 "it is not running")
        if opts.hostname or opts.publish or opts.publish_all:
            raise ContainerError("conflicting options: --hostname and --publish cannot be used "
                                 "with --network container:")
        return dataclasses.replace(opts, network=f"container:{other.id}",
                                   join_netns=f"/proc/{other.pid}/ns/net",
                                   shared_etc=str(self.path(other.id) / "etc"))

    def _named_volumes(self, c: Container, opts: bundle.RunOptions,
                       rootfs_dir: Path) -> bundle.RunOptions:
        """`-v NAME:/path[:ro]` -> the volume's directory, made (and filled) on first use."""
        from pyctr.driver import bundle
        from pyctr.driver.paths import secure_join
        from pyctr.image.volumes import Volumes, is_name

        vols = Volumes(self.store)
        specs = []
        for spec in opts.volumes:
            source, sep, rest = spec.partition(":")
            if sep and not source.startswith((".", "/")) and is_name(source):
                data, _ = vols.create(source)
                c.volumes.append(source)
                self.save(c)
                dest = rest.split(":")[0]
                if not any(data.iterdir()):
                    bundle.populate_volume(secure_join(rootfs_dir, dest), data)
                spec = f"{data}:{rest}"
            specs.append(spec)
        return dataclasses.replace(opts, volumes=specs)

    def _check_name(self, name: str) -> str:
        if not _NAME.match(name):
            raise ContainerError(f"invalid container name {name!r}")
        if any(c.name == name for c in self.all()):
            raise ContainerError(f"the container name {name!r} is already in use")
        return name

    # --- life cycle -----------------------------------------------------------------------

    def connect(self, c: Container, pid: int) -> None:
        """Between `runtime create` and `start`: the container's veth and published ports."""
        if is_bridge(c.network):
            from pyctr.ops import networking

            networking.connect(self.store, c.network, c.id, pid)

    def mark_running(self, c: Container, pid: int) -> None:
        c.pid, c.status, c.started = pid, "running", now()
        self.save(c)

    def finish(self, c: Container, code: int) -> None:
        """After the container's init has been reaped: record, delete in the runtime, unmount."""
        c.exit_code, c.status, c.finished = code, "exited", now()
        if self.path(c.id).exists():
            self.save(c)
        self.runtime(c).delete(c.id, force=True)
        if is_bridge(c.network):
            from pyctr.ops import networking

            networking.disconnect(self.store, c.network, c.id)
        _release(self.path(c.id))

    def is_alive(self, c: Container) -> bool:
        """Whether someone still waits for the container (holds monitor.lock)."""
        try:
            fd = os.open(self.path(c.id) / "monitor.lock", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def wait(self, c: Container, timeout: float | None = None) -> Container | None:
        """Block until the container has exited; None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_alive(c):
            if deadline is not None and time.monotonic() >= deadline:
                return None
            if deadline is None:
                with flocked(self.path(c.id) / "monitor.lock", fcntl.LOCK_SH):
                    break
            time.sleep(0.05)
        try:
            return self.load(c.id)
        except NotFound:
            return c

    def kill(self, c: Container, signal: str) -> None:
        if not self.is_alive(c):
            raise ContainerError(f"container {c.name} is not running")
        if not self.runtime(c).kill(c.id, signal):
            raise ContainerError(f"cannot kill container {c.name}")

    def stop(self, c: Container, timeout: float) -> None:
        if not self.is_alive(c):
            return
        self.runtime(c).kill(c.id, "TERM")
        if self.wait(c, timeout) is None:
            self.runtime(c).kill(c.id, "KILL", all_processes=True)
            self.wait(c)

    def remove(self, c: Container, force: bool = False) -> None:
        if self.is_alive(c):
            if not force:
                raise ContainerError(
                    f"cannot remove running container {c.name}: stop it first or use -f")
            self.runtime(c).kill(c.id, "KILL", all_processes=True)
            self.wait(c, 30)
        self.runtime(c).delete(c.id, force=True)
        self.remove_files(c)

    def remove_files(self, c: Container) -> None:
        cdir = self.path(c.id)
        if is_bridge(c.network):
            from pyctr.ops import networking

            networking.leave(self.store, c.network, c.id)
        _release(cdir)
        shutil.rmtree(cdir, ignore_errors=True)


def exposed_ports(config: dict[str, Any], published: list[PortMapping]) -> list[PortMapping]:
    """`-P`: the image's ExposedPorts ("80/tcp": {}) not published already, each on a free
    host port (0 until the network chooses one)."""
    from pyctr.driver.firewall import parse_publish

    have = {(p.container_port, p.proto) for p in published}
    out = []
    for key in sorted((config.get("config") or {}).get("ExposedPorts") or {}):
        port = parse_publish(key if "/" in key else f"{key}/tcp")
        if (port.container_port, port.proto) not in have:
            out.append(port)
    return out


def is_bridge(network: str) -> bool:
    """Whether `network` is a bridge (`bridge` or a user-defined one), not host, none or
    another container's (`container:<id>`)."""
    return network not in ("host", "none") and not network.startswith("container:")


def _release(cdir: Path) -> None:
    from pyctr.image import rootfs

    with contextlib.suppress(OSError):
        rootfs.release(cdir)


def needs_lo_hook(runtime: str) -> bool:
    # runc and crun bring lo up themselves in a new network namespace; others get a hook.
    return Path(runtime).name not in ("runc", "crun")


_ADJ = ("brave", "calm", "eager", "fond", "keen", "lucid", "merry", "quiet", "sharp", "tidy")
_NOUN = ("otter", "heron", "lynx", "panda", "raven", "tapir", "yak", "zebra", "koala", "ibis")


def _random_name(cid: str) -> str:
    n = int(cid[:8], 16)
    return f"{_ADJ[n % 10]}_{_NOUN[(n // 10) % 10]}_{cid[:6]}"
