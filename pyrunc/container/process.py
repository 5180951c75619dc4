"""Spawning the container init: the parent/child protocol, the init's step table, the start barrier.

    parent (pyrunc create)                         init (becomes process.args)
    ----------------------                         ---------------------------
    state.json "creating"; cgroups.create()
    mkfifo exec.fifo
    unshare(NEWPID|NEWTIME) / setns(pid path)
    clone3 CLONE_INTO_CGROUP --------------------> born in the new pid namespace and in its
    (os.fork if that fails)                          cgroup2 directory; writes 0 to `tasks` of
    setns back to its own pid/time ns                each v1 hierarchy (no RCU wait either way)
    [cgroup2 cgroup.procs if not born there]       join/unshare namespaces (a cgroup namespace
    oom_score_adj; state.json written, fsynced       waits for "joined" first; lo up in a new
                                                     network namespace); a new session
                                                     keyring "_ses.<id>"; mounts; /dev
    send "joined" ------------------------------->
                                 <---------------- "hooks"  (only when prestart/createRuntime exist)
    run prestart + createRuntime hooks
    send "go" ----------------------------------->
                                                   createContainer hooks; sysctl; pivot_root;
                                                   mkdir -p cwd; console; masked/read-only
                                                   paths; hostname; rlimits; procattrs; user;
                                                   caps; nnp; seccomp
                                 <---------------- "ready"  (after "joined" arrived)
    rename state.json; pid file; exit              exec pyrunc.container.barrier's program, which blocks on
                                                   exec.fifo until `start` writes, then execs
                                                   process.args (startContainer hooks, or an
                                                   executable only CAP_DAC_OVERRIDE opens: the
                                                   Python init waits and execs instead)

With a user namespace a first child unshares it, sends "userns" and waits while the parent writes
its id maps; it then makes the other namespaces, forks the init, sends {"pid": N} and exits.
Root of a user namespace not the initial one (rootless podman) takes the same first child, without
the "userns" step: it could not setns back into its own pid namespace after making the init's.
Every failure on the child side is sent as {"error": msg, "step": name}; the init then _exits(1),
and the parent reports it with the step. Children leave with os._exit only.
"""

from __future__ import annotations

import _signal  # the C module: signal.py wraps it in enums (+4 ms)
import stat

from pyrunc import spec
from pyrunc._typing import MYPY, Callable
from pyrunc.container import barrier
from pyrunc.errors import InitError, PyruncError, SpecError
from pyrunc.linux import namespaces, rootfs
from pyrunc.linux.rootfs import MountOp
from pyrunc.records import dataclass, field
from pyrunc.spec import rules
from pyrunc.sys import jsonfast, linux, sockets
from pyrunc.sys import oslite as os

if MYPY:
    from typing import TypedDict

    from pyrunc.linux.caps import CapPlan
    from pyrunc.linux.cgroups import Manager
    from pyrunc.linux.rootfs import MountContext
    from pyrunc.linux.seccomp import Filter
    from pyrunc.spec.types import Config, Hook, HookName, Linux, OCIState, Process

    # A message on the sync socket (the diagram above): one of these keys, or error+step.
    Msg = TypedDict("Msg", {  # noqa: UP013 (one table of the protocol's keys)
        "joined": bool, "hooks": bool, "go": bool, "userns": bool, "seccomp_fd": bool,
        "ready": bool, "pid": int, "error": str, "step": str}, total=False)


@dataclass
class InitConfig:
    """Everything the init needs, computed by the parent before fork (the child inherits it)."""

    cid: str
    bundle: str
    rootfs: str
    config: Config
    ns: namespaces.NsPlan
    mounts: list[MountOp]
    cap_plan: CapPlan
    state_for_hooks: Callable[[str, int], OCIState]  # (status, init pid) -> the OCI state
    fifo_fd: int = -1
    console_fd: int = -1
    no_pivot: bool = False
    preserve_fds: int = 0
    extra_env: list[str] = field(default_factory=list)
    close_in_child: list[int] = field(default_factory=list)  # the state lock, above all
    cgroups: Manager | None = None  # already created
    run_hooks: Callable[[str, int], None] | None = None  # (hook name, init pid) in the parent
    first_child: bool = False  # the init is forked by a first child, in its cgroups (spawn)
    no_new_keyring: bool = False  # keep the caller's session keyring (pyrunc.linux.keyring)

    @property
    def process(self) -> Process:
        return self.config["process"]

    @property
    def linux(self) -> Linux:
        return self.config.get("linux", {})

    def hooks(self, name: HookName) -> list[Hook]:
        return self.config.get("hooks", {}).get(name, [])


