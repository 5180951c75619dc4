"""Private instances of containerd, podman and dockerd, each confined to one temp directory.

Nothing here touches the default /run/containerd, /var/lib/docker, /var/run/docker.sock or
podman's default storage, so these run beside a real installation and beside other test runs.
Each `start_*` waits (bounded) until its daemon answers; `stop()` kills what is left, unmounts
everything mounted under the temp directory, and removes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess  # noqa: TID251 (test helper, not the runtime's hot path)
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

Done = subprocess.CompletedProcess
JSON_RUNTIMES = ("runc", "crun", "pyrunc")


def run(argv: Sequence[str], *, timeout: float = 30, env: dict[str, str] | None = None,
        input: str | None = None) -> Done[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          env=env, input=input, check=False)


def in_terminal(argv: Sequence[str], *, timeout: float = 60,
                env: dict[str, str] | None = None) -> Done[str]:
    """Run argv with a pty as its controlling terminal (`ctr -t` insists on one)."""
    return run(["script", "-qec", subprocess.list2cmdline(list(argv)), "/dev/null"],
               timeout=timeout, env=env)


def need(*commands: str) -> None:
    """Skip the test unless each command is on PATH and we are root."""
    for cmd in commands:
        if not shutil.which(cmd):
            pytest.skip(f"needs {cmd} on PATH")
    if os.geteuid() != 0:
        pytest.skip("needs root")


class Daemon(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


D = TypeVar("D", bound=Daemon)


@contextlib.contextmanager
def started(daemon: D, load: Callable[[D], Done[str]]) -> Iterator[D]:
    """`daemon` started, the test image put into it by `load`, and stopped at the end."""
    try:
        daemon.start()
        done = load(daemon)
        assert done.returncode == 0, f"{done.args} failed: {done.stderr}"
        yield daemon
    finally:
        daemon.stop()


def wait_until(ready: Callable[[], bool], what: str, log: Path | None = None,
               timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} not ready after {timeout}s\n{tail}")


def _mount_points_under(top: Path) -> list[str]:
    prefix = str(top).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    # mountinfo escapes blanks as octal; our temp paths have none.
    return [p for p in points if p.startswith(prefix) or p == str(top)]


def unmount_under(top: Path) -> None:
    """Unmount everything below `top`, newest first (dockerd leaves --data-root bind-mounted)."""
    for point in reversed(_mount_points_under(top)):
        if run(["umount", point]).returncode != 0:
            run(["umount", "-l", point])


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def _spawn(argv: Sequence[str], log: Path, env: dict[str, str] | None = None
           ) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def quietly(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 15) -> None:
    """Best-effort cleanup: a broken runtime may fail or hang; teardown goes on regardless."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        run(argv, env=env, timeout=timeout)


def _pids_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
    return pids


