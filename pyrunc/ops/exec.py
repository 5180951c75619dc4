"""`exec`: a new process in a running container's namespaces, cgroup, limits and seccomp filter.

    parent (pyrunc exec)                          child (becomes the new process)
    setns(pid ns of the init) for children
    fork() -------------------------------------> born in the container's pid namespace
    setns back; cgroups.apply(pid)                recv "go"
    send "go" ---------------------------------->
                                                  setns user, ipc, uts, net, cgroup, time, mnt
                                                  join the session keyring "_ses.<id>"
                                                  console; rlimits; user; cwd; caps; nnp; seccomp
                                                  execve  (the CLOEXEC sync socket closes)
    EOF = exec'd: pid file; wait (foreground)     or {"error", "step"} and _exit(1); a failed
                                                  execve is printed by the child, which exits 1

The parent learns that the setup succeeded from the sync socket closing (it is close-on-exec): a
step that fails is reported by `pyrunc exec` itself with its name; a failed execve, as runc's
init does it, by the process on its stderr ("exec PATH: exec format error", status 1).
"""

from __future__ import annotations

from pyrunc import container, spec
from pyrunc._typing import MYPY
from pyrunc.container import process
from pyrunc.errors import InitError, InvalidState, PyruncError, SpecError
from pyrunc.linux import namespaces
from pyrunc.records import dataclass
from pyrunc.sys import jsonfast, linux, sockets
from pyrunc.sys import oslite as os

if MYPY:
    from collections.abc import Callable, Mapping

    from pyrunc.container.process import Msg
    from pyrunc.linux.caps import CapPlan
    from pyrunc.linux.cgroups import Manager
    from pyrunc.spec.types import Capabilities, Config, Linux, Process, User

    Flags = Mapping[str, object]  # the command line's flags: str, bool or list[str] by flag

JOIN = ["user", "ipc", "uts", "network", "cgroup", "time", "mount"]


@dataclass
class ExecOptions:
    detach: bool = False
    pid_file: str | None = None
    console_socket: str | None = None
    preserve_fds: int = 0
    ignore_paused: bool = False
    cgroup: list[str] | None = None


def _text(flags: Flags, name: str) -> str | None:
    value = flags.get(name)
    return value if isinstance(value, str) else None


def _texts(flags: Flags, name: str) -> list[str]:
    """A flag given many times (--env, --cap...): its values, [] when absent."""
    value = flags.get(name)
    return [str(v) for v in value] if isinstance(value, list) else []


def _caps_with(base: Capabilities | None, extra: list[str]) -> Capabilities | None:
    if not extra:
        return base
    add = [c if c.startswith("CAP_") else "CAP_" + c.upper() for c in extra]
    out: Capabilities = base.copy() if base else {}
    out["bounding"] = [*out.get("bounding", []), *add]
    out["effective"] = [*out.get("effective", []), *add]
    out["permitted"] = [*out.get("permitted", []), *add]
    if out.get("inheritable") is not None:
        # runc: ambient too when the spec's process has an inheritable set (an ambient
        # capability must be inheritable, and --cap adds none there)
        out["ambient"] = [*out.get("ambient", []), *add]
    return out


def build_process(config: Config, flags: Flags, args: list[str]) -> Process:
    """The process JSON: `--process FILE`, or the container's process with runc's overrides."""
    process_file = _text(flags, "process")
    if process_file:
        p: Process = spec.load_json(process_file)  # the JSON boundary: exec_process checks it
        if not isinstance(p, dict):
            raise SpecError(f"{process_file}: a process must be a JSON object")
    else:
        base = config.get("process", {})
        if not args:
            raise PyruncError("exec: missing command (or --process FILE)")
        p = base.copy()
        p.pop("args", None)
        p.pop("terminal", None)
        p.pop("consoleSize", None)
        p["args"] = args
        p["env"] = list(base.get("env", [])) + _texts(flags, "env")
        cwd = _text(flags, "cwd")
        if cwd:
            p["cwd"] = cwd
        p["terminal"] = bool(flags.get("tty"))
    _user_flags(p, flags)
    if flags.get("no-new-privs"):
        p["noNewPrivileges"] = True
    apparmor, label = _text(flags, "apparmor"), _text(flags, "process-label")
    if apparmor:
        p["apparmorProfile"] = apparmor
    if label:
        p["selinuxLabel"] = label
    caps = _caps_with(p.get("capabilities"), _texts(flags, "cap"))
    if caps is None:
        p.pop("capabilities", None)
    else:
        p["capabilities"] = caps
    return p


