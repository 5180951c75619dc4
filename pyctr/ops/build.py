"""`pyctr build`: a Dockerfile and its context -> an OCI image in the store.

Each stage starts from its FROM (an image in the store, pulled if missing; an earlier stage;
or `scratch`) and carries a `State`: the image config being built and its layer descriptors.
Each instruction is one step that turns a state into the next:

- ENV, LABEL, CMD, ENTRYPOINT, USER, EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL and
  MAINTAINER change the config only (a history entry with `empty_layer`);
- WORKDIR changes the config and makes its directory (root's, 0755, parents too) in a layer of
  its own, as docker 20.10's builder commits a container for it; a directory already there
  makes no layer (`empty_layer`, as docker's commit of an unchanged container);
- RUN runs a real container through the configured runtime (`runtime run`) on an overlay
  snapshot of the layers so far (pyctr.image.snapshot), with the config's env, user and working
  directory plus the ARGs in scope; COPY and ADD write into such a snapshot directly. The upper
  dir is the step's layer (gzip, OCI media types), unless the step changed nothing.

The cache is keyed as docker's: sha256(parent key, the instruction as expanded, and for COPY
and ADD the digest of what they copy; for RUN the ARG values in its environment). An entry,
`<root>/buildcache/<key>.json`, holds the state after the step; a hit whose layer blobs are all
still in the store replaces the step. So a build with nothing changed runs no container, makes
no layer and no new config, and names the very image it named before (same image id).

Errors name the Dockerfile and line; nothing is tagged unless every step succeeded; every
snapshot is unmounted and removed and every RUN container deleted on the way out, and the
whole build runs in a private mount namespace besides.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import posixpath
import subprocess  # noqa: TID251 - RUN drives the runtime's command line
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyctr.driver import bundle, users
from pyctr.driver.runtime import Runtime
from pyctr.errors import BuildError, PyctrError
from pyctr.image import buildcontext, layers, platforms, snapshot
from pyctr.image import dockerfile as dfmod
from pyctr.image.buildcontext import Entry, Ignore, Owner
from pyctr.image.content import OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST, descriptor
from pyctr.image.dockerfile import Instruction, Stage
from pyctr.image.store import Image, Store, atomic_write, now, private_dir
from pyctr.ops.containers import needs_lo_hook
from pyctr.ops.imageops import diff_layer

DEFAULT_SHELL = ["/bin/sh", "-c"]
_DOCKER_TO_OCI = {"application/vnd.docker.image.rootfs.diff.tar.gzip": OCI_LAYER_GZIP,
                  "application/vnd.docker.image.rootfs.diff.tar": OCI_LAYER}
UNTAGGED = "localhost/pyctr-build"


@dataclass
class BuildOptions:
    context: Path
    dockerfile: Path | None = None
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    network: str = "none"
    target: str | None = None
    quiet: bool = False


@dataclass
class State:
    """The image a stage has built so far."""

    config: dict[str, Any]
    layers: list[dict[str, Any]]
    key: str

    @property
    def settings(self) -> dict[str, Any]:
        return self.config.setdefault("config", {})  # type: ignore[no-any-return]

    def env(self) -> dict[str, str]:
        return dict(e.partition("=")[::2] for e in self.settings.get("Env") or [])

    def cached(self) -> dict[str, Any]:
        return {"config": self.config, "layers": self.layers}


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class Builder:
    def __init__(self, store: Store, opts: BuildOptions, runtime: str,
                 resolve_image: Callable[[str], Image]) -> None:
        self.store = store
        self.opts = opts
        self.runtime = runtime
        self.resolve_image = resolve_image
        self.cache_dir = store.root / "buildcache"
        self.work = store.root / "build"
        self.stages: dict[str, State] = {}
        self.by_index: list[State] = []
        self.consumed: set[str] = set()
        self.step = 0
        self.total = 0
        self.ignore: Ignore | None = None

    # --- output ---------------------------------------------------------------------------

    def say(self, text: str) -> None:
        if not self.opts.quiet:
            print(text, flush=True)

    # --- the whole build ------------------------------------------------------------------

    def build(self) -> Image:
        path = self.opts.dockerfile or self.opts.context / "Dockerfile"
        try:
            text = path.read_text()
        except OSError as exc:
            raise BuildError(f"cannot read the Dockerfile {path}: {exc.strerror}") from exc
        if not self.opts.context.is_dir():
            raise BuildError(f"the build context {self.opts.context} is not a directory")
        df = dfmod.parse(text, path.name)
        stages = self._stages_to_build(df.stages)
        self.total = sum(1 + len(s.instructions) for s in stages)
        self.ignore = Ignore.of(self.opts.context)
        global_args = self._global_args(df.global_args)
        private_dir(self.cache_dir)
        private_dir(self.work)
        snapshot.private_mounts()
        with self.store.gc_lock():
            for stage in stages:
                state = self._stage(stage, global_args)
                self.by_index.append(state)
                if stage.name:
                    self.stages[stage.name] = state
            img = self._write_image(self.by_index[-1])
        unused = sorted(set(self.opts.build_args) - self.consumed)
        if unused:
            print(f"[Warning] One or more build-args {unused} were not consumed", file=sys.stderr)
        return img

    def _stages_to_build(self, stages: list[Stage]) -> list[Stage]:
        if self.opts.target is None:
            return stages
        for n, stage in enumerate(stages):
            if stage.name == self.opts.target.lower():
                return stages[: n + 1]
        raise BuildError(f"target stage {self.opts.target!r} could not be found")

    def _global_args(self, instructions: list[Instruction]) -> dict[str, str]:
        values: dict[str, str] = {}
        for ins in instructions:
            self._declare_arg(ins, values, {})
        return values

    def _declare_arg(self, ins: Instruction, scope: dict[str, str],
                     env: dict[str, str], inherited: dict[str, str] | None = None) -> None:
        for item in dfmod.expand_or_fail(ins, lambda: dfmod.raw_words(ins.value)):
            name, sep, default = item.partition("=")
            if not dfmod.ARG_NAME.match(name):
                raise ins.error(f"invalid ARG name {name!r}")
            self.consumed.add(name)
            if name in self.opts.build_args:
                scope[name] = self.opts.build_args[name]
            elif sep:
                values = {**scope, **env}
                scope[name] = dfmod.expand_or_fail(
                    ins, lambda d=default, v=values: dfmod.word(d, v))  # type: ignore[misc]
            elif inherited and name in inherited:
                scope[name] = inherited[name]

    # --- stages ---------------------------------------------------------------------------

    def _stage(self, stage: Stage, global_args: dict[str, str]) -> State:
        base = dfmod.expand_or_fail(stage.origin, lambda: dfmod.word(stage.base, global_args))
        self._announce(stage.origin)
        state = self._from(stage.origin, base)
        self.say(f" ---> {state.key[:12]}")
        args: dict[str, str] = {}
        cmd_set = False
        for ins in stage.instructions:
            self._announce(ins)
            if ins.keyword == "ARG":
                self._declare_arg(ins, args, state.env(), global_args)
                continue
            if ins.keyword == "CMD":
                cmd_set = True
            state = self._instruction(ins, state, args, cmd_set)
        return state

    def _announce(self, ins: Instruction) -> None:
        self.step += 1
        self.say(f"Step {self.step}/{self.total} : {ins.text}")

    def _from(self, ins: Instruction, base: str) -> State:
        if ins.flags.get("platform"):
            want = platforms.parse_platform(ins.flags["platform"])
            if want.architecture != platforms.host_platform().architecture:
                raise ins.error(f"platform {want} differs from this host's")
        if base.lower() == "scratch":
            host = platforms.host_platform()
            config = {"architecture": host.architecture, "os": host.os, "config": {},
                      "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            return State(config, [], _key("FROM scratch"))
        if base.lower() in self.stages:
            earlier = self.stages[base.lower()]
            return State(copy.deepcopy(earlier.config), list(earlier.layers), earlier.key)
        try:
            img = self.resolve_image(base)
            manifest = self.store.manifest(img)
            config = copy.deepcopy(self.store.config(manifest))
        except PyctrError as exc:
            raise ins.error(f"{base}: {exc}") from exc
        config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        config.setdefault("history", [])
        blobs = [{**d, "mediaType": _DOCKER_TO_OCI.get(d["mediaType"], d["mediaType"])}
                 for d in manifest.get("layers", [])]
        return State(config, blobs, _key("FROM", manifest["config"]["digest"]))

    # --- one instruction ------------------------------------------------------------------

    def _instruction(self, ins: Instruction, state: State, args: dict[str, str],
                     cmd_set: bool) -> State:
        """One step; whatever fails in it is reported as the Dockerfile line's error."""
        try:
            return self._dispatch(ins, state, args, cmd_set)
        except BuildError:
            raise
        except PyctrError as exc:
            raise ins.error(str(exc)) from exc
        except (OSError, ValueError) as exc:
            what = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.filename \
                else str(exc)
            raise ins.error(what) from exc

    def _dispatch(self, ins: Instruction, state: State, args: dict[str, str],
                  cmd_set: bool) -> State:
        env = {**args, **state.env()}
        if ins.keyword == "RUN":
            return self._run(ins, state, args)
        if ins.keyword in ("COPY", "ADD"):
            return self._copy(ins, state, env)
        change = _metadata_change(ins, state, env, cmd_set)
        # (an ENTRYPOINT keeps or drops the base's Cmd depending on what came before it)
        key = _key(state.key, ins.keyword, change.description, str(cmd_set))
        if ins.keyword == "WORKDIR":
            return self._cached(ins, state, key, lambda: self._workdir(state, ins, change))
        return self._cached(ins, state, key, lambda: _apply_metadata(state, ins, change))

    def _workdir(self, state: State, ins: Instruction, change: _Change) -> State:
        from pyctr.driver.paths import secure_join

        new = _apply_metadata(state, ins, change)
        entry = new.config["history"].pop()
        path = new.settings["WorkingDir"]
        with snapshot.mounted(self.work, self.store.layers, self._lowers(state)) as snap:
            made = snap.rootfs
            for part in (p for p in path.split("/") if p):
                made = secure_join(snap.rootfs, str(made.relative_to(snap.rootfs) / part))
                if not made.is_dir():
                    made.mkdir(mode=0o755)  # FileExistsError for a file: the line's error
                    os.chmod(made, 0o755)  # (whatever the umask)
            return self._commit(new, snap.upper, entry["created_by"])

    def _cached(self, ins: Instruction, state: State, key: str,
                make: Callable[[], State]) -> State:
        entry = self.cache_dir / f"{key}.json"
        if not self.opts.no_cache:
            hit = self._cache_hit(entry)
            if hit is not None:
                self.say(" ---> Using cache")
                self.say(f" ---> {key[:12]}")
                return State(hit["config"], hit["layers"], key)
        new = make()
        new.key = key
        atomic_write(entry, json.dumps(new.cached()).encode(), 0o600)
        self.say(f" ---> {key[:12]}")
        return new

    def _cache_hit(self, entry: Path) -> dict[str, Any] | None:
        try:
            doc = json.loads(entry.read_bytes())
        except (OSError, ValueError):
            return None
        if not all(self.store.has_blob(layer["digest"]) for layer in doc.get("layers", [])):
            return None  # pruned since: build the step again
        return doc  # type: ignore[no-any-return]

    # --- layers and snapshots ---------------------------------------------------------------

    def _lowers(self, state: State) -> list[Path]:
        diff_ids = list(state.config["rootfs"]["diff_ids"])
        chains = layers.chain_ids(diff_ids)
        return [layers.unpack(self.store, blob, diff, chain)
                for blob, diff, chain in zip(state.layers, diff_ids, chains, strict=True)]

    def _commit(self, state: State, upper: Path, created_by: str) -> State:
        config = copy.deepcopy(state.config)
        created = now()
        config["created"] = created
        entry: dict[str, Any] = {"created": created, "created_by": created_by}
        new_layers = list(state.layers)
        if snapshot.is_empty(upper):
            entry["empty_layer"] = True
        else:
            desc, diff_id = diff_layer(self.store, upper)
            new_layers.append(desc)
            config["rootfs"]["diff_ids"].append(diff_id)
        config.setdefault("history", []).append(entry)
        return State(config, new_layers, state.key)

    # --- RUN ------------------------------------------------------------------------------

    def _run(self, ins: Instruction, state: State, args: dict[str, str]) -> State:
        argv = ins.exec_form()
        if argv is None:
            argv = [*(state.settings.get("Shell") or DEFAULT_SHELL), ins.value]
        if not argv or not ins.value:
            raise ins.error("needs a command")
        config_env = state.env()
        arg_env = sorted(f"{k}={v}" for k, v in args.items() if k not in config_env)
        key = _key(state.key, "RUN", json.dumps(argv), *arg_env, self.opts.network)

        def make() -> State:
            lowers = self._lowers(state)
            with snapshot.mounted(self.work, self.store.layers, lowers, init=True) as snap:
                self._container(ins, state, argv, arg_env, snap)
                return self._commit(state, snap.upper, " ".join(argv))
        return self._cached(ins, state, key, make)

    def _container(self, ins: Instruction, state: State, argv: list[str], env: list[str],
                   snap: snapshot.Snapshot) -> None:
        cid = "pyctr-build-" + uuid.uuid4().hex[:20]
        bdir = snap.top / "bundle"
        bdir.mkdir()
        opts = bundle.RunOptions(args=argv, entrypoint="", env=env, network=self.opts.network)
        try:
            spec = bundle.make_spec(state.config, opts, cid, bdir, snap.rootfs,
                                    lo_up_hook=needs_lo_hook(self.runtime))
        except PyctrError as exc:
            raise ins.error(str(exc)) from exc
        (bdir / "config.json").write_text(json.dumps(spec))
        rt = Runtime.under(self.runtime, self.store.root)
        out = subprocess.DEVNULL if self.opts.quiet else None
        sys.stdout.flush()
        try:
            code = subprocess.call(rt.argv("run", "--bundle", str(bdir), cid),
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        finally:
            rt.delete(cid, force=True)
        if code != 0:
            raise ins.error(f"the command {json.dumps(argv)} returned a non-zero code: {code}")

    # --- COPY and ADD ---------------------------------------------------------------------

    def _copy(self, ins: Instruction, state: State, env: dict[str, str]) -> State:
        flags = {k: dfmod.expand_or_fail(ins, lambda v=v: dfmod.word(v, env))  # type: ignore[misc]
                 for k, v in ins.flags.items()}
        items = ins.exec_form() or dfmod.expand_or_fail(ins, lambda: dfmod.words(ins.value, env))
        if len(items) < 2:
            raise ins.error("needs at least one source and a destination")
        *sources, dest = items
        chmod = _chmod(ins, flags.get("chmod"))
        source = self._source(ins, flags.get("from"))
        if source is None:
            return self._copy_from(ins, state, self.opts.context, self.ignore, "context",
                                   sources, dest, flags, chmod)
        # From a stage or an image, files keep their owners (from the context: 0:0); the
        # source's own key is part of this step's, owners being no part of the content digest.
        src_state, label = source
        lowers = self._lowers(src_state)
        with snapshot.mounted(self.work, self.store.layers, lowers) as src:
            return self._copy_from(ins, state, src.rootfs, None, label, sources, dest,
                                   {"keep-owner": src_state.key, **flags}, chmod)

    def _source(self, ins: Instruction, ref: str | None) -> tuple[State, str] | None:
        if ref is None:
            return None
        if ref.lower() in self.stages:
            state = self.stages[ref.lower()]
            return state, f"stage {ref}"
        if ref.isdigit():
            if int(ref) >= len(self.by_index):
                raise ins.error(f"--from={ref}: no such stage before this one")
            state = self.by_index[int(ref)]
            return state, f"stage {ref}"
        return self._from(ins, ref), f"image {ref}"

    def _copy_from(self, ins: Instruction, state: State, root: Path, ignore: Ignore | None,
                   label: str, sources: list[str], dest: str, flags: dict[str, str],
                   chmod: int | None) -> State:
        found: list[tuple[str, Path, list[Entry]]] = []
        for pattern in sources:
            if ins.keyword == "ADD" and "://" in pattern:
                raise ins.error(f"{pattern}: remote URLs are not supported by pyctr build; "
                                "download the file into the context and ADD it from there")
            matches = buildcontext.resolve_sources(root, pattern, ignore)
            if not matches:
                raise ins.error(f"{pattern}: no such file in the {label}"
                                + (" (or excluded by .dockerignore)" if ignore else ""))
            for name, path in matches:
                found.append((name, path, list(buildcontext.walk(root, path, "", ignore))))
        # docker: a destination ending in / (or naming . or ..) is a directory
        to_dir = (dest.endswith("/") or posixpath.basename(dest) in (".", "..") or len(found) > 1
                  or any(p.is_dir() for _, p, _ in found))
        content = buildcontext.digest([Entry(e.path, f"{i}:{n}/{e.arcname}")
                                       for i, (n, _, entries) in enumerate(found) for e in entries])
        key = _key(state.key, ins.keyword, json.dumps(sorted(flags.items())), json.dumps(sources),
                   dest, content)

        def make() -> State:
            workdir = state.settings.get("WorkingDir") or "/"
            target = posixpath.normpath(posixpath.join(workdir, dest))
            with snapshot.mounted(self.work, self.store.layers, self._lowers(state)) as snap:
                owner = _owner(ins, snap.rootfs, flags.get("chown"))
                self._write_files(ins, snap.rootfs, found, target, to_dir, owner, chmod,
                                  keep_owner="keep-owner" in flags)
                what = ",".join(n for n, _, _ in found)
                return self._commit(state, snap.upper,
                                    f"#(nop) {ins.keyword} {what} {content[7:19]} in {target}")
        return self._cached(ins, state, key, make)

    def _write_files(self, ins: Instruction, rootfs: Path,
                     found: list[tuple[str, Path, list[Entry]]], target: str, to_dir: bool,
                     owner: Owner | None, chmod: int | None, keep_owner: bool) -> None:
        """Write what COPY/ADD found at `target` in the mounted snapshot, as docker places it:
        into `target` when it is (or is to be) a directory, else as `target` itself."""
        from pyctr.driver.paths import secure_join

        dest = secure_join(rootfs, target)
        archives = [ins.keyword == "ADD" and buildcontext.is_archive(p) for _, p, _ in found]
        into_dir = to_dir or dest.is_dir() or any(archives)
        parent = dest if into_dir else secure_join(rootfs, posixpath.dirname(target))
        base = str(parent.relative_to(rootfs)).removeprefix(".")
        with tempfile.TemporaryFile(dir=self.work) as tmp:
            with tarfile.open(fileobj=tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
                if into_dir and base and not dest.exists():
                    info = tarfile.TarInfo(base)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
                    info.uid, info.gid = (owner.uid, owner.gid) if owner else (0, 0)
                    tar.addfile(info)
                for (name, path, entries), archive in zip(found, archives, strict=True):
                    if archive:
                        _add_archive(ins, tar, path, base, owner)
                        continue
                    for e in entries:
                        if path.is_dir():
                            arc = posixpath.join(base, e.arcname)
                        else:
                            arc = posixpath.join(base, name if into_dir else dest.name)
                        _add_member(tar, e.path, arc, owner, chmod, keep_owner)
            tmp.seek(0)
            try:
                layers.extract(tmp, rootfs)
            except PyctrError as exc:
                raise ins.error(str(exc)) from exc

    # --- the result ---------------------------------------------------------------------------

    def _write_image(self, state: State) -> Image:
        config_bytes = json.dumps(state.config).encode()
        self.store.put_bytes(config_bytes)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": descriptor(OCI_CONFIG, config_bytes),
                               "layers": state.layers}).encode()
        self.store.put_bytes(manifest)
        desc = descriptor(OCI_MANIFEST, manifest)
        names = self.opts.tags or [f"{UNTAGGED}@{desc['digest']}"]
        self.store.add_refs([(name, desc) for name in names])
        return self.store.lookup(names[0])