def _kill(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _cgroup_dirs(rel: str) -> list[Path]:
    """Every directory of cgroup `rel` and below, in every mounted hierarchy, deepest first."""
    found: list[Path] = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / rel.strip("/")
        if top.is_dir() and not top.is_symlink():
            found += [Path(d) for d, _, _ in os.walk(top)]
    return sorted(found, key=lambda d: len(d.parts), reverse=True)


def kill_cgroup(rel: str) -> None:
    """Kill whatever still runs in cgroup `rel` (a broken runtime's leftovers) and remove it."""
    dirs = _cgroup_dirs(rel)
    for d in dirs:
        with contextlib.suppress(OSError):
            if d.parts[4] == "freezer":  # a frozen task takes its SIGKILL only once thawed
                (d / "freezer.state").write_text("THAWED")
            _kill([int(p) for p in (d / "cgroup.procs").read_text().split()])
    for d in dirs:
        with contextlib.suppress(OSError, TimeoutError):
            wait_until(_emptied(d), str(d), timeout=5)
            d.rmdir()


def _emptied(cgroup: Path) -> Callable[[], bool]:
    return lambda: not (cgroup / "cgroup.procs").read_text().strip()


def remove_tree(top: Path, cgroup: str) -> None:
    """Kill what our daemons left (shims, conmon, workloads), unmount, and delete `top`."""
    _kill(_pids_mentioning(str(top)))
    kill_cgroup(cgroup)
    unmount_under(top)
    shutil.rmtree(top, ignore_errors=True)


@dataclass
class Containerd:
    """containerd with a generated config; `ctr(...)` talks to it in a private namespace."""

    top: Path
    proc: subprocess.Popen[bytes] | None = None
    # ctr's containers go to the cgroup /<namespace>/<id>: unique, so teardown can sweep it
    namespace: str = field(default_factory=lambda: "cl-" + uuid.uuid4().hex[:8])

    @property
    def sock(self) -> Path:
        return self.top / "containerd.sock"

    def top_level(self) -> list[str]:
        """The config's settings beside root and state."""
        # CRI is not under test; it would also ask for oom_score_adj -998, beyond this host.
        return ['disabled_plugins = ["io.containerd.grpc.v1.cri"]']

    def config(self) -> str:
        return "\n".join([
            "version = 2",
            f'root = "{self.top}/root"',
            f'state = "{self.top}/state"',
            *self.top_level(),
            "[grpc]",
            f'  address = "{self.sock}"',
            "[ttrpc]",
            f'  address = "{self.top}/containerd.sock.ttrpc"',
            "[debug]",
            f'  address = "{self.top}/debug.sock"',
            "",
        ])

    def start(self) -> None:
        cfg = self.top / "config.toml"
        cfg.write_text(self.config())
        log = self.top / "containerd.log"
        self.proc = _spawn(self.command(cfg), log, self.environ())
        wait_until(lambda: self.ctr("version", timeout=10).returncode == 0, "containerd", log)

    def command(self, cfg: Path) -> list[str]:
        return ["containerd", "--config", str(cfg)]

    def environ(self) -> dict[str, str] | None:
        """containerd's environment (None: ours)."""
        return None

    def argv(self, *args: str) -> list[str]:
        return ["ctr", "-a", str(self.sock), "-n", self.namespace, *args]

    def ctr(self, *args: str, timeout: float = 30) -> Done[str]:
        return run(self.argv(*args), timeout=timeout)

    def runc_options(self, runtime: str) -> list[str]:
        """`ctr run` flags: the runtime, and its --root and the I/O fifos kept under our dir."""
        return ["--runc-binary", runtime, "--runc-root", f"{self.top}/runc", *self.fifo_dir()]

    def fifo_dir(self) -> list[str]:
        return ["--fifo-dir", f"{self.top}/fifo"]

    def remove(self, cid: str) -> None:
        """Kill and delete task and container `cid`, whatever state they are in."""
        quietly(self.argv("task", "kill", "-s", "SIGKILL", "--all", cid))
        quietly(self.argv("task", "delete", "--force", cid))
        quietly(self.argv("container", "delete", cid))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                for cid in self.ctr("container", "list", "-q").stdout.split():
                    self.remove(cid)
            stop_process(self.proc)
        remove_tree(self.top, self.namespace)
        # containerd 1.6's shims put their sockets in /run/containerd/s whatever the config says
        for leftover in ("/run/containerd/s", "/run/containerd"):
            with contextlib.suppress(OSError):
                os.rmdir(leftover)


def task_fields(cd: Containerd, cid: str) -> list[str]:
    """The row of `ctr task ls` for cid (TASK PID STATUS); [] when there is no task."""
    for line in cd.ctr("task", "ls").stdout.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == cid:
            return fields
    return []


def task_status(cd: Containerd, cid: str) -> str:
    """The STATUS column of `ctr task ls` for cid ("" when there is no task)."""
    fields = task_fields(cd, cid)
    return fields[-1] if fields else ""


def check_exec(cd: Containerd, cid: str) -> None:
    """`ctr task exec` into task `cid`, which runs `sleep 100000`: its output, the task's pid 1
    seen from inside, and its exit code come back."""
    done = cd.ctr("task", "exec", *cd.fifo_dir(), "--exec-id", "e1", cid,
                  "sh", "-c", "echo exec-$((6*7)); cat /proc/1/cmdline; exit 5")
    assert (done.returncode, done.stdout) == (5, "exec-42\nsleep\x00100000\x00"), done.stderr


def check_exec_tty(cd: Containerd, cid: str) -> None:
    """`ctr task exec -t` into task `cid`: the process has a terminal, and its exit code returns."""
    done = in_terminal(cd.argv("task", "exec", *cd.fifo_dir(), "-t", "--exec-id", "e2", cid,
                               "sh", "-c", "tty; exit 6"))
    assert done.returncode == 6, done.stdout
    assert "/dev/pts/" in done.stdout


# A container command that answers SIGTERM: "up" at start, "got-TERM" and exit 0 on TERM.
TERM_SERVER = "trap 'echo got-TERM; exit 0' TERM; echo up; while :; do sleep 1; done"


def stop_term_server(podman: Callable[..., Done[str]], runtime: str, name: str) -> None:
    """`podman stop` container `name` running TERM_SERVER (`podman`: a podman(runtime, *args)
    call): the stop succeeds, TERM reached the trap (exit 0) and the log holds both lines."""
    stop = podman(runtime, "stop", "--time", "30", name)
    assert stop.returncode == 0, stop.stderr
    status = podman(runtime, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)
    assert status.stdout.split() == ["exited", "0"]  # TERM reached the trap
    logs = podman(runtime, "logs", name)
    assert logs.stdout.split() == ["up", "got-TERM"]


@dataclass
class Podman:
    """podman with private containers.conf and storage.conf; `podman(rt, ...)` uses --runtime rt."""

    top: Path
    env: dict[str, str] = field(default_factory=dict)
    used_runtimes: set[str] = field(default_factory=set)
    cgroup_parent: str = field(default_factory=lambda: "/cl-podman-" + uuid.uuid4().hex[:8])

    def containers_table(self) -> list[str]:
        return [
            "[containers]",
            'cgroupns = "private"',
            'netns = "none"',
            # root's hard limits here are below podman's defaults (1048576)
            'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]',
        ]

    def conf(self) -> str:
        return "\n".join([
            *self.containers_table(),
            "[engine]",
            'cgroup_manager = "cgroupfs"',
            'events_logger = "file"',
            f'events_logfile_path = "{self.top}/events.log"',
            f"runtime_supports_json = {list(JSON_RUNTIMES)!r}".replace("'", '"'),
            f'static_dir = "{self.top}/root/libpod"',
            f'volume_path = "{self.top}/root/volumes"',
            "[network]",
            f'network_config_dir = "{self.top}/networks"',
            "",
        ])

    def storage_conf(self) -> str:
        return "\n".join([
            "[storage]",
            'driver = "overlay"',
            f'graphroot = "{self.top}/root"',
            f'runroot = "{self.top}/runroot"',
            "",
        ])

    def start(self) -> None:
        (self.top / "containers.conf").write_text(self.conf())
        (self.top / "storage.conf").write_text(self.storage_conf())
        (self.top / "networks").mkdir(exist_ok=True)
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.top / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(self.top / "storage.conf"),
                    "TMPDIR": str(self.top / "tmp")}
        (self.top / "tmp").mkdir(exist_ok=True)

    def argv(self, runtime: str | None, *args: str) -> list[str]:
        rt = ["--runtime", runtime] if runtime else []
        return ["podman", "--root", f"{self.top}/root", "--runroot", f"{self.top}/runroot",
                "--tmpdir", f"{self.top}/podman-tmp", "--cgroup-manager", "cgroupfs",
                *self.flags(), *rt, *args]

    def flags(self) -> list[str]:
        """podman's global flags beyond storage and cgroups (the conf's [engine] has the rest)."""
        return []

    def podman(self, runtime: str | None, *args: str, timeout: float = 30) -> Done[str]:
        if runtime:
            self.used_runtimes.add(runtime)
        return run(self.argv(runtime, *args), timeout=timeout, env=self.env)

    def run(self, runtime: str, *args: str, timeout: float = 30) -> Done[str]:
        """`podman run` in our own cgroup parent, so teardown can sweep what a runtime left."""
        return self.podman(runtime, "run", "--cgroup-parent", self.cgroup_parent, *args,
                           timeout=timeout)

    def stop(self) -> None:
        # a container is removed with the runtime that created it
        for runtime in self.used_runtimes if self.env else ():
            quietly(self.argv(runtime, "rm", "--all", "--force", "--time", "0"), env=self.env)
        remove_tree(self.top, self.cgroup_parent)


