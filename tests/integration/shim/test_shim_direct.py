"""The runtime options and the shim daemon's placement, through the shim itself: `start` run as
containerd runs it (options on stdin), then the task API over ttrpc with CreateTaskRequest.options,
on a bundle of our own; and through ctr, the options ctr sends to a runtime like ours."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess  # noqa: TID251 (tests start real processes)
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from daemons import wait_until
from images import IMAGE
from shim_fixtures import REPO, SHIM, SHIM_STATE, ShimContainerd, shim_dir
from testlib import Bundle

from pyrunc.shim import messages as m
from pyrunc.shim import ttrpc, wire
from pyrunc.shim.main import socket_address

pytestmark = pytest.mark.requires("root", "busybox")
TASK = "containerd.task.v2.Task"


@dataclass
class DirectShim:
    """A shim daemon started by `start` as containerd would, with no containerd behind it."""

    top: Path
    namespace: str
    address: str = ""
    pid: int = 0
    # (pyrunc state root, id) of each task created, force-deleted at teardown if still there
    created: list[tuple[Path, str]] = field(default_factory=list)

    def start(self, cwd: Path, options: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        argv = [str(shim_dir() / SHIM), "-namespace", self.namespace, "-address",
                str(self.top / "containerd.sock"), "-publish-binary", "/usr/bin/containerd",
                "-id", "x", "start"]
        env = {k: v for k, v in os.environ.items() if k != "TTRPC_ADDRESS"}
        env["PYRUNC_SHIM_IDLE"] = "30"
        done = subprocess.run(argv, cwd=cwd, input=options, capture_output=True, env=env,
                              timeout=60, check=False)
        if done.returncode == 0:
            self.address = done.stdout.decode()
            resp = wire.decode(m.CONNECT_RESPONSE, self.call("Connect", m.CONNECT_REQUEST, {}))
            self.pid = wire.num(resp, "shim_pid")
        return done

    def call(self, method: str, table: wire.Table, request: wire.Msg) -> bytes:
        client = ttrpc.Client(self.address, timeout=30)
        try:
            return client.call(TASK, method, wire.encode(table, request))
        finally:
            client.close()

    def stop(self) -> None:
        for root, cid in self.created:
            if (root / cid).exists():
                subprocess.run([str(REPO / "bin" / "pyrunc"), "--root", str(root), "delete",
                                "--force", cid], capture_output=True, timeout=60, check=False)
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            wait_until(lambda: not Path(f"/proc/{self.pid}").exists() or
                       Path(f"/proc/{self.pid}/stat").read_text().split(") ")[1][0] == "Z",
                       "shim gone", timeout=10)
        path = socket_address(str(self.top / "containerd.sock"), self.namespace)[len("unix://"):]
        Path(path).unlink(missing_ok=True)
        shutil.rmtree(SHIM_STATE / self.namespace, ignore_errors=True)


@pytest.fixture
def shim(tmp_path: Path) -> Iterator[DirectShim]:
    s = DirectShim(tmp_path, "shim-opt-" + uuid.uuid4().hex[:8])
    yield s
    s.stop()


def runc_options(**fields: object) -> wire.Msg:
    return {"type_url": m.RUNC_OPTIONS_TYPE, "value": wire.encode(m.RUNC_OPTIONS, fields)}


def _oom_score(pid: int | str) -> int:
    return int(Path(f"/proc/{pid}/oom_score_adj").read_text())


def test_the_shim_scores_one_above_containerd(shim: DirectShim, tmp_path: Path) -> None:
    """runc's shim: oom_score_adj of containerd (the parent of `start`, here this test) + 1."""
    done = shim.start(tmp_path)
    assert done.returncode == 0, done.stderr
    assert _oom_score(shim.pid) == min(_oom_score("self") + 1, 1000)


def _read_until(fd: int, end: bytes, timeout: float = 20) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while not out.endswith(end) and time.monotonic() < deadline:
        try:
            out += os.read(fd, 4096)
        except BlockingIOError:
            time.sleep(0.02)
    return out