# --- metadata instructions ---------------------------------------------------------------------


@dataclass
class _Change:
    description: str  # what the cache key and the history say
    apply: Callable[[dict[str, Any], dict[str, Any]], None]  # (config["config"], config)


def _metadata_change(ins: Instruction, state: State, env: dict[str, str],
                     cmd_set: bool) -> _Change:
    handler = _HANDLERS.get(ins.keyword)
    if handler is None:
        raise ins.error("not supported by pyctr build")
    try:
        return handler(ins, state, env, cmd_set)
    except ValueError as exc:
        raise ins.error(str(exc)) from exc


def _apply_metadata(state: State, ins: Instruction, change: _Change) -> State:
    config = copy.deepcopy(state.config)
    change.apply(config.setdefault("config", {}), config)
    created = now()
    config["created"] = created
    config.setdefault("history", []).append(
        {"created": created, "created_by": f"/bin/sh -c #(nop)  {change.description}",
         "empty_layer": True})
    return State(config, list(state.layers), state.key)


def _command(ins: Instruction, state: State) -> list[str]:
    exec_form = ins.exec_form()
    if exec_form is not None:
        return exec_form
    return [*(state.settings.get("Shell") or DEFAULT_SHELL), ins.value]


def _env(ins: Instruction, state: State, env: dict[str, str], cmd_set: bool) -> _Change:
    pairs = dfmod.key_values(ins.value, env)

    def apply(c: dict[str, Any], _: dict[str, Any]) -> None:
        current = dict(e.partition("=")[::2] for e in c.get("Env") or [])
        current.update(pairs)
        c["Env"] = [f"{k}={v}" for k, v in current.items()]
    return _Change("ENV " + " ".join(f"{k}={v}" for k, v in pairs), apply)