# --- messages ----------------------------------------------------------------------------------
def send(sock: sockets.Socket, msg: Msg) -> None:
    try:
        sock.send(jsonfast.dumps(msg).encode())
    except (BrokenPipeError, ConnectionResetError):
        # The other side failed and left: its last message says why.
        recv(sock, "sync")
        raise


def recv_bytes(sock: sockets.Socket) -> bytes:
    """One message from the sync socket; b"" once the other side has closed it."""
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        # The child exited with a message of ours unread (it failed before reading "joined"):
        # the kernel reports the reset first, then the messages still queued for us (its error).
        return sock.recv(65536)


def recv(sock: sockets.Socket, step: str) -> Msg:
    data = recv_bytes(sock)
    if not data:
        raise InitError(step, "the other side of the sync socket went away")
    msg: Msg = jsonfast.loads(data)
    if "error" in msg:
        raise InitError(msg.get("step", step), msg["error"])
    return msg


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PyruncError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{':' + where if where else ''}"
    return f"{type(exc).__name__}: {exc}"


def child_fail(sock: sockets.Socket, step: str, exc: BaseException) -> None:
    try:
        send(sock, {"error": _describe(exc), "step": step})
    finally:
        os._exit(1)


# --- steps shared by the init and by exec'd processes -------------------------------------------
class Setup:
    """The process half of a container process: signals, limits, identity, privileges, seccomp."""

    STEPS: tuple[str, ...] = ()
    session_keyring = ""  # the id whose keyring "_ses.<id>" to join; "" keeps the caller's

    def __init__(self, process: Process, linux_cfg: Linux, userns: bool,
                 cap_plan: CapPlan, extra_env: list[str], sock: sockets.Socket,
                 close_in_child: list[int]) -> None:
        self.process = process
        self.linux_cfg = linux_cfg
        self.userns = userns
        self.cap_plan = cap_plan
        self.extra_env = extra_env
        self.sock = sock
        self.close_in_child = close_in_child
        self.seccomp_filter: Filter | None = None
        self.keep_fds = 3  # fds below this reach the workload (stdio, preserved fds)
        self.pdeathsig = 0  # the parent's pid, when we die with it until ready
        self.argv0 = ""
        self.env: list[str] = []
        self.step = ""

    def run_steps(self) -> None:
        for name in self.STEPS:
            self.step = name
            try:
                getattr(self, "step_" + name)()
            except BaseException as exc:  # noqa: BLE001 — every failure goes to the parent
                child_fail(self.sock, name, exc)

    def step_signals(self) -> None:
        # The state dir's flock is shared with us by fork: holding it would block `start`.
        for fd in self.close_in_child:
            os.close(fd)
        if self.pdeathsig:
            # Until we report ready, a create killed half-way takes its init along. (A parent
            # that died before this line is noticed at the next message: the socket is closed.)
            linux.prctl(linux.PR_SET_PDEATHSIG, _signal.SIGKILL)
        # Python ignores SIGPIPE and SIGXFSZ; ignored signals survive execve, so restore them.
        for sig in (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGINT, _signal.SIGTERM, _signal.SIGCHLD):
            _signal.signal(sig, _signal.SIG_DFL)
        # What the caller left ignored, which Python records at start-up (but glibc's own 32
        # and 33, which only the raw call can see and reset).
        for sig in range(1, _signal.NSIG):
            if sig in (32, 33):
                linux.default_if_ignored(sig)
            elif _signal.getsignal(sig) == _signal.SIG_IGN:
                _signal.signal(sig, _signal.SIG_DFL)
        _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
        if not self.process.get("terminal"):
            # runc's nsexec makes every container process (init and exec) a session leader, so
            # the caller's job control never reaches it; with a terminal, console.setup_init does.
            os.setsid()
        # Non-dumpable while we hold host resources: no /proc/<pid>/{exe,fd,map_files} for the
        # container's processes (CVE-2019-5736 class); execve of the workload resets it.
        linux.prctl(linux.PR_SET_DUMPABLE, 0)

    def step_security_prepare(self) -> None:
        # Everything apply-time code needs is imported here: after pivot_root the host is gone.
        seccomp_cfg = self.linux_cfg.get("seccomp")
        if seccomp_cfg:
            from pyrunc.linux import seccomp

            self.seccomp_filter = seccomp.prepare(seccomp_cfg)
        import resource  # noqa: F401

        from pyrunc.linux import caps  # noqa: F401

        if spec.uses(self.process, self.linux_cfg, spec.PROCATTR_FIELDS):
            from pyrunc.linux import procattrs  # noqa: F401
        if spec.uses(self.process, self.linux_cfg, spec.LSM_FIELDS):
            from pyrunc.linux import lsm  # noqa: F401

        if self.process.get("terminal"):
            from pyrunc.linux import console  # noqa: F401
        if self.session_keyring:
            from pyrunc.linux import keyring  # noqa: F401
        if self.wants_hooks():
            from pyrunc.container import hooks  # noqa: F401

    def wants_hooks(self) -> bool:
        return False

    def step_keyring(self) -> None:
        # After the namespaces (the keyring is the user namespace's), before any seccomp filter.
        if self.session_keyring:
            from pyrunc.linux import keyring

            keyring.apply(keyring.plan(self.session_keyring, self.userns, self.exec_process))

    def step_rlimits(self) -> None:
        import resource

        from pyrunc.spec import RLIMITS

        for rl in self.process.get("rlimits") or []:
            try:
                resource.setrlimit(RLIMITS[rl["type"]], (_rlim(rl["soft"]), _rlim(rl["hard"])))
            except (ValueError, OSError) as exc:
                raise SpecError(f"process.rlimits: setting {rl['type']} to "
                                f"{rl['soft']}/{rl['hard']}: {exc}") from exc

    def step_user(self) -> None:
        from pyrunc.linux import caps

        user = self.process.get("user", {})
        uid, gid = user.get("uid", 0), user.get("gid", 0)
        if not self.userns or _setgroups_allowed():
            os.setgroups(user.get("additionalGids", []))
        if self.process.get("terminal"):
            _chown_console(uid)
        os.setresgid(gid, gid, gid)
        caps.keep_caps()
        os.setresuid(uid, uid, uid)
        if user.get("umask") is not None:
            os.umask(user["umask"])
        self.env = _environ(self.process.get("env", []) + self.extra_env, uid)

    def step_cwd(self) -> None:
        cwd = self.process.get("cwd", "/")
        try:
            os.chdir(cwd)
            here = os.getcwd()
        except OSError as exc:
            raise SpecError(f"process.cwd: chdir to {cwd}: {exc.strerror}") from exc
        # CVE-2024-21626: a cwd reached through a leaked fd (/proc/self/fd/N) lies outside the
        # root, and getcwd() then fails or answers "(unreachable)/...".
        if not here.startswith("/"):
            raise SpecError(f"process.cwd: {cwd} is outside the container's root")

    def step_executable(self) -> None:
        self.argv0 = find_executable(self.process["args"][0], self.env)

    def step_capabilities(self) -> None:
        from pyrunc.linux import caps

        caps.apply(self.cap_plan)

    def step_no_new_privs(self) -> None:
        if self.process.get("noNewPrivileges"):
            linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)

    exec_process = False  # execCPUAffinity applies to exec'd processes only

    def step_procattrs(self) -> None:
        # Before the uid change and the cap drop: real-time scheduling, negative nice and
        # real-time I/O priority need CAP_SYS_NICE.
        if spec.uses(self.process, self.linux_cfg, spec.PROCATTR_FIELDS):
            from pyrunc.linux import procattrs

            procattrs.apply(self.process, self.linux_cfg, exec_process=self.exec_process)
        if spec.uses(self.process, self.linux_cfg, spec.LSM_FIELDS):
            from pyrunc.linux import lsm

            lsm.apply_exec_label(self.process)

    def seccomp_point(self) -> str:
        """Where the filter is loaded: as late as privileges allow (runc's order), so that the
        runtime's own syscalls need not be in the workload's profile.

        - "early": without no_new_privs, loading needs CAP_SYS_ADMIN: before the capability drop,
          after the uid change, cwd and executable lookup (runc loads it before those: a profile
          refusing getcwd or setresuid then breaks the runtime, not the workload);
        - "ready": with SCMP_ACT_NOTIFY, the listener fd goes to the parent over the sync socket:
          before the last message;
        - "exec": otherwise right before execve (for the init, in the barrier after `start`).
        """
        f = self.seccomp_filter
        if f is None:
            return ""
        if not self.process.get("noNewPrivileges"):
            return "early"
        return "ready" if f.notify else "exec"

    def step_close_fds(self) -> None:
        # Before any filter: the workload's profile need not allow close_range or fcntl.
        self.close_fds(self.keep_fds)

    def step_seccomp_early(self) -> None:
        if self.seccomp_point() == "early":
            if os.geteuid() != 0:
                from pyrunc.linux import caps

                caps.raise_effective()  # setuid(2) cleared it; loading needs CAP_SYS_ADMIN
            self.load_seccomp()

    def step_seccomp_late(self) -> None:
        if self.seccomp_point() == "ready":
            self.load_seccomp()

    def seccomp_before_exec(self) -> None:
        if self.seccomp_point() == "exec":
            self.load_seccomp()

    def load_seccomp(self) -> None:
        from pyrunc.linux import seccomp

        assert self.seccomp_filter is not None  # seccomp_point() is "" without one
        notify_fd = seccomp.load(self.seccomp_filter)
        if notify_fd is not None:
            send(self.sock, {"seccomp_fd": True})
            sockets.send_fds(self.sock, b"seccomp", [notify_fd])
            os.close(notify_fd)

    def close_fds(self, keep: int) -> None:
        for fd in range(3, keep):
            try:
                os.set_inheritable(fd, True)
            except OSError:
                pass
        # Every other descriptor (the shim's leaked socket, podman's sync pipes...) must not reach
        # the workload: mark them all close-on-exec in one call.
        linux.close_range(keep, 0xFFFFFFFF, linux.CLOSE_RANGE_CLOEXEC)


