"""Each file of contrib/ used exactly as written, running a container through /usr/local/bin/pyrunc
(which `make install` links to the venv's launcher).

- contrib/podman/containers.conf: the whole file, unchanged, is the [engine] part of a private
  podman's containers.conf; `podman --runtime pyrunc` finds the runtime by that name.
- contrib/containerd/ctr-run.sh: run as it is against a private containerd (ctr reads
  CONTAINERD_ADDRESS and CONTAINERD_NAMESPACE).
- contrib/containerd/config.toml: imported into a private containerd's config with the CRI plugin
  on; a pod sandbox and a container with the handler of contrib/containerd/runtimeclass.yaml run
  through the CRI API (the small client of cri.py).
- contrib/docker/daemon.json: test_with_docker.py gives it to its private dockerd as written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess  # noqa: TID251 (tests start real processes)
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pytest
from cri import CRI, in_private_namespaces, runtime_handler, serving, sleeping_pod
from daemons import Containerd, Podman, remove_tree, run, started, stop_process, wait_until
from images import IMAGE, Images

pytestmark = pytest.mark.requires("root")

REPO = Path(__file__).resolve().parents[3]
CONTRIB = REPO / "contrib"
INSTALLED = "/usr/local/bin/pyrunc"


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    if not os.access(INSTALLED, os.X_OK):
        pytest.skip(f"needs `make install` ({INSTALLED})")


def _conmon_cmdline(podman: Podman, name: str) -> list[str]:
    pidfile = podman.podman(None, "inspect", "--format", "{{.ConmonPidFile}}", name).stdout.strip()
    pid = Path(pidfile).read_text().strip()
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


@dataclass
class ContribPodman(Podman):
    """podman whose containers.conf holds contrib/podman/containers.conf as it is; what our
    private instance needs beyond it goes in the other tables, or in flags."""

    def conf(self) -> str:
        return "\n".join([
            *self.containers_table(),
            "",
            (CONTRIB / "podman" / "containers.conf").read_text(),
        ])

    def flags(self) -> list[str]:
        return ["--events-backend", "file", "--network-config-dir", f"{self.top}/networks",
                "--volumepath", f"{self.top}/root/volumes"]


@pytest.fixture(scope="module")
def contrib_podman(client_images: Images, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[ContribPodman]:
    for cmd in ("podman", "conmon"):
        if not any(os.access(f"{d}/{cmd}", os.X_OK) for d in ("/usr/bin", "/usr/sbin")):
            pytest.skip(f"needs {cmd}")
    archive = str(client_images.oci_archive)
    with started(ContribPodman(tmp_path_factory.mktemp("cl-cp")),  # podman: runroot <= 50 chars
                 lambda c: c.podman(None, "load", "-i", archive, timeout=120)) as client:
        yield client


def test_podman_containers_conf_as_written(contrib_podman: ContribPodman, cl_id: str) -> None:
    podman = contrib_podman
    done = podman.run("pyrunc", "--rm", IMAGE, "sh", "-c", "echo contrib-$((6*7))")
    assert (done.returncode, done.stdout) == (0, "contrib-42\n"), done.stderr
    # the runtime conmon drives is the installed pyrunc, with the JSON log the file asks for
    done = podman.run("pyrunc", "-d", "--name", cl_id, IMAGE, "sleep", "600")
    assert done.returncode == 0, done.stderr
    try:
        argv = _conmon_cmdline(podman, cl_id)
        assert argv[argv.index("-r") + 1] == INSTALLED, argv
        assert "--log-format=json" in argv, argv
        info = podman.podman("pyrunc", "inspect", "--format", "{{.OCIRuntime}}", cl_id)
        assert info.stdout.strip() == "pyrunc"
    finally:
        podman.podman("pyrunc", "rm", "--force", "--time", "0", cl_id)
    # the runtime's own error reaches the user (runtime_supports_json)
    done = podman.run("pyrunc", "--rm", IMAGE, "/no/such/command")
    assert done.returncode == 127, done.stderr
    assert "/no/such/command" in done.stderr and "no such file" in done.stderr.lower()


def test_ctr_run_sh_as_written(containerd: Containerd, cl_id: str) -> None:
    fifo_existed = os.path.isdir("/run/containerd/fifo")
    env = {**os.environ, "CONTAINERD_ADDRESS": str(containerd.sock),
           "CONTAINERD_NAMESPACE": containerd.namespace}
    env.pop("PYRUNC", None)  # the script's default: the installed pyrunc
    state_root = f"/run/pyrunc/{containerd.namespace}"  # the script's --runc-root, per namespace
    script = [str(CONTRIB / "containerd" / "ctr-run.sh"), IMAGE, cl_id,
              "sh", "-c", "until [ -e /go ]; do sleep 0.1; done; echo hello from pid $$"]
    with open(containerd.top / f"{cl_id}.out", "w+") as out, \
            open(containerd.top / f"{cl_id}.err", "w+") as err:
        proc = subprocess.Popen(["sh", *script], env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err)
        try:
            # While it runs: the runtime is the installed pyrunc, its state where the script says
            wait_until(lambda: os.path.exists(f"{state_root}/{cl_id}/state.json")
                       or proc.poll() is not None, "the container", timeout=60)
            state = run([INSTALLED, "--root", state_root, "state", cl_id])
            assert state.returncode == 0, (state.stderr, _read(err))
            assert json.loads(state.stdout)["status"] == "running"
            rootfs = containerd.top / "state" / "io.containerd.runtime.v2.task" / \
                containerd.namespace / cl_id / "rootfs"
            (rootfs / "go").touch()
            assert proc.wait(60) == 0, _read(err)
            assert _read(out) == "hello from pid 1\n"
            assert not os.path.exists(f"{state_root}/{cl_id}")  # --rm
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            containerd.remove(cl_id)
            if not fifo_existed:  # ctr's default --fifo-dir, which the script leaves to ctr
                with contextlib.suppress(OSError):
                    os.rmdir("/run/containerd/fifo")
            with contextlib.suppress(OSError):
                os.rmdir(state_root)


def _read(f: TextIO) -> str:
    f.seek(0)
    return f.read()


# ---- contrib/containerd/config.toml: the CRI plugin's runtime "pyrunc" -----------------------------


@dataclass
class CriContainerd(Containerd):
    """containerd with the CRI plugin on and contrib/containerd/config.toml imported as written,
    started in private mount, UTS, IPC and network namespaces (a pod with the node's network
    namespace then has ours). Pods go under the cgroup `cgroup_parent`, swept at the end."""

    cgroup_parent: str = field(default_factory=lambda: "/cl-cri-" + uuid.uuid4().hex[:8])

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)
        remove_tree(self.top, self.cgroup_parent)

    def top_level(self) -> list[str]:
        return [f'imports = ["{CONTRIB / "containerd" / "config.toml"}"]']

    def command(self, cfg: Path) -> list[str]:
        return in_private_namespaces(super().command(cfg))


@pytest.fixture(scope="module")
def cri(client_images: Images, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[CriContainerd, CRI]]:
    for cmd in ("containerd", "ctr", "unshare"):
        if not shutil.which(cmd):
            pytest.skip(f"needs {cmd}")
    pytest.importorskip("grpc", reason="needs python3-grpcio")
    top = tmp_path_factory.mktemp("cl-cri")
    daemon = CriContainerd(top, namespace="k8s.io")  # the CRI plugin's namespace
    with serving(daemon, client_images) as client:
        yield daemon, client


def test_containerd_config_toml_as_written(cri: tuple[CriContainerd, CRI]) -> None:
    daemon, client = cri
    # the handler contrib/containerd/runtimeclass.yaml gives pods: what the kubelet asks for
    handler = runtime_handler(CONTRIB / "containerd" / "runtimeclass.yaml")
    try:
        with sleeping_pod(client, daemon.top, daemon.cgroup_parent, "cl-" + uuid.uuid4().hex[:10],
                          handler) as (sandbox, cid):
            # The runtime was the configured binary, with the configured root
            # (<Root>/<namespace>): pyrunc knows both the pod's sandbox and its container there.
            state = run([INSTALLED, "--root", "/run/pyrunc/k8s.io", "list", "-q"])
            assert state.returncode == 0, state.stderr
            assert {sandbox, cid} <= set(state.stdout.split()), state.stdout
    finally:
        with contextlib.suppress(OSError):
            os.rmdir("/run/pyrunc/k8s.io")