def _label(ins: Instruction, state: State, env: dict[str, str], cmd_set: bool) -> _Change:
    pairs = dfmod.key_values(ins.value, env)

    def apply(c: dict[str, Any], _: dict[str, Any]) -> None:
        c["Labels"] = {**(c.get("Labels") or {}), **dict(pairs)}
    return _Change("LABEL " + " ".join(f"{k}={v}" for k, v in pairs), apply)


def _setter(field_name: str) -> Callable[..., _Change]:
    def handler(ins: Instruction, state: State, env: dict[str, str], cmd_set: bool) -> _Change:
        value = dfmod.word(ins.value, env)

        def apply(c: dict[str, Any], _: dict[str, Any]) -> None:
            c[field_name] = value
        return _Change(f"{ins.keyword} {value}", apply)
    return handler


def _workdir(ins: Instruction, state: State, env: dict[str, str], cmd_set: bool) -> _Change:
    path = posixpath.normpath(posixpath.join(state.settings.get("WorkingDir") or "/",
                                             dfmod.word(ins.value, env)))

    def apply(c: dict[str, Any], _: dict[str, Any]) -> None:
        c["WorkingDir"] = path
    return _Change(f"WORKDIR {path}", apply)


def _cmd(ins: Instruction, state: State, env: dict[str, str], cmd_set: bool) -> _Change:
    argv = _command(ins, state)

    def apply(c: dict[str, Any], _: dict[str, Any]) -> None:
        c["Cmd"] = argv
    return _Change(f"CMD {json.dumps(argv)}", apply)


