"""The CRI plugin drives pyrunc's shim: a pod through the CRI API with the RuntimeClass handler of
contrib/containerd/runtimeclass-shim.yaml, contrib/containerd/pyrunc-shim.toml imported as written.

No crictl here: the small gRPC client of tests/integration/clients/cri.py. containerd runs in
private mount, UTS, IPC and network namespaces; the pod keeps that network namespace (NODE).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cri import (
    CRI,
    EXITED,
    ID,
    STATS_RESPONSE,
    STATUS_RESPONSE,
    STOP,
    in_private_namespaces,
    runtime_handler,
    serving,
    sleeping_pod,
)
from daemons import remove_tree, stop_process
from images import Images
from shim_fixtures import REPO, ShimContainerd

from pyrunc.shim import wire

pytestmark = pytest.mark.requires("root", "cmd:containerd", "cmd:ctr", "cmd:unshare", "busybox")

CONTRIB = REPO / "contrib" / "containerd"


@dataclass
class CriShimContainerd(ShimContainerd):
    cgroup_parent: str = field(default_factory=lambda: "/shim-cri-" + uuid.uuid4().hex[:8])

    def top_level(self) -> list[str]:
        return [f'imports = ["{CONTRIB / "pyrunc-shim.toml"}"]']

    def command(self, cfg: Path) -> list[str]:
        return in_private_namespaces(super().command(cfg))

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)
        remove_tree(self.top, self.cgroup_parent)
        shutil.rmtree(Path("/run/containerd/pyrunc") / self.namespace, ignore_errors=True)


@pytest.fixture(scope="module")
def cri(shim_images: Images, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[CriShimContainerd, CRI]]:
    pytest.importorskip("grpc", reason="needs python3-grpcio (the CRI client)")
    top = tmp_path_factory.mktemp("shim-cri")
    daemon = CriShimContainerd(top, namespace="k8s.io")  # the CRI plugin's namespace
    with serving(daemon, shim_images) as client:
        yield daemon, client


def _shim_of(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    ppid = int(stat[stat.rindex(")") + 2:].split()[1])
    return Path(f"/proc/{ppid}/cmdline").read_bytes().decode()


def _pid_in_cgroup(cgroup: str) -> int:
    procs = Path(f"/sys/fs/cgroup/pids{cgroup}/cgroup.procs").read_text().split()
    return int(procs[0])


def test_pod_through_the_cri_plugin(cri: tuple[CriShimContainerd, CRI]) -> None:
    daemon, client = cri
    name = "shim-" + uuid.uuid4().hex[:10]
    handler = runtime_handler(CONTRIB / "runtimeclass-shim.yaml")
    with sleeping_pod(client, daemon.top, daemon.cgroup_parent, name, handler) as (_, cid):
        stats = wire.sub(client.call("ContainerStats", ID, {"id": cid}, STATS_RESPONSE), "stats")
        working_set = wire.sub(wire.sub(stats, "memory"), "working_set_bytes")
        assert wire.num(working_set, "value") > 0, stats
        assert wire.sub(wire.sub(stats, "cpu"), "usage_core_nano_seconds"), stats
        # both the sandbox and the container are served by pyrunc's shim
        pid = _pid_in_cgroup(f"{daemon.cgroup_parent}/{name}/{cid}")
        assert "containerd-shim-pyrunc-v2\0" in _shim_of(pid)
        client.call("StopContainer", STOP, {"container_id": cid, "timeout": 2})
        status = wire.sub(client.call("ContainerStatus", ID, {"id": cid}, STATUS_RESPONSE),
                          "status")
        assert wire.num(status, "state") == EXITED, status
        client.call("RemoveContainer", ID, {"id": cid})