# --- the init ------------------------------------------------------------------------------------
class Init(Setup):
    """The container init between fork and execve; each step is a short method, run in order."""

    STEPS = ("signals", "cgroup", "namespaces", "keyring", "security_prepare", "barrier", "rootfs",
             "sysctl", "pivot_root", "make_cwd", "console", "paths", "hostname", "rlimits",
             "procattrs", "close_fds", "user", "cwd", "executable", "seccomp_early", "capabilities",
             "no_new_privs", "seccomp_late", "ready")

    def __init__(self, cfg: InitConfig, sock: sockets.Socket) -> None:
        super().__init__(cfg.process, cfg.linux, cfg.ns.userns, cfg.cap_plan, cfg.extra_env, sock,
                         cfg.close_in_child)
        self.cfg = cfg
        self.keep_fds = 3 + cfg.preserve_fds
        self.devnull_fd = -1
        self.barrier_fd = -1
        self.bpf: tuple[int, int] | None = None  # the filter for the barrier to load
        self.joined = cfg.first_child
        self.session_keyring = "" if cfg.no_new_keyring else cfg.cid

    def run(self) -> None:
        self.run_steps()
        self.wait_and_exec()

    def wants_hooks(self) -> bool:
        return any(self.cfg.hooks(k) for k in ("createContainer", "startContainer"))

    def step_cgroup(self) -> None:
        # The init moves itself into its v1 cgroups (pid 0 to `tasks`: no global lock, no RCU
        # grace period) and was born into its cgroup2 directory (clone3); see fork_into.
        if self.cfg.cgroups is not None and not self.cfg.first_child:
            self.cfg.cgroups.join_self()

    def expect(self, key: str, step: str) -> Msg:
        """The next message carrying `key`; the parent's "joined" may arrive in between."""
        while True:
            msg = recv(self.sock, step)
            if msg.get("joined"):
                self.joined = True
            if key in msg:
                return msg

    def await_joined(self) -> None:
        if not self.joined:
            self.expect("joined", "cgroup")

    def step_namespaces(self) -> None:
        ns = self.cfg.ns
        self.joined = self.cfg.first_child  # the first child joined before forking us
        if "cgroup" in ns.new or "cgroup" in ns.join:
            # The cgroup namespace's root is the cgroup we are in when it is made.
            self.await_joined()
        namespaces.join_all(ns, ["ipc", "uts", "network", "cgroup", "mount"])
        # Types not listed are the runtime's own (runtime-spec): with no mount namespace, the
        # rootfs steps below mount only inside the bundle and chroot (see rootfs.prepare).
        namespaces.unshare(ns.unshare_flags("ipc", "uts", "network", "cgroup", "mount"),
                           "ipc/uts/network/cgroup/mount")
        if "network" in ns.new:
            namespaces.loopback_up()  # runc does: a new network namespace has lo down

    def step_rootfs(self) -> None:
        ctx: MountContext = {
            "cgroupns": "cgroup" in self.cfg.ns.new or "cgroup" in self.cfg.ns.join,
            "cgroup_dirs": list(self.cfg.cgroups.paths().values()) if self.cfg.cgroups else [],
        }
        self.devnull_fd = rootfs.open_devnull()
        from pyrunc.linux.rootless import in_user_namespace

        # No mknod in a user namespace, ours or the one the runtime runs in: bind host nodes.
        bind_devices = self.cfg.ns.userns or in_user_namespace()
        rootfs.prepare(self.cfg.config, self.cfg.rootfs, self.cfg.mounts, bind_devices, ctx,
                       before_pivot=self._before_pivot, shared_mnt="mount" in self.cfg.ns.shared)

    def _before_pivot(self) -> None:
        if self.cfg.hooks("prestart") or self.cfg.hooks("createRuntime"):
            send(self.sock, {"hooks": True})
            self.expect("go", "createRuntime hooks")
        if self.cfg.hooks("createContainer"):
            from pyrunc.container import hooks

            # "created": runtime.md's states put hooks after step 2 (crun does; runc says creating)
            st = self.cfg.state_for_hooks("created", os.getpid())
            hooks.run_all(self.cfg.hooks("createContainer"), "createContainer", st,
                          default_env=self.process.get("env", []) + self.cfg.extra_env)

    def step_sysctl(self) -> None:
        # Written before pivot_root through the host's procfs: /proc/sys entries act on the
        # namespaces of the writing task, and no file of the container can stand in for them.
        for key, value in self.linux_cfg.get("sysctl", {}).items():
            if ".." in key or "/" in key:
                raise SpecError(f"linux.sysctl: invalid key {key!r}")
            kind = rules.sysctl_namespace(key)
            if kind is None or kind in self.cfg.ns.shared:
                # create refused this already (pyrunc.spec.rules): never write the host's values.
                raise SpecError(f"linux.sysctl[{key!r}]: not in a namespace of the container's own")
            path = "/proc/sys/" + key.replace(".", "/")
            try:
                fd = linux.openat2(-100, path, os.O_WRONLY, linux.RESOLVE_NO_SYMLINKS)
                try:
                    os.write(fd, str(value).encode())
                finally:
                    os.close(fd)
            except OSError as exc:
                raise SpecError(f"linux.sysctl: writing {value!r} to {key}: {exc.strerror}") from exc

    def step_pivot_root(self) -> None:
        rootfs.pivot(self.cfg.rootfs, self.cfg.no_pivot, shared_mnt="mount" in self.cfg.ns.shared)

    def step_make_cwd(self) -> None:
        # runc creates a missing cwd (mkdir -p, 0755, owned by root) before the root is made
        # read-only. After pivot_root (or chroot) "/" is the container's root, so ".." and
        # symlinks in the path resolve inside it.
        cwd = self.process.get("cwd") or "/"
        try:
            os.makedirs(os.path.normpath(cwd), 0o755, exist_ok=True)
        except FileExistsError:
            pass  # not a directory: the chdir in step_cwd names the error
        except OSError as exc:
            raise SpecError(f"process.cwd: creating {cwd}: {exc.strerror}") from exc

    def step_console(self) -> None:
        if self.process.get("terminal"):
            from pyrunc.linux import console

            console.setup_init(self.cfg.console_fd, self.process.get("consoleSize"))
            self.cfg.console_fd = -1

    def step_paths(self) -> None:
        rootfs.finish(self.cfg.config, self.cfg.mounts, self.devnull_fd)
        os.close(self.devnull_fd)

    def step_hostname(self) -> None:
        names = [k for k in ("hostname", "domainname") if self.cfg.config.get(k)]
        if names and "uts" in self.cfg.ns.shared:
            # create refused this already (pyrunc.spec.rules): never rename the host.
            raise SpecError(f"{names[0]}: cannot be set without a private UTS namespace")
        if self.cfg.config.get("hostname"):
            linux.sethostname(self.cfg.config["hostname"])
        if self.cfg.config.get("domainname"):
            linux.setdomainname(self.cfg.config["domainname"])

    def step_executable(self) -> None:
        super().step_executable()
        if self.barrier_fd >= 0 and not os.access(self.argv0, os.X_OK):
            # Only the process's capabilities (CAP_DAC_OVERRIDE) let it exec this file, and the
            # barrier program's own execve would drop them: this init waits and execs it itself.
            os.close(self.barrier_fd)
            self.barrier_fd = -1

    def step_seccomp_late(self) -> None:
        super().step_seccomp_late()
        if self.seccomp_point() == "exec" and self.barrier_fd >= 0:
            from pyrunc.linux import seccomp

            assert self.seccomp_filter is not None  # seccomp_point() is "" without one
            self.bpf = seccomp.export(self.seccomp_filter)

    def step_ready(self) -> None:
        self.await_joined()
        if self.pdeathsig:
            linux.prctl(linux.PR_SET_PDEATHSIG, 0)  # before "ready": create exits right after it
        send(self.sock, {"ready": True})
        self.sock.close()

    def step_barrier(self) -> None:
        # Before seccomp and pivot_root: the small waiting program (pyrunc.container.barrier).
        if self.cfg.fifo_fd >= 0 and not self.cfg.hooks("startContainer") and barrier.available():
            self.barrier_fd = barrier.make()

    def wait_and_exec(self) -> None:
        if self.barrier_fd >= 0:
            barrier.exec_waiting(self.barrier_fd, self.cfg.fifo_fd, self.argv0,
                                 self.process["args"], envdict(self.env), self.bpf)
        try:
            if self.cfg.fifo_fd >= 0:
                os.read(self.cfg.fifo_fd, 1)  # the create/start barrier
                os.close(self.cfg.fifo_fd)
            if self.cfg.hooks("startContainer"):
                from pyrunc.container import hooks

                st = self.cfg.state_for_hooks("created", os.getpid())
                hooks.run_all(self.cfg.hooks("startContainer"), "startContainer", st,
                              default_env=self.env)
            self.seccomp_before_exec()
            os.execve(self.argv0, self.process["args"], envdict(self.env))
        except BaseException as exc:  # noqa: BLE001
            os.write(2, f"pyrunc: exec {self.process['args'][0]}: {_describe(exc)}\n".encode())
        os._exit(127)


