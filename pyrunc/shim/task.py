"""containerd.task.v2.Task: the shim's task service, pyrunc's library called in-process.

One shim serves every container of a containerd namespace (pyrunc.shim.main explains why), so
the service holds a table of tasks, each with its init and its exec'd processes. Verbs map onto
pyrunc as containerd's runc shim maps them onto `runc` commands, without a process per verb:

    Create  -> mount the rootfs, pyrunc.container.create (stdio dup'd onto fds 0-2 for the fork)
    Start   -> pyrunc.container.start (init) / pyrunc.ops.exec, detached (exec, set up by Exec)
    Kill    -> pyrunc.ops.kill (init, `all`) / pidfd_send_signal (exec)
    Delete  -> pyrunc.container.destroy.delete --force, unmount the rootfs
    Pause, Resume, Update, Pids, Stats -> pyrunc.ops.pause, update, ps, the cgroup's stats

The shim is the subreaper of every process it starts: exit statuses come from waitpid, and each
exit is published (TaskExit) and answers the `Wait` calls parked on the process.
"""

from __future__ import annotations

import _signal
import posix
import time

from pyrunc import log
from pyrunc._typing import MYPY
from pyrunc.errors import ContainerNotFound, InvalidState, PyruncError
from pyrunc.shim import messages as m
from pyrunc.shim import mounts, options, stdio, ttrpc, wire
from pyrunc.shim.ttrpc import RpcError
from pyrunc.sys import jsonfast
from pyrunc.sys import oslite as os

if MYPY:
    from collections.abc import Callable
    from typing import TypeVar

    from pyrunc.container import Container
    from pyrunc.shim.events import Publisher
    from pyrunc.shim.loop import Loop
    from pyrunc.shim.options import Options
    from pyrunc.shim.server import Handler, Reply
    from pyrunc.shim.wire import Msg
    from pyrunc.spec.types import Process as ProcessSpec

    T = TypeVar("T")

SERVICE = "containerd.task.v2.Task"
VERSION = "pyrunc-shim 0.1.0"
_STATUS = {"created": m.CREATED, "running": m.RUNNING, "stopped": m.STOPPED, "paused": m.PAUSED,
           "creating": m.CREATED}