def test_root_and_io_owner_options(shim: DirectShim, tmp_path: Path,
                                   make_bundle: Callable[..., Bundle]) -> None:
    bundle = make_bundle("sh", "-c", "stat -L -c %u:%g /proc/self/fd/1 /proc/self/fd/2; echo done")
    cid = "opt-" + uuid.uuid4().hex[:8]
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    state = tmp_path / "state"
    assert shim.start(bundle.path).returncode == 0
    shim.created.append((state / shim.namespace, cid))
    try:
        shim.call("Create", m.CREATE_TASK_REQUEST, {
            "id": cid, "bundle": str(bundle.path), "stdout": str(fifo), "stderr": str(fifo),
            "options": runc_options(root=str(state), io_uid=1234, io_gid=1235,
                                    no_new_keyring=True)})
        # pyrunc's state is under <root>/<namespace>, and the bundle says so for a later delete
        assert (state / shim.namespace / cid / "state.json").exists()
        assert (bundle.path / "options.json").read_text() == f'{{"root":"{state}"}}'
        shim.call("Start", m.START_REQUEST, {"id": cid})
        waited = wire.decode(m.WAIT_RESPONSE, shim.call("Wait", m.WAIT_REQUEST, {"id": cid}))
        assert waited.get("exit_status", 0) == 0
        # stdout and stderr were pipes owned by io_uid:io_gid, copied into the FIFO
        assert _read_until(reader, b"done\n") == b"1234:1235\n1234:1235\ndone\n"
        shim.call("Delete", m.DELETE_REQUEST, {"id": cid})
        assert not (state / shim.namespace / cid).exists()
    finally:
        os.close(reader)


def _refused_create(shim: DirectShim, make_bundle: Callable[..., Bundle],
                    **options: object) -> tuple[str, ttrpc.RpcError]:
    """A Create with these runc options, which must fail and leave no state: the id and the
    error."""
    bundle = make_bundle("true")
    cid = "opt-" + uuid.uuid4().hex[:8]
    assert shim.start(bundle.path).returncode == 0
    shim.created.append((SHIM_STATE / shim.namespace, cid))
    with pytest.raises(ttrpc.RpcError) as err:
        shim.call("Create", m.CREATE_TASK_REQUEST, {
            "id": cid, "bundle": str(bundle.path), "options": runc_options(**options)})
    assert not (SHIM_STATE / shim.namespace / cid).exists()
    return cid, err.value


def test_a_refused_option_fails_create_and_leaves_nothing(
        shim: DirectShim, make_bundle: Callable[..., Bundle]) -> None:
    cid, error = _refused_create(shim, make_bundle, binary_name="/usr/sbin/runc")
    assert error.code == ttrpc.INVALID_ARGUMENT
    assert error.message.startswith("options.binary_name: '/usr/sbin/runc': "), error
    with pytest.raises(ttrpc.RpcError) as err:
        shim.call("State", m.STATE_REQUEST, {"id": cid})
    assert err.value.code == ttrpc.NOT_FOUND


def test_systemd_cgroup_reaches_pyrunc_which_refuses_the_driver(
        shim: DirectShim, make_bundle: Callable[..., Bundle]) -> None:
    _, error = _refused_create(shim, make_bundle, systemd_cgroup=True)
    assert "systemd cgroup driver" in error.message, error


def test_start_refuses_options_before_starting_a_shim(shim: DirectShim, tmp_path: Path) -> None:
    any_msg = wire.encode(m.ANY, runc_options(criu_path="/usr/sbin/criu"))
    done = shim.start(tmp_path, any_msg)
    assert done.returncode == 1
    assert done.stderr.decode().startswith(f"{SHIM}: options.criu_path: '/usr/sbin/criu': ")
    path = socket_address(str(shim.top / "containerd.sock"), shim.namespace)[len("unix://"):]
    assert not Path(path).exists()
    assert not (tmp_path / "address").exists()