def _rlim(v: int) -> int:
    import resource

    return resource.RLIM_INFINITY if v >= 2**63 else v


def _chown_console(uid: int) -> None:
    """The pty is the process user's, as runc's fixStdioPermissions makes it: the owner only (the
    devpts mount's gid=5 stays), and no error where the ids are not mapped (EINVAL, EPERM)."""
    try:
        os.fchown(0, uid, os.fstat(0).st_gid)
    except OSError as exc:
        if exc.errno not in (1, 22):  # EPERM, EINVAL: an id not mapped in the user namespace
            raise


def _setgroups_allowed() -> bool:
    try:
        return os.read_bytes("/proc/self/setgroups").strip() == b"allow"
    except OSError:
        return True


def _environ(env: list[str], uid: int) -> list[str]:
    """runc's environment: a later entry overrides an earlier one (kept at the first one's
    place), and HOME missing or empty comes from the user's passwd entry in the container."""
    values: dict[str, str] = {}
    for e in env:
        k, _, v = e.partition("=")
        values[k] = v
    if not values.get("HOME"):
        values["HOME"] = _home_of(uid)
    return [f"{k}={v}" for k, v in values.items()]


def _home_of(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.split(":")
                if len(parts) > 5 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def envdict(env: list[str]) -> dict[str, str]:
    out = {}
    for e in env:
        k, _, v = e.partition("=")
        out[k] = v
    return out


def find_executable(name: str, env: list[str]) -> str:
    """PATH lookup inside the container, as execvp would, with runc's error wording."""
    if "/" in name:
        candidates = [name]
    else:
        path = envdict(env).get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        candidates = [os.path.join(d or ".", name) for d in path.split(":")]
    for c in candidates:
        try:
            st = os.stat(c)
        except OSError:
            continue
        # An execute bit for anyone, as runc's exec.LookPath: access(2) would ignore the capabilities the
        # process gets (CAP_DAC_OVERRIDE), and execve itself has the last word.
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return c
        if "/" in name:
            raise SpecError(f'exec: "{name}": permission denied')
    if "/" in name:
        raise SpecError(f'exec: "{name}": stat {name}: no such file or directory')
    raise SpecError(f'exec: "{name}": executable file not found in $PATH')


# --- the parent side ------------------------------------------------------------------------------
def _enter_for_children(cfg: InitConfig) -> list[tuple[int, int]]:
    """Set the pid and time namespaces our next fork is born into; returns what to restore."""
    restore = []
    for t, flag in (("pid", linux.CLONE_NEWPID), ("time", linux.CLONE_NEWTIME)):
        if t in cfg.ns.new or t in cfg.ns.join:
            restore.append((os.open(f"/proc/self/ns/{'pid' if t == 'pid' else 'time'}",
                                    os.O_RDONLY | os.O_CLOEXEC), flag))
    for t in ("pid", "time"):
        if t in cfg.ns.join:
            namespaces.join(t, cfg.ns.join[t])
        elif t in cfg.ns.new:
            namespaces.unshare(namespaces.CLONE_FLAGS[t], t)
            if t == "time" and cfg.ns.time_offsets:
                namespaces.write_time_offsets(cfg.ns.time_offsets)
    return restore


def _restore(restore: list[tuple[int, int]]) -> None:
    for fd, flag in restore:
        linux.setns(fd, flag)
        os.close(fd)


def spawn(cfg: InitConfig, on_forked: Callable[[int], None]) -> int:
    """Fork the init and drive it to "ready"; returns its host pid.

    `on_forked(pid)` runs in the parent as soon as the first child exists (cgroup join, oom score).
    On failure the children are killed and an InitError (or the parent's own error) is raised.
    """
    parent_sock, child_sock = sockets.pair()
    try:
        cfg.first_child = cfg.ns.userns or _stuck_in_pidns(cfg)
        if cfg.first_child:
            return _spawn_userns(cfg, parent_sock, child_sock, on_forked)
        return _spawn_direct(cfg, parent_sock, child_sock, on_forked)
    finally:
        parent_sock.close()


def _stuck_in_pidns(cfg: InitConfig) -> bool:
    """Root of a user namespace other than the initial one (rootless podman runs us so) may make
    a pid namespace but not setns back into its own, which the initial namespace owns: a first
    child makes it instead, and the parent's later forks (hooks) stay in the runtime's."""
    if not any(t in cfg.ns.new or t in cfg.ns.join for t in ("pid", "time")):
        return False
    from pyrunc.linux.rootless import in_user_namespace

    return in_user_namespace()


def _spawn_direct(cfg: InitConfig, psock: sockets.Socket, csock: sockets.Socket,
                  on_forked: Callable[[int], None]) -> int:
    restore = _enter_for_children(cfg)
    parent = os.getpid()
    try:
        pid, born_in_cgroup = fork_into(cfg.cgroups)
    except BaseException:
        _restore(restore)
        raise
    if pid == 0:
        psock.close()
        init = Init(cfg, csock)
        init.pdeathsig = parent
        init.run()
        os._exit(1)
    _restore(restore)
    csock.close()
    try:
        # The init sets itself up meanwhile: the first cgroup join can wait 7-20 ms for an RCU
        # grace period, and the init needs to be in its cgroup only before a cgroup namespace
        # is made and before it reports ready.
        if cfg.cgroups is not None and not born_in_cgroup:
            cfg.cgroups.apply_unified(pid)
        on_forked(pid)
        send(psock, {"joined": True})
        _drive(cfg, psock, pid)
    except BaseException:
        kill_and_reap(pid)
        raise
    return pid


def fork_into(cgroups: Manager | None) -> tuple[int, bool]:
    """fork; the child born in the cgroup2 directory of `cgroups` (a cgroups.Manager) when there
    is one. Returns (pid, born there?)."""
    unified = cgroups.unified_dir() if cgroups is not None else None
    if unified:
        try:
            fd = os.open(unified, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                return linux.fork_into_cgroup(fd), True
            except OSError:
                pass  # no clone3 (old kernel, a seccomp filter): the parent moves it instead
            finally:
                os.close(fd)
    return os.fork(), False


def _spawn_userns(cfg: InitConfig, psock: sockets.Socket, csock: sockets.Socket,
                  on_forked: Callable[[int], None]) -> int:
    first = os.fork()
    if first == 0:
        psock.close()
        _first_child(cfg, csock)
        os._exit(1)
    csock.close()
    init = 0
    try:
        if cfg.cgroups is not None:
            cfg.cgroups.apply(first)
        on_forked(first)
        send(psock, {"go": True})
        if cfg.ns.userns:
            recv(psock, "user namespace")
            namespaces.write_id_maps(first, cfg.ns)
            send(psock, {"go": True})
        init = int(recv(psock, "fork init")["pid"])
        _drive(cfg, psock, init)
    except BaseException:
        if init:
            kill_and_reap(init)
        kill_and_reap(first)
        raise
    finally:
        try:
            os.waitpid(first, 0)
        except ChildProcessError:
            pass
    return init


def _first_child(cfg: InitConfig, sock: sockets.Socket) -> None:
    step = "user namespace"
    try:
        recv(sock, step)
        if "user" in cfg.ns.join:
            namespaces.join("user", cfg.ns.join["user"])
        elif "user" in cfg.ns.new:
            namespaces.unshare(linux.CLONE_NEWUSER, "user")
        if cfg.ns.userns:
            send(sock, {"userns": True})
            recv(sock, step)
        if "user" in cfg.ns.new:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        step = "fork init"
        _enter_for_children(cfg)
        pid = os.fork()
    except BaseException as exc:  # noqa: BLE001
        child_fail(sock, step, exc)
    if pid == 0:
        Init(cfg, sock).run()
        os._exit(1)
    send(sock, {"pid": pid})  # a host pid: this first child is still in the host's pid namespace
    os._exit(0)


def _drive(cfg: InitConfig, sock: sockets.Socket, pid: int) -> None:
    while True:
        msg = recv(sock, "init")
        if msg.get("ready"):
            return
        if msg.get("hooks") and cfg.run_hooks:
            cfg.run_hooks("createRuntime", pid)
            send(sock, {"go": True})
        elif msg.get("hooks"):
            send(sock, {"go": True})
        elif msg.get("seccomp_fd"):
            _, fds = sockets.recv_fds(sock, 16, 1)
            if cfg.run_hooks:
                cfg.run_hooks("seccomp", fds[0])
            os.close(fds[0])


def kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, _signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