def timestamp(ns: int) -> Msg:
    return {"seconds": ns // 1_000_000_000, "nanos": ns % 1_000_000_000}


def exit_code(status: int) -> int:
    """A wait status as containerd reports it: the exit code, or 128 + the signal."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class Proc:
    """The init (exec_id "") or an exec'd process of a task."""

    def __init__(self, exec_id: str, req: Msg) -> None:
        self.exec_id = exec_id
        self.stdin, self.stdout = wire.text(req, "stdin"), wire.text(req, "stdout")
        self.stderr, self.terminal = wire.text(req, "stderr"), wire.flag(req, "terminal")
        self.pid = 0
        self.exit_status = -1  # -1: not exited
        self.exited_ns = 0
        self.waiters: list[Reply] = []
        self.spec: ProcessSpec | None = None
        self.stdin_pump: stdio.Pump | None = None
        self.output_pump: stdio.Pump | None = None
        self.master = -1

    @property
    def exited(self) -> bool:
        return self.exit_status >= 0

    def io_msg(self) -> Msg:
        return {"stdin": self.stdin, "stdout": self.stdout, "stderr": self.stderr,
                "terminal": self.terminal}

    def close_io(self) -> None:
        if self.stdin_pump is not None:
            self.stdin_pump.drain()
            self.stdin_pump = None


class Task:
    def __init__(self, cid: str, bundle: str, init: Proc, rootfs: list[Msg], root: str,
                 opts: Options) -> None:
        self.id, self.bundle, self.init = cid, bundle, init
        self.rootfs = rootfs
        self.root, self.opts = root, opts  # pyrunc's state root for this task, its options
        self.mounted: str | None = None  # <bundle>/rootfs when the shim mounted it
        self.execs: dict[str, Proc] = {}
        self.oom_fd = -1

    def proc(self, exec_id: str) -> Proc:
        if not exec_id:
            return self.init
        p = self.execs.get(exec_id)
        if p is None:
            raise RpcError(ttrpc.NOT_FOUND, f"process {exec_id} does not exist")
        return p


def _error(exc: PyruncError) -> RpcError:
    if isinstance(exc, ContainerNotFound):
        return RpcError(ttrpc.NOT_FOUND, str(exc))
    if isinstance(exc, InvalidState):
        return RpcError(ttrpc.FAILED_PRECONDITION, str(exc))
    return RpcError(ttrpc.UNKNOWN, str(exc))


def _start_child(fds: list[int], shim_side: list[int], start: Callable[[], T]) -> T:
    """start(), which starts a process with fds as its stdio: fds are closed after it and, when it
    fails, the shim's ends too; a PyruncError comes out as the RpcError that words it."""
    try:
        return start()
    except BaseException as exc:
        stdio.close_all(shim_side)
        if isinstance(exc, PyruncError):
            raise _error(exc) from exc
        raise
    finally:
        stdio.close_all(fds)


class TaskService:
    def __init__(self, loop: Loop, root: str, namespace: str, publisher: Publisher,
                 on_empty: Callable[[], None]) -> None:
        self.loop, self.root, self.events = loop, root, publisher
        self.namespace = namespace
        self.on_empty = on_empty
        self.tasks: dict[str, Task] = {}
        # Reaping happens only in the loop, between calls: a process started by a call is in
        # by_pid before its exit can be seen, however fast it exits.
        self.by_pid: dict[int, tuple[Task, Proc]] = {}
        self.seq = 0

    def handlers(self) -> dict[str, Handler]:
        def wrap(table: wire.Table, fn: Callable[[Msg, Reply], bytes | None]) -> Handler:
            return lambda payload, reply: fn(wire.decode(table, payload), reply)

        return {
            "Create": wrap(m.CREATE_TASK_REQUEST, self.create),
            "Start": wrap(m.START_REQUEST, self.start),
            "Delete": wrap(m.DELETE_REQUEST, self.delete),
            "State": wrap(m.STATE_REQUEST, self.state),
            "Pids": wrap(m.PIDS_REQUEST, self.pids),
            "Pause": wrap(m.PAUSE_REQUEST, self.pause),
            "Resume": wrap(m.RESUME_REQUEST, self.resume),
            "Checkpoint": wrap(m.CHECKPOINT_TASK_REQUEST, self.checkpoint),
            "Kill": wrap(m.KILL_REQUEST, self.kill),
            "Exec": wrap(m.EXEC_PROCESS_REQUEST, self.exec),
            "ResizePty": wrap(m.RESIZE_PTY_REQUEST, self.resize_pty),
            "CloseIO": wrap(m.CLOSE_IO_REQUEST, self.close_io),
            "Update": wrap(m.UPDATE_TASK_REQUEST, self.update),
            "Wait": wrap(m.WAIT_REQUEST, self.wait),
            "Stats": wrap(m.STATS_REQUEST, self.stats),
            "Connect": wrap(m.CONNECT_REQUEST, self.connect),
            "Shutdown": wrap(m.SHUTDOWN_REQUEST, self.shutdown),
        }

    def task(self, req: Msg) -> Task:
        cid = wire.text(req, "id")
        t = self.tasks.get(cid)
        if t is None:
            raise RpcError(ttrpc.NOT_FOUND, f"container {cid} does not exist")
        return t

    # --- create / start ---------------------------------------------------------------------------
    def create(self, req: Msg, _reply: Reply) -> bytes:
        cid, bundle = wire.text(req, "id"), wire.text(req, "bundle")
        if cid in self.tasks:
            raise RpcError(ttrpc.ALREADY_EXISTS, f"container {cid} already exists")
        if wire.text(req, "checkpoint"):
            raise RpcError(ttrpc.UNIMPLEMENTED, "restoring a checkpoint is not supported by pyrunc")
        opts = options.decode(wire.sub(req, "options"))
        root = os.path.join(opts.root, self.namespace) if opts.root else self.root
        t = Task(cid, bundle, Proc("", req), wire.subs(req, "rootfs"), root, opts)
        if opts.root:  # for `containerd-shim-pyrunc-v2 delete` after a shim died
            options.write_root(bundle, opts.root)
        if t.rootfs:
            t.mounted = mounts.mount_rootfs(t.rootfs, os.path.join(bundle, "rootfs"))
        try:
            c = self._create(t)
        except BaseException:
            if t.mounted:
                mounts.unmount_rootfs(t.mounted)
            raise
        t.init.pid = c.pid
        self.tasks[cid] = t
        self.by_pid[t.init.pid] = (t, t.init)
        self._watch_oom(t, c)
        self.events.publish("TaskCreate", {
            "container_id": cid, "bundle": bundle, "rootfs": t.rootfs, "io": t.init.io_msg(),
            "pid": t.init.pid})
        return wire.encode(m.CREATE_TASK_RESPONSE, {"pid": t.init.pid})

    def _create(self, t: Task) -> Container:
        from pyrunc.container.create import CreateOptions, create

        p = t.init
        # state.json is written atomically but not fsynced (3-4 ms on this disk): the shim keeps
        # its tasks in memory, and the state only serves the `delete` after a shim crash, which
        # a machine crash, the one thing fsync guards against, makes moot (runc does not fsync).
        opts = CreateOptions(bundle=t.bundle, own_console=p.terminal, durable_state=False,
                             no_pivot=t.opts.no_pivot_root, no_new_keyring=t.opts.no_new_keyring,
                             systemd_cgroup=t.opts.systemd_cgroup)
        fds, shim_side = stdio.child_fds(p.stdin, p.stdout, p.stderr, p.terminal,
                                         t.opts.io_owner)
        c = _start_child(fds, shim_side,
                         lambda: stdio.with_stdio(fds, lambda: create(t.root, t.id, opts)))
        if opts.console_ours is not None:
            from pyrunc.linux import console

            self._attach(p, shim_side, console.recv_master(opts.console_ours))
        else:
            self._attach(p, shim_side, -1)
        return c

    def _attach(self, p: Proc, shim_side: list[int], master: int) -> None:
        fin, other = shim_side[:2]
        for i in range(2, len(shim_side), 2):  # io_uid/io_gid: the output pipes, copied
            stdio.Pump(self.loop, shim_side[i], shim_side[i + 1])
        if master >= 0:
            p.master = master
            if fin >= 0:
                p.stdin_pump = stdio.Pump(self.loop, fin, os.dup(master))
            p.output_pump = stdio.Pump(self.loop, master, other, close_src=False,
                                       done=lambda: self._close_master(p))
        elif fin >= 0:
            p.stdin_pump = stdio.Pump(self.loop, fin, other)

    def _close_master(self, p: Proc) -> None:
        if p.master >= 0:
            os.close(p.master)
            p.master = -1

    def start(self, req: Msg, _reply: Reply) -> bytes:
        t = self.task(req)
        exec_id = wire.text(req, "exec_id")
        if exec_id:
            p = t.proc(exec_id)
            p.pid = self._start_exec(t, p)
            self.by_pid[p.pid] = (t, p)
            self.events.publish("TaskExecStarted", {"container_id": t.id, "exec_id": exec_id,
                                                    "pid": p.pid})
        else:
            from pyrunc.container import start

            try:
                start.start(t.root, t.id)
            except PyruncError as exc:
                raise _error(exc) from exc
            self.events.publish("TaskStart", {"container_id": t.id, "pid": t.init.pid})
        return wire.encode(m.START_RESPONSE, {"pid": t.proc(exec_id).pid})

    # --- exec -------------------------------------------------------------------------------------
    def exec(self, req: Msg, _reply: Reply) -> bytes:
        t = self.task(req)
        exec_id = wire.text(req, "exec_id")
        if exec_id in t.execs:
            raise RpcError(ttrpc.ALREADY_EXISTS, f"id {exec_id}: already exists")
        if t.init.exited:
            raise RpcError(ttrpc.FAILED_PRECONDITION, "container must be created or running")
        p = Proc(exec_id, req)
        try:
            p.spec = jsonfast.loads(wire.raw(wire.sub(req, "spec"), "value"))
        except ValueError as exc:
            raise RpcError(ttrpc.INVALID_ARGUMENT, f"exec {exec_id}: spec: {exc}") from exc
        if not isinstance(p.spec, dict):
            raise RpcError(ttrpc.INVALID_ARGUMENT, f"exec {exec_id}: spec is not a process")
        t.execs[exec_id] = p
        self.events.publish("TaskExecAdded", {"container_id": t.id, "exec_id": exec_id})
        return b""

    def _start_exec(self, t: Task, p: Proc) -> int:
        from pyrunc import container
        from pyrunc.ops.exec import ExecOptions, exec_process

        if p.pid:
            raise RpcError(ttrpc.FAILED_PRECONDITION, f"process {p.exec_id} already started")
        self.seq += 1
        pid_file = os.path.join(t.root, f".exec-{os.getpid()}-{self.seq}.pid")
        listener, sock_path = stdio.console_listener(self.seq) if p.terminal else (None, None)
        opts = ExecOptions(detach=True, pid_file=pid_file, console_socket=sock_path)
        spec = p.spec or {}
        fds, shim_side = stdio.child_fds(p.stdin, p.stdout, p.stderr, p.terminal,
                                         t.opts.io_owner)

        def start() -> tuple[int, int]:  # the exec'd pid and the pty's master (or -1)
            c = container.load(t.root, t.id)
            stdio.with_stdio(fds, lambda: exec_process(c, spec, opts))
            with open(pid_file) as f:
                pid = int(f.read())
            os.unlink(pid_file)
            return pid, stdio.accept_master(listener) if listener is not None else -1

        try:
            pid, master = _start_child(fds, shim_side, start)
        finally:
            if listener is not None:
                listener.close()
        self._attach(p, shim_side, master)
        return pid

    # --- signals, state, wait ---------------------------------------------------------------------
    def kill(self, req: Msg, _reply: Reply) -> bytes:
        t = self.task(req)
        p = t.proc(wire.text(req, "exec_id"))
        sig = wire.num(req, "signal") or _signal.SIGKILL
        if p is t.init:
            from pyrunc.ops import kill

            if p.exited and not wire.flag(req, "all"):
                raise RpcError(ttrpc.NOT_FOUND, "process already finished")
            try:
                kill.kill(t.root, t.id, sig, wire.flag(req, "all"))
            except PyruncError as exc:
                if "not running" in str(exc):
                    raise RpcError(ttrpc.NOT_FOUND, "process already finished") from exc
                raise _error(exc) from exc
            return b""
        if p.exited or not p.pid:
            raise RpcError(ttrpc.NOT_FOUND, "process already finished")
        try:
            fd = os.pidfd_open(p.pid)
            try:
                _signal.pidfd_send_signal(fd, sig)
            finally:
                os.close(fd)
        except ProcessLookupError as exc:
            raise RpcError(ttrpc.NOT_FOUND, "process already finished") from exc
        return b""

    def _status(self, t: Task, p: Proc) -> int:
        if p.exited:
            return m.STOPPED
        if p is not t.init:
            return m.RUNNING if p.pid else m.CREATED
        from pyrunc import container

        try:
            return _STATUS.get(container.load(t.root, t.id).status(), m.UNKNOWN)
        except PyruncError:
            return m.STOPPED

    def state(self, req: Msg, _reply: Reply) -> bytes:
        t = self.task(req)
        p = t.proc(wire.text(req, "exec_id"))
        resp: Msg = {"id": t.id if p is t.init else p.exec_id, "bundle": t.bundle, "pid": p.pid,
                     "status": self._status(t, p), "exec_id": p.exec_id, **p.io_msg()}
        if p.exited:
            resp["exit_status"] = p.exit_status
            resp["exited_at"] = timestamp(p.exited_ns)
        return wire.encode(m.STATE_RESPONSE, resp)

    def wait(self, req: Msg, reply: Reply) -> bytes | None:
        p = self.task(req).proc(wire.text(req, "exec_id"))
        if p.exited:
            return _wait_response(p)
        p.waiters.append(reply)
        return None

    def reap(self) -> None:
        """SIGCHLD: reap every child (orphans of the containers too, as their subreaper)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._exited(pid, status)

    def _exited(self, pid: int, status: int) -> None:
        found = self.by_pid.pop(pid, None)
        if found is None:
            return  # an orphan of a container (we are its subreaper), or a helper of pyrunc
        t, p = found
        p.exit_status, p.exited_ns = exit_code(status), time.time_ns()
        self.events.publish("TaskExit", {
            "container_id": t.id, "id": p.exec_id or t.id, "pid": pid,
            "exit_status": p.exit_status, "exited_at": timestamp(p.exited_ns)})
        payload = _wait_response(p)
        for reply in p.waiters:
            reply.ok(payload)
        p.waiters.clear()

    # --- delete -----------------------------------------------------------------------------------
    def delete(self, req: Msg, _reply: Reply) -> bytes:
        t = self.task(req)
        exec_id = wire.text(req, "exec_id")
        if exec_id:
            p = t.proc(exec_id)
            if p.pid and not p.exited:
                raise RpcError(ttrpc.FAILED_PRECONDITION, f"cannot delete running process {exec_id}")
            p.close_io()
            del t.execs[exec_id]
            return _delete_response(p)
        p = t.init
        status = self._status(t, p)
        if status in (m.RUNNING, m.PAUSED):
            raise RpcError(ttrpc.FAILED_PRECONDITION, f"cannot delete running task {t.id}")
        self._destroy(t)
        self.events.publish("TaskDelete", {
            "container_id": t.id, "id": t.id, "pid": p.pid, "exit_status": max(p.exit_status, 0),
            "exited_at": timestamp(p.exited_ns)})
        return _delete_response(p)

    def _destroy(self, t: Task) -> None:
        from pyrunc.container import destroy

        try:
            destroy.delete(t.root, t.id, force=True)
        except PyruncError as exc:
            raise _error(exc) from exc
        p = t.init
        if not p.exited and p.pid:  # created, never started: the init was killed just now
            try:
                pid, status = os.waitpid(p.pid, 0)
                self._exited(pid, status)
            except ChildProcessError:
                p.exit_status, p.exited_ns = 128 + _signal.SIGKILL, time.time_ns()
        for proc in (p, *t.execs.values()):
            proc.close_io()
        if t.oom_fd >= 0:
            self.loop.remove(t.oom_fd)
            os.close(t.oom_fd)
        if t.mounted:
            mounts.unmount_rootfs(t.mounted)
        del self.tasks[t.id]
        for pid, (owner, _) in list(self.by_pid.items()):
            if owner is t:
                del self.by_pid[pid]

    # --- the rest ---------------------------------------------------------------------------------
    def pids(self, req: Msg, _reply: Reply) -> bytes:
        from pyrunc.ops import ps

        t = self.task(req)
        try:
            found = ps.ps_pids(t.root, t.id)
        except PyruncError as exc:
            raise _error(exc) from exc
        execs = {p.pid: p.exec_id for p in t.execs.values() if p.pid}
        procs: list[Msg] = []
        for pid in found:
            info: Msg = {"pid": pid}
            if pid in execs:  # runc's shim names exec'd processes with a ProcessDetails
                info["info"] = {"type_url": "containerd.runc.v1.ProcessDetails",
                                "value": wire.encode(((1, "exec_id", "s", None),),
                                                     {"exec_id": execs[pid]})}
            procs.append(info)
        return wire.encode(m.PIDS_RESPONSE, {"processes": procs})

    def pause(self, req: Msg, _reply: Reply) -> bytes:
        return self._freeze(req, resume=False)

    def resume(self, req: Msg, _reply: Reply) -> bytes:
        return self._freeze(req, resume=True)

    def _freeze(self, req: Msg, *, resume: bool) -> bytes:
        """pause or resume the task's container, then publish TaskPaused or TaskResumed."""
        from pyrunc.ops import pause

        t = self.task(req)
        try:
            (pause.resume if resume else pause.pause)(t.root, t.id)
        except PyruncError as exc:
            raise _error(exc) from exc
        self.events.publish("TaskResumed" if resume else "TaskPaused", {"container_id": t.id})
        return b""

    def checkpoint(self, req: Msg, _reply: Reply) -> bytes:
        raise RpcError(ttrpc.UNIMPLEMENTED,
                       f"checkpoint {wire.text(req, 'id')}: pyrunc does not checkpoint containers "
                       "(no CRIU support)")

    def resize_pty(self, req: Msg, _reply: Reply) -> bytes:
        from pyrunc.linux import console

        p = self.task(req).proc(wire.text(req, "exec_id"))
        if p.master < 0:
            raise RpcError(ttrpc.FAILED_PRECONDITION, "the process has no terminal")
        console.set_size(p.master, {"width": wire.num(req, "width"),
                                    "height": wire.num(req, "height")})
        return b""

    def close_io(self, req: Msg, _reply: Reply) -> bytes:
        p = self.task(req).proc(wire.text(req, "exec_id"))
        if wire.flag(req, "stdin"):
            p.close_io()
        return b""

    def update(self, req: Msg, _reply: Reply) -> bytes:
        from pyrunc.ops import update

        t = self.task(req)
        try:
            resources = jsonfast.loads(wire.raw(wire.sub(req, "resources"), "value") or b"{}")
        except ValueError as exc:
            raise RpcError(ttrpc.INVALID_ARGUMENT, f"update {t.id}: resources: {exc}") from exc
        if not isinstance(resources, dict):
            raise RpcError(ttrpc.INVALID_ARGUMENT, f"update {t.id}: resources is not an object")
        try:
            update.update(t.root, t.id, resources)
        except PyruncError as exc:
            raise _error(exc) from exc
        return b""

    def stats(self, req: Msg, _reply: Reply) -> bytes:
        from pyrunc import container
        from pyrunc.shim import metrics

        t = self.task(req)
        try:
            data = metrics.stats_any(container.load(t.root, t.id).cgroup())
        except PyruncError as exc:
            raise _error(exc) from exc
        return wire.encode(m.STATS_RESPONSE, {"stats": data})

    def connect(self, req: Msg, _reply: Reply) -> bytes:
        t = self.tasks.get(wire.text(req, "id"))
        return wire.encode(m.CONNECT_RESPONSE, {"shim_pid": os.getpid(),
                                                "task_pid": t.init.pid if t else 0,
                                                "version": VERSION})

    def shutdown(self, _req: Msg, _reply: Reply) -> bytes:
        if not self.tasks:
            self.on_empty()
        return b""

    # --- OOM --------------------------------------------------------------------------------------
    def _watch_oom(self, t: Task, c: Container) -> None:
        """cgroup v1: an eventfd on memory.oom_control; each OOM kill publishes TaskOOM."""
        try:
            dirs = c.cgroup().paths()
            mem = dirs.get("memory")
            if not mem or dirs.get("") == mem:
                return
            efd = posix.eventfd(0, posix.EFD_CLOEXEC | posix.EFD_NONBLOCK)
            ofd = os.open(os.path.join(mem, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
            try:
                with open(os.path.join(mem, "cgroup.event_control"), "w") as f:
                    f.write(f"{efd} {ofd}")
            finally:
                os.close(ofd)
        except (OSError, PyruncError) as exc:
            log.debug(f"{t.id}: no OOM notifications: {exc}")
            return
        t.oom_fd = efd
        from pyrunc.shim.loop import IN

        self.loop.add(efd, IN, lambda _ev: self._on_oom(t))

    def _on_oom(self, t: Task) -> None:
        try:
            posix.eventfd_read(t.oom_fd)
        except OSError:
            return
        if t.id in self.tasks:
            self.events.publish("TaskOOM", {"container_id": t.id})


def _wait_response(p: Proc) -> bytes:
    return wire.encode(m.WAIT_RESPONSE, {"exit_status": p.exit_status,
                                         "exited_at": timestamp(p.exited_ns)})


def _delete_response(p: Proc) -> bytes:
    return wire.encode(m.DELETE_RESPONSE, {"pid": p.pid, "exit_status": max(p.exit_status, 0),
                                           "exited_at": timestamp(p.exited_ns or time.time_ns())})