def _user_flags(p: Process, flags: Flags) -> None:
    user: User = {}
    user.update(p.get("user", {}))  # dict(...) as before p is checked: a copy
    user_flag = _text(flags, "user")
    if user_flag:
        uid, _, gid = user_flag.partition(":")
        try:
            user["uid"] = int(uid)
            if gid:
                user["gid"] = int(gid)
        except ValueError as exc:
            raise PyruncError(f"--user {user_flag}: must be UID[:GID], numeric") from exc
    gids = _texts(flags, "additional-gids")
    if gids:
        try:
            user["additionalGids"] = [int(g) for g in gids]
        except ValueError as exc:
            raise PyruncError("--additional-gids: must be numeric") from exc
    p["user"] = user


def exec_from_cli(root: str, cid: str, flags: Flags, args: list[str], g: Flags) -> int:
    c = container.load(root, cid)
    proc = build_process(c.config, flags, args)
    preserve_text = _text(flags, "preserve-fds")
    try:
        preserve = int(preserve_text) if preserve_text is not None else 0
    except ValueError as exc:
        raise PyruncError("--preserve-fds: not a number") from exc
    opts = ExecOptions(detach=bool(flags.get("detach")), pid_file=_text(flags, "pid-file"),
                       console_socket=_text(flags, "console-socket"), preserve_fds=preserve,
                       ignore_paused=bool(flags.get("ignore-paused")),
                       cgroup=_texts(flags, "cgroup") or None)
    return exec_process(c, proc, opts)


class ExecChild(process.Setup):
    STEPS = ("signals", "cgroup", "go", "security_prepare", "namespaces", "keyring", "console",
             "rlimits", "procattrs", "close_fds", "user", "cwd", "executable", "seccomp_early",
             "capabilities", "no_new_privs", "seccomp_late")
    exec_process = True

    def __init__(self, proc: Process, linux_cfg: Linux, userns: bool, cap_plan: CapPlan,
                 sock: sockets.Socket, ns_fds: dict[str, int], console_fd: int, keep: int,
                 cgroups: Manager | None = None, session_keyring: str = "") -> None:
        super().__init__(proc, linux_cfg, userns, cap_plan, [], sock, [])
        self.cgroups = cgroups
        self.session_keyring = session_keyring  # runc's setns init joins the init's by name
        self.ns_fds = ns_fds
        self.console_fd = console_fd
        self.keep_fds = keep

    def step_cgroup(self) -> None:
        # As the init does: v1 by moving itself (no RCU wait), cgroup2 by birth (process.fork_into).
        if self.cgroups is not None:
            self.cgroups.join_self()

    def step_go(self) -> None:
        process.recv(self.sock, "cgroup")
        if self.process.get("execCPUAffinity"):
            from pyrunc.linux import procattrs

            procattrs.initial_affinity(self.process, exec_process=True)

    def step_namespaces(self) -> None:
        for t in JOIN:
            if t in self.ns_fds:
                try:
                    linux.setns(self.ns_fds[t], namespaces.CLONE_FLAGS[t])
                except OSError as exc:
                    raise PyruncError(f"joining the container's {t} namespace: {exc.strerror}") from exc
                os.close(self.ns_fds.pop(t))

    def step_console(self) -> None:
        if self.process.get("terminal"):
            from pyrunc.linux import console

            console.setup_init(self.console_fd, self.process.get("consoleSize"), bind_console=False)

    def run(self) -> None:
        self.run_steps()
        self.step = "exec"
        try:
            self.seccomp_before_exec()
        except BaseException as exc:  # noqa: BLE001
            process.child_fail(self.sock, "exec", exc)
        try:
            os.execve(self.argv0, self.process["args"], process.envdict(self.env))
        except OSError as exc:
            # As runc's init: the process itself reports a failed execve on its stderr and exits
            # 1; `exec` sees the sync socket close and returns that status.
            os.write(2, f"exec {self.argv0}: {(exc.strerror or str(exc)).lower()}\n".encode())
        os._exit(1)