def _cgroup_of(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if key in controllers.split(","):
            return path
    return ""


def test_shim_cgroup_option_places_the_shim(shim: DirectShim, tmp_path: Path) -> None:
    name = "shim-opt-cg-" + uuid.uuid4().hex[:8]
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    cgroup = Path("/sys/fs/cgroup") / ("" if v2 else "pids") / name
    cgroup.mkdir()
    try:
        done = shim.start(tmp_path, wire.encode(m.ANY, runc_options(shim_cgroup="/" + name)))
        assert done.returncode == 0, done.stderr
        assert _cgroup_of(shim.pid, "" if v2 else "pids") == "/" + name
    finally:
        shim.stop()
        shim.pid = 0
        wait_until(lambda: not (cgroup / "cgroup.procs").read_text().strip(), "cgroup empty",
                   timeout=10)
        cgroup.rmdir()


# --- through ctr: the options ctr sends to a runtime not named io.containerd.runc.* --------------
@pytest.mark.requires("cmd:containerd", "cmd:ctr")
def test_ctr_no_pivot_is_honoured(shim_containerd: ShimContainerd) -> None:
    """--no-pivot arrives as containerd.linux.runc.CreateOptions{no_pivot_root}: the container
    runs (chroot rather than pivot_root, as runc --no-pivot)."""
    cid = "shim-" + uuid.uuid4().hex[:10]
    try:
        done = shim_containerd.ctr("run", "--rm", "--no-pivot", *shim_containerd.run_flags(),
                                   IMAGE, cid, "echo", "no-pivot")
        assert (done.returncode, done.stdout) == (0, "no-pivot\n"), done.stderr
    finally:
        shim_containerd.remove(cid)


@pytest.mark.requires("cmd:containerd", "cmd:ctr")
def test_ctr_runtime_config_path_is_refused_by_name(shim_containerd: ShimContainerd) -> None:
    cid = "shim-" + uuid.uuid4().hex[:10]
    try:
        done = shim_containerd.ctr("run", "--rm", "--runtime-config-path", "/etc/pyrunc.toml",
                                   *shim_containerd.run_flags(), IMAGE, cid, "true")
        assert done.returncode != 0
        assert "options.config_path: '/etc/pyrunc.toml': the pyrunc shim reads no runtime " \
               "config file" in done.stderr, done.stderr
        assert not (SHIM_STATE / shim_containerd.namespace / cid).exists()
    finally:
        shim_containerd.remove(cid)


# --- the launcher's sh answers `start` when the namespace's shim is up ------------------------------
def _traced_start(shim: DirectShim, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`start` under `sh -x`: the trace shows whether sh answered or handed over to Python."""
    return subprocess.run(
        ["sh", "-x", str(shim_dir() / SHIM), "-namespace", shim.namespace, "-address",
         str(shim.top / "containerd.sock"), "-publish-binary", "/usr/bin/containerd", "-id", "y",
         "start"], cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYRUNC_SHIM_IDLE": "30"})


def test_sh_answers_start_from_the_live_shims_info(shim: DirectShim, tmp_path: Path) -> None:
    assert shim.start(tmp_path).returncode == 0  # Python: binds, forks the shim
    info = SHIM_STATE / shim.namespace / "shim.info"
    wait_until(info.exists, "the shim's info file", timeout=10)
    assert info.read_text().split()[1:3] == [shim.address, str(shim.pid)]
    again = tmp_path / "again"
    again.mkdir()
    done = _traced_start(shim, again)
    assert (done.returncode, done.stdout) == (0, shim.address), done.stderr
    assert "python3" not in done.stderr  # sh answered: no interpreter was started
    assert (again / "address").read_text() == shim.address


def test_a_dead_shims_info_goes_to_python(shim: DirectShim, tmp_path: Path) -> None:
    """SIGKILLed, the shim leaves its info file and socket: sh sees the pid gone and hands over
    to Python, which starts a new shim."""
    assert shim.start(tmp_path).returncode == 0
    info = SHIM_STATE / shim.namespace / "shim.info"
    wait_until(info.exists, "the shim's info file", timeout=10)
    old = shim.pid
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{old}").exists() or
               Path(f"/proc/{old}/stat").read_text().split(") ")[1][0] == "Z", "shim gone",
               timeout=10)
    done = _traced_start(shim, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "python3" in done.stderr
    resp = wire.decode(m.CONNECT_RESPONSE, shim.call("Connect", m.CONNECT_REQUEST, {}))
    shim.pid = wire.num(resp, "shim_pid")
    assert shim.pid != old
    wait_until(lambda: info.exists() and info.read_text().split()[2] == str(shim.pid),
               "the new shim's info file", timeout=10)