def _entrypoint(ins: Instruction, state: State, env: dict[str, str], cmd_set: bool) -> _Change:
    argv = _command(ins, state)

    def apply(c: dict[str, Any], _: dict[str, Any]) -> None:
        c["Entrypoint"] = argv
        if not cmd_set:  # docker: an ENTRYPOINT drops the Cmd the base image had
            c.pop("Cmd", None)
    return _Change(f"ENTRYPOINT {json.dumps(argv)}", apply)


def _expose(ins: Instruction, state: State, env: dict[str, str], cmd_set: bool) -> _Change:
    ports = []
    for item in dfmod.words(ins.value, env):
        port, _, proto = item.partition("/")
        proto = (proto or "tcp").lower()
        first, _, last = port.partition("-")
        if proto not in ("tcp", "udp", "sctp") or not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(f"invalid port {item!r}")
        ports += [f"{p}/{proto}" for p in range(int(first), int(last or first) + 1)]

    def apply(c: dict[str, Any], _: dict[str, Any]) -> None:
        c["ExposedPorts"] = {**(c.get("ExposedPorts") or {}), **{p: {} for p in ports}}
    return _Change("EXPOSE " + " ".join(ports), apply)


def _volume(ins: Instruction, state: State, env: dict[str, str], cmd_set: bool) -> _Change:
    paths = ins.exec_form() or dfmod.words(ins.value, env)
    if not paths or not all(paths):
        raise ValueError("VOLUME needs a path")

    def apply(c: dict[str, Any], _: dict[str, Any]) -> None:
        c["Volumes"] = {**(c.get("Volumes") or {}), **{p: {} for p in paths}}
    return _Change("VOLUME " + json.dumps(paths), apply)


