"""`create`: from a bundle to an init blocked before execve, or to nothing at all.

Everything that can be checked is checked before anything is made (spec, capabilities, seccomp,
LSM, process attributes). After that, each thing made is undone if a later step fails: the init
(killed, which also tears down its namespaces and mounts), the cgroups, the state directory.
"""

from __future__ import annotations

from pyrunc import log, spec
from pyrunc._typing import MYPY
from pyrunc.container import Container, proc_stat, process, state
from pyrunc.errors import ConsoleError
from pyrunc.linux import namespaces, rootfs
from pyrunc.records import dataclass, field
from pyrunc.sys import oslite as os

if MYPY:
    from pyrunc.container.state import State
    from pyrunc.linux.caps import CapPlan
    from pyrunc.linux.cgroups import Manager
    from pyrunc.linux.rootfs import HostMounts
    from pyrunc.spec.types import Config, Hooks, OCIState
    from pyrunc.sys import sockets


@dataclass
class CreateOptions:
    bundle: str = "."
    pid_file: str | None = None
    console_socket: str | None = None
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    systemd_cgroup: bool = False
    rootless: bool = False
    own_console: bool = False  # `run` in the foreground keeps the pty master itself...
    console_ours: sockets.Socket | None = None  # ...and receives it on this socket (by create)
    extra_env: list[str] = field(default_factory=list)
    # fsync the final state.json: it outlives the command. `run` in the foreground without --keep
    # deletes the container before it returns, so its state is atomic (temp + rename) but not
    # fsynced: an fsync waits 0.4-13 ms here, longer than the whole container setup.
    durable_state: bool = True


def check_security(config: Config) -> CapPlan:
    """The checks of the security mechanisms that need no privileges; returns the caps plan."""
    from pyrunc.linux import caps

    proc = config["process"]
    linux_cfg = config.get("linux", {})
    if linux_cfg.get("seccomp") is not None:
        from pyrunc.linux import seccomp

        seccomp.validate(linux_cfg["seccomp"])
    if spec.uses(proc, linux_cfg, spec.LSM_FIELDS):
        from pyrunc.linux import lsm

        lsm.check(proc, linux_cfg)
    if spec.uses(proc, linux_cfg, spec.PROCATTR_FIELDS):
        from pyrunc.linux import procattrs

        procattrs.check(proc, linux_cfg)
    return caps.plan(proc.get("capabilities"))


def _listen_fds() -> int:
    """systemd socket activation: LISTEN_FDS meant for us are passed on as fds 3.. of the init."""
    if os.getenv("LISTEN_PID") == str(os.getpid()):
        try:
            return max(0, int(os.getenv("LISTEN_FDS") or "0"))
        except ValueError:
            return 0
    return 0


def create(root: str, cid: str, opts: CreateOptions) -> Container:
    state.check_id(cid)
    bundle = os.path.abspath(opts.bundle)
    config = spec.load(bundle)
    cap_plan = check_security(config)
    if config["process"].get("terminal") and not opts.own_console and not opts.console_socket:
        raise ConsoleError("cannot allocate tty if runc will detach without setting console socket")
    ops = rootfs.plan(config, bundle)
    state.make_dir(root, cid)
    with state.locked(root, cid) as lock_fd:
        return _create_locked(root, cid, bundle, config, ops, cap_plan, opts, lock_fd)


def _create_locked(root: str, cid: str, bundle: str, config: Config,
                   ops: list[rootfs.MountOp], cap_plan: CapPlan, opts: CreateOptions,
                   lock_fd: int | None) -> Container:
    from pyrunc.linux import cgroups

    made = Made(root, cid)
    try:
        if os.getenv("NOTIFY_SOCKET"):  # sd_notify: its module only when it is in use
            from pyrunc.container import notify

            opts.extra_env = [*opts.extra_env, notify.prepare(state.container_dir(root, cid), ops)]
        mgr = cgroups.new_manager(cid, config.get("linux", {}), systemd=opts.systemd_cgroup,
                                  rootless=opts.rootless)
        c = Container(root, cid, _initial_data(cid, bundle, config, mgr))
        if opts.no_new_keyring:  # exec's processes keep their caller's keyring too (ops.exec)
            c.data["noNewKeyring"] = True
        # state.json exists (status "creating", pid 0) before anything is made, so that a create
        # killed half-way can still be found and removed by `delete --force`. Not fsynced: the
        # final state below is, and replaces it (see state.write).
        c.save(sync=False)
        made.cgroup = mgr
        mgr.create()
        c.data["cgroup"] = mgr.to_state()  # with what create() found out (real-time grants)
        cfg = _init_config(c, config, ops, cap_plan, opts, made)
        cfg.close_in_child = [lock_fd] if lock_fd is not None else []
        cfg.cgroups = mgr
        ready_state: list[str] = []

        def on_forked(pid: int) -> None:
            _on_forked(config, pid)
            # The final state.json is written and fsynced while the init sets itself up; it is
            # renamed into place only once the init is ready.
            st = proc_stat(pid)
            c.data.update({"pid": pid, "pid_start": st[1] if st else None})
            ready_state.append(state.prepare(root, cid, c.data, opts.durable_state))

        if "mount" in cfg.ns.shared:
            made.shared_mnt = (cfg.rootfs, rootfs.mounts_under(cfg.rootfs))
        pid = process.spawn(cfg, on_forked)
        made.pid = pid
        host_mounts = made.host_mounts()
        if c.data["pid"] == pid and not host_mounts:
            state.commit(ready_state[0])
        else:  # the first child forked the init (user namespace), or mounts to record
            os.unlink(ready_state[0])
            st = proc_stat(pid)
            c.data.update({"pid": pid, "pid_start": st[1] if st else None})
            if host_mounts:
                c.data["hostMounts"] = host_mounts
            c.save(opts.durable_state)
        if opts.pid_file:
            write_pid_file(opts.pid_file, pid)
        return c
    except BaseException:
        made.undo()
        raise
    finally:
        made.close_fds()