def _session_keyring(c: container.Container) -> str:
    """The id whose keyring exec'd processes join: the init's, unless it kept its caller's."""
    return "" if c.data.get("noNewKeyring") else c.id


def _ns_fds(pid: int) -> dict[str, int]:
    """The init's namespaces that differ from ours (joining one's own user ns is an error)."""
    fds = {}
    for t in [*JOIN, "pid"]:
        name = namespaces.PROC_NAMES[t]
        try:
            if os.stat(f"/proc/{pid}/ns/{name}").st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
            fds[t] = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
    return fds


def _check(c: container.Container, opts: ExecOptions) -> str:
    status = c.status()
    if status == "stopped":
        raise InvalidState("cannot exec in a stopped container")
    if status == "paused" and not opts.ignore_paused:
        raise InvalidState("cannot exec in a paused container (use --ignore-paused to override)")
    return status


def exec_process(c: container.Container, proc: Process, opts: ExecOptions) -> int:
    from pyrunc.container.create import check_security

    _check(c, opts)
    spec.check_process(proc, "process")
    cap_plan = check_security({**c.config, "process": proc})
    own_tty, console_fd = _console(proc, opts)
    ns_fds = _ns_fds(c.pid)
    try:
        pid = _spawn(c, proc, cap_plan, ns_fds, console_fd, opts)
    finally:
        for fd in ns_fds.values():
            os.close(fd)
        if console_fd >= 0:
            os.close(console_fd)
    if opts.pid_file:
        from pyrunc.container.create import write_pid_file

        write_pid_file(opts.pid_file, pid)
    if opts.detach:
        return 0
    from pyrunc.container import foreground

    master = -1
    if own_tty is not None:
        from pyrunc.linux import console

        master = console.recv_master(own_tty)
    return foreground.wait_foreground(pid, master)


def _console(proc: Process, opts: ExecOptions) -> tuple[sockets.Socket | None, int]:
    if not proc.get("terminal"):
        return None, -1
    if opts.console_socket:
        from pyrunc.linux import console

        return None, console.connect(opts.console_socket)
    if opts.detach:
        from pyrunc.errors import ConsoleError

        raise ConsoleError("cannot allocate tty if runc will detach without setting console socket")
    from pyrunc.linux import console

    return console.pair()


def _spawn(c: container.Container, proc: Process, cap_plan: CapPlan, ns_fds: dict[str, int],
           console_fd: int, opts: ExecOptions) -> int:
    psock, csock = sockets.pair()
    pidns = ns_fds.pop("pid", -1)
    mgr = c.cgroup() if c.data.get("cgroup") else None

    def child() -> None:
        psock.close()
        # With --cgroup the parent places it (a self-join could race the sub-cgroup write).
        ExecChild(proc, c.config.get("linux", {}), "user" in ns_fds, cap_plan, csock, ns_fds,
                  console_fd, 3 + opts.preserve_fds, None if opts.cgroup else mgr,
                  session_keyring=_session_keyring(c)).run()
        os._exit(1)

    if pidns >= 0 and _stuck_in_pidns():
        try:
            pid, born = _fork_through_middle(pidns, psock, csock, child), False
        except BaseException:
            psock.close()
            raise
        finally:
            os.close(pidns)
            csock.close()
        return _after_fork(c, mgr, pid, born, psock, opts)
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC) if pidns >= 0 else -1
    try:
        if pidns >= 0:
            linux.setns(pidns, linux.CLONE_NEWPID)
        pid, born = process.fork_into(mgr)
        if pid == 0:
            child()
    finally:
        if pidns >= 0:
            linux.setns(own, linux.CLONE_NEWPID)
            os.close(own)
            os.close(pidns)
    csock.close()
    return _after_fork(c, mgr, pid, born, psock, opts)