def _shell(ins: Instruction, state: State, env: dict[str, str], cmd_set: bool) -> _Change:
    argv = ins.exec_form()
    if not argv:
        raise ValueError("SHELL needs a JSON array, as SHELL [\"/bin/sh\", \"-c\"]")

    def apply(c: dict[str, Any], _: dict[str, Any]) -> None:
        c["Shell"] = argv
    return _Change(f"SHELL {json.dumps(argv)}", apply)


def _maintainer(ins: Instruction, state: State, env: dict[str, str], cmd_set: bool) -> _Change:
    def apply(_: dict[str, Any], config: dict[str, Any]) -> None:
        config["author"] = ins.value
    return _Change(f"MAINTAINER {ins.value}", apply)


_HEALTH_FLAGS = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                 "start-interval": "StartInterval"}


def _healthcheck(ins: Instruction, state: State, env: dict[str, str], cmd_set: bool) -> _Change:
    kind, _, rest = ins.value.partition(" ")
    check: dict[str, Any]
    if kind.upper() == "NONE":
        if rest.strip() or ins.flags:
            raise ValueError("HEALTHCHECK NONE takes no arguments")
        check = {"Test": ["NONE"]}
    elif kind.upper() == "CMD" and rest.strip():
        exec_form = dfmod.json_array(rest.strip())
        check = {"Test": ["CMD", *exec_form] if exec_form is not None
                 else ["CMD-SHELL", rest.strip()]}
        for flag, name in _HEALTH_FLAGS.items():
            if flag in ins.flags:
                check[name] = dfmod.duration_ns(ins.flags[flag])
        if "retries" in ins.flags:
            if not ins.flags["retries"].isdigit():
                raise ValueError(f"invalid --retries {ins.flags['retries']!r}")
            check["Retries"] = int(ins.flags["retries"])
    else:
        raise ValueError("want HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE")

    def apply(c: dict[str, Any], _: dict[str, Any]) -> None:
        c["Healthcheck"] = check
    return _Change(f"HEALTHCHECK {json.dumps(check, sort_keys=True)}", apply)