@dataclass
class Dockerd:
    """dockerd (with the containerd it supervises) under one temp dir, plus named runtimes."""

    top: Path
    runtimes: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    cgroup_parent: str = field(default_factory=lambda: "/cl-docker-" + uuid.uuid4().hex[:8])
    config_file: str | None = None  # a daemon.json, e.g. contrib/docker/daemon.json as written

    @property
    def sock(self) -> Path:
        return self.top / "docker.sock"

    @classmethod
    def for_runtimes(cls, top: Path, paths: Sequence[str]) -> Dockerd:
        """Register each path under its own name ("runc" itself is reserved by dockerd)."""
        return cls(top, {f"cl-{i}-{Path(p).name}": p for i, p in enumerate(paths)})

    def runtime_name(self, path: str) -> str:
        return next(name for name, p in self.runtimes.items() if p == path)

    def daemon_argv(self) -> list[str]:
        argv = ["dockerd", "--data-root", f"{self.top}/data", "--exec-root", f"{self.top}/exec",
                "-H", f"unix://{self.sock}", "--pidfile", f"{self.top}/docker.pid",
                "--iptables=false", "--ip-masq=false", "--ip-forward=false", "--bridge=none",
                "--userland-proxy=false", "--storage-driver", "overlay2",
                "--cgroup-parent", self.cgroup_parent]
        for name, path in self.runtimes.items():
            argv += ["--add-runtime", f"{name}={path}"]
        if self.config_file:
            argv += ["--config-file", self.config_file]
        return argv

    def start(self) -> None:
        log = self.top / "dockerd.log"
        self.env = {**os.environ, "DOCKER_CONFIG": str(self.top / "cli")}
        self.proc = _spawn(self.daemon_argv(), log)
        wait_until(lambda: self.docker("version", timeout=10).returncode == 0, "dockerd", log)

    def argv(self, *args: str) -> list[str]:
        # /usr/local/bin/docker is a newer standalone CLI; this one matches Debian's dockerd.
        return ["/usr/bin/docker", "-H", f"unix://{self.sock}", *args]

    def docker(self, *args: str, timeout: float = 30) -> Done[str]:
        return run(self.argv(*args), timeout=timeout, env=self.env)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                ids = self.docker("ps", "-aq").stdout.split()
                if ids:
                    self.docker("rm", "-f", *ids, timeout=120)
            stop_process(self.proc, timeout=60)
        remove_tree(self.top, self.cgroup_parent)