class Made:
    """What create has made so far, to undo on failure."""

    def __init__(self, root: str, cid: str) -> None:
        self.root, self.cid = root, cid
        self.cgroup: Manager | None = None
        self.pid = 0
        self.fds: list[int] = []
        # No mount namespace of its own: the rootfs, and the mounts under it before the init.
        self.shared_mnt: tuple[str, list[tuple[int, str]]] | None = None

    def host_mounts(self) -> HostMounts | None:
        return rootfs.host_mounts(*self.shared_mnt) if self.shared_mnt else None

    def close_fds(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def undo(self) -> None:
        if self.pid:
            process.kill_and_reap(self.pid)
        record = self.host_mounts()
        if record:
            rootfs.unmount_recorded(record)
        if self.cgroup is not None:
            try:
                self.cgroup.kill_all()
                self.cgroup.destroy()
            except Exception as exc:  # noqa: BLE001 — the first error is the one reported
                log.warning(f"cleaning up cgroups of {self.cid}: {exc}")
        state.remove_dir(os.path.join(self.root, self.cid))


def _initial_data(cid: str, bundle: str, config: Config, mgr: Manager) -> State:
    return {
        "id": cid, "bundle": bundle, "rootfs": spec.rootfs_path(config, bundle),
        "created": log.rfc3339(), "owner": "", "annotations": config.get("annotations") or {},
        "config": config, "cgroup": mgr.to_state(), "pid": 0,
    }


def _init_config(c: Container, config: Config, ops: list[rootfs.MountOp], cap_plan: CapPlan,
                 opts: CreateOptions, made: Made) -> process.InitConfig:
    fifo = c.fifo
    os.mkfifo(fifo, 0o622)
    # O_RDWR never blocks and keeps a writer open, so the init's read() waits for `start`.
    fifo_fd = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)
    made.fds.append(fifo_fd)
    console_fd = -1
    if config["process"].get("terminal"):
        from pyrunc.linux import console

        if opts.console_socket:
            console_fd = console.connect(opts.console_socket)
        else:
            opts.console_ours, console_fd = console.pair()
        made.fds.append(console_fd)
    ns = namespaces.plan(config)
    if ns.userns or any(rootfs.is_idmapped(op) for op in ops):
        # Started as root: the parent clones the sources (rootless, the init binds them itself)
        made.fds += rootfs.clone_bind_sources(ops, ns.userns and os.geteuid() == 0,
                                              ns.uid_map, ns.gid_map)
    hooks = config.get("hooks", {})
    return process.InitConfig(
        cid=c.id, bundle=c.bundle, rootfs=c.data["rootfs"], config=config, ns=ns, mounts=ops,
        fifo_fd=fifo_fd, console_fd=console_fd, no_pivot=opts.no_pivot,
        no_new_keyring=opts.no_new_keyring,
        preserve_fds=opts.preserve_fds + _listen_fds(), extra_env=_extra_env(opts),
        cap_plan=cap_plan,
        run_hooks=(lambda name, pid: _parent_hooks(c, hooks, name, pid)),
        state_for_hooks=(lambda status, pid: {**c.oci_state(status), "pid": pid}),
    )


def _extra_env(opts: CreateOptions) -> list[str]:
    n = _listen_fds()
    env = list(opts.extra_env)
    if n:
        env += [f"LISTEN_FDS={n}", "LISTEN_PID=1"]
    return env


def _parent_hooks(c: Container, hooks: Hooks, name: str, pid: int) -> None:
    from pyrunc.container import hooks as hookmod

    if name == "seccomp":
        _seccomp_listener(c, pid)
        return
    # "created": hooks are steps 3-5 of runtime.md's lifecycle, after step 2 ("creating")
    st: OCIState = {**c.oci_state("created"), "pid": pid}
    hookmod.run_all(hooks.get("prestart", []), "prestart", st)
    hookmod.run_all(hooks.get("createRuntime", []), "createRuntime", st)


def _seccomp_listener(c: Container, notify_fd: int) -> None:
    from pyrunc.linux import seccomp

    sc = c.config.get("linux", {}).get("seccomp", {})
    seccomp.send_to_listener(sc["listenerPath"], sc.get("listenerMetadata", ""),
                             c.oci_state("creating"), notify_fd)


def _on_forked(config: Config, pid: int) -> None:
    oom = config["process"].get("oomScoreAdj")
    if oom is not None:
        try:
            with open(f"/proc/{pid}/oom_score_adj", "w") as f:
                f.write(str(oom))
        except OSError as exc:
            from pyrunc.errors import SpecError

            raise SpecError(f"process.oomScoreAdj: writing {oom}: {exc.strerror}") from exc


def write_pid_file(path: str, pid: int) -> None:
    """Decimal, no trailing newline (containerd parses it strictly), written atomically."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)