_HANDLERS: dict[str, Callable[[Instruction, State, dict[str, str], bool], _Change]] = {
    "ENV": _env, "LABEL": _label, "USER": _setter("User"), "STOPSIGNAL": _setter("StopSignal"),
    "WORKDIR": _workdir, "CMD": _cmd, "ENTRYPOINT": _entrypoint, "EXPOSE": _expose,
    "VOLUME": _volume, "SHELL": _shell, "MAINTAINER": _maintainer, "HEALTHCHECK": _healthcheck,
}


# --- files -----------------------------------------------------------------------------------


def _chmod(ins: Instruction, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise ins.error(f"invalid --chmod {text!r} (want octal, as 755)")
    return mode


def _owner(ins: Instruction, rootfs: Path, spec: str | None) -> Owner | None:
    """--chown user[:group], names looked up in the image; a user alone gives its uid as gid
    too, as docker does."""
    if not spec:
        return None
    try:
        user = users.resolve(rootfs, spec)
    except PyctrError as exc:
        raise ins.error(f"--chown={spec}: {exc}") from exc
    return Owner(user.uid, user.gid if ":" in spec else user.uid)


def _add_member(tar: tarfile.TarFile, path: Path, arcname: str, owner: Owner | None,
                chmod: int | None, keep_owner: bool) -> None:
    if owner is None and keep_owner:
        st = os.lstat(path)
        owner = Owner(st.st_uid, st.st_gid)
    info = buildcontext.tar_info(path, arcname, owner, chmod)
    if info.isreg():
        with open(path, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def _add_archive(ins: Instruction, out: tarfile.TarFile, path: Path, base_rel: str,
                 owner: Owner | None) -> None:
    """ADD of a local tar archive: its entries under the destination, as they are, but for
    `--chown`, which owns every entry (BuildKit >= 0.23, moby/buildkit#1547; docker 20.10's
    builders chowned only the destination directory and kept the archive's owners)."""
    try:
        with tarfile.open(path, "r:*") as src:
            for m in src:
                name = posixpath.normpath(m.name.lstrip("/"))
                parts = name.split("/")
                if ".." in parts or any(p.startswith(layers.WHITEOUT_PREFIX) for p in parts):
                    raise ins.error(f"{path.name}: refusing archive entry {m.name!r}")
                m.name = posixpath.join(base_rel, name) if name != "." else (base_rel or ".")
                if owner is not None:
                    m.uid, m.gid, m.uname, m.gname = owner.uid, owner.gid, "", ""
                if m.islnk():
                    m.linkname = posixpath.join(base_rel, posixpath.normpath(m.linkname.lstrip("/")))
                out.addfile(m, src.extractfile(m) if m.isreg() else None)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ins.error(f"{path.name}: cannot read the archive: {exc}") from exc


def build(store: Store, opts: BuildOptions, runtime: str,
          resolve_image: Callable[[str], Image]) -> Image:
    try:
        return Builder(store, opts, runtime, resolve_image).build()
    except OSError as exc:  # outside any step: the context, the store
        raise BuildError(f"build: {exc}") from exc


def parse_build_args(items: list[str]) -> dict[str, str]:
    """--build-arg K=V, or K alone for the value in pyctr's own environment (skipped if unset)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
        elif key in os.environ:
            out[key] = os.environ[key]
    return out