def _after_fork(c: container.Container, mgr: Manager | None, pid: int, born: bool,
                psock: sockets.Socket, opts: ExecOptions) -> int:
    try:
        _join_cgroup(mgr, pid, born, opts.cgroup)
        process.send(psock, {"go": True})
        _await_exec(psock, c, pid)
    except BaseException:
        process.kill_and_reap(pid)
        raise
    finally:
        psock.close()
    return pid


def _stuck_in_pidns() -> bool:
    from pyrunc.linux.rootless import in_user_namespace

    return in_user_namespace()


def _fork_through_middle(pidns: int, psock: sockets.Socket, csock: sockets.Socket,
                         child: Callable[[], None]) -> int:
    """Root of a user namespace other than the initial one (rootless podman runs us so) may enter
    the container's pid namespace but not setns back into its own: a middle child enters it and
    forks the process, which this one, a subreaper, adopts when the middle child exits (runc's
    stage-1 child does the same)."""
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    middle = os.fork()
    if middle == 0:
        try:
            psock.close()
            linux.setns(pidns, linux.CLONE_NEWPID)
            pid = os.fork()
        except BaseException as exc:  # noqa: BLE001
            process.child_fail(csock, "pid namespace", exc)
        if pid == 0:
            child()
        process.send(csock, {"pid": pid})
        os._exit(0)
    os.waitpid(middle, 0)  # the process is ours once this returns: orphans are adopted first
    return int(process.recv(psock, "pid namespace")["pid"])


def _join_cgroup(mgr: Manager | None, pid: int, born: bool, sub: list[str] | None) -> None:
    """The parent's part: the cgroup2 directory if the child was not born in it, and --cgroup."""
    if mgr is None:
        return
    if sub:
        mgr.apply(pid)
    elif not born:
        mgr.apply_unified(pid)
    for item in sub or []:
        ctrl, _, path = item.rpartition(":")
        for key, base in mgr.paths().items():
            if not ctrl or ctrl == key:
                with open(os.path.join(base, path.lstrip("/"), "cgroup.procs"), "w") as f:
                    f.write(str(pid))


def _await_exec(sock: sockets.Socket, c: container.Container, pid: int) -> None:
    """EOF means the child's execve closed the socket: the process runs. On the way, a seccomp
    listener fd (SCMP_ACT_NOTIFY) goes to the agent at listenerPath, as for the init."""
    while True:
        data = process.recv_bytes(sock)
        if not data:
            return
        msg: Msg = jsonfast.loads(data)
        if msg.get("seccomp_fd"):
            _, fds = sockets.recv_fds(sock, 16, 1)
            try:
                _send_to_agent(c, pid, fds[0])
            finally:
                os.close(fds[0])
        if "error" in msg:
            raise InitError(msg.get("step", "exec"), msg["error"], what="exec")


def _send_to_agent(c: container.Container, pid: int, notify_fd: int) -> None:
    from pyrunc.linux import seccomp

    sc = c.config.get("linux", {}).get("seccomp", {})
    seccomp.send_to_listener(sc["listenerPath"], sc.get("listenerMetadata", ""),
                             {**c.oci_state(), "pid": pid}, notify_fd)
