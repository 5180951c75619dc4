"""A small CRI client for the tests that drive containerd's CRI plugin (test_contrib.py, and the
shim's test_shim_cri.py): a gRPC channel (python3-grpcio) and the CRI messages declared as tables
for the shim's codec (field numbers from kubernetes' cri-api runtime/v1 api.proto); the sandbox
image CRI looks for, made from busybox; and a containerd in private namespaces.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from daemons import Containerd, run
from images import IMAGE, Images

from pyrunc.shim import wire

PAUSE = "registry.k8s.io/pause:3.6"  # containerd 1.6's default sandbox_image, made here
SERVICE = "/runtime.v1.RuntimeService/"
NODE = 2  # NamespaceMode: the sandbox keeps the network namespace it is started in
EXITED = 2  # ContainerState

S: wire.Field = (1, "value", "s", None)
METADATA: wire.Table = ((1, "name", "s", None), (2, "uid", "s", None), (3, "namespace", "s", None))
NS_OPTIONS: wire.Table = ((1, "network", "u", None),)
SECURITY: wire.Table = ((1, "namespace_options", "m", NS_OPTIONS),)
LINUX_SANDBOX: wire.Table = ((1, "cgroup_parent", "s", None), (2, "security_context", "m", SECURITY))
SANDBOX_CONFIG: wire.Table = ((1, "metadata", "m", METADATA), (3, "log_directory", "s", None),
                              (8, "linux", "m", LINUX_SANDBOX))
RUN_SANDBOX: wire.Table = ((1, "config", "m", SANDBOX_CONFIG), (2, "runtime_handler", "s", None))
ID: wire.Table = ((1, "id", "s", None),)
CONTAINER_CONFIG: wire.Table = (
    (1, "metadata", "m", ((1, "name", "s", None),)), (2, "image", "m", ((1, "image", "s", None),)),
    (3, "command", "*s", None), (4, "args", "*s", None), (11, "log_path", "s", None))
CREATE: wire.Table = ((1, "pod_sandbox_id", "s", None), (2, "config", "m", CONTAINER_CONFIG),
                      (3, "sandbox_config", "m", SANDBOX_CONFIG))
EXEC_SYNC: wire.Table = ((1, "container_id", "s", None), (2, "cmd", "*s", None),
                         (3, "timeout", "i", None))
EXEC_SYNC_RESPONSE: wire.Table = ((1, "stdout", "b", None), (2, "stderr", "b", None),
                                  (3, "exit_code", "i", None))
STOP: wire.Table = ((1, "container_id", "s", None), (2, "timeout", "i", None))
U64: wire.Table = ((1, "value", "u", None),)
STATS_RESPONSE: wire.Table = ((1, "stats", "m", (
    (2, "cpu", "m", ((1, "timestamp", "i", None), (2, "usage_core_nano_seconds", "m", U64))),
    (3, "memory", "m", ((1, "timestamp", "i", None), (2, "working_set_bytes", "m", U64))))),)
STATUS_RESPONSE: wire.Table = ((1, "status", "m", (
    (1, "id", "s", None), (3, "state", "u", None), (7, "exit_code", "i", None))),)


class CRI:
    """The RuntimeService calls of the CRI API the tests make, over containerd's socket."""

    def __init__(self, sock: Path) -> None:
        import grpc

        self.channel = grpc.insecure_channel(f"unix://{sock}")

    def call(self, method: str, table: wire.Table, request: wire.Msg,
             reply: wire.Table = ID, timeout: float = 60) -> wire.Msg:
        rpc = self.channel.unary_unary(SERVICE + method)
        return wire.decode(reply, rpc(wire.encode(table, request), timeout=timeout))

    def close(self) -> None:
        self.channel.close()


def in_private_namespaces(argv: list[str]) -> list[str]:
    """argv run in private mount, UTS, IPC and network namespaces, with lo up: a pod with the
    node's network namespace then has this one."""
    return ["unshare", "-m", "--propagation", "private", "-u", "-i", "-n", "sh", "-c",
            'ip link set lo up && exec "$@"', "sh", *argv]


def import_images(daemon: Containerd, images: Images) -> None:
    """The busybox image and the sandbox image made from it (`sleep` as its command) into the
    CRI plugin's namespace."""
    layout = daemon.top / "oci"
    shutil.copytree(images.oci_archive.parent / "oci", layout)
    for argv in (["umoci", "config", "--image", f"{layout}:latest", "--clear", "config.cmd",
                  "--config.cmd", "sleep", "--config.cmd", "1000000"],
                 ["skopeo", "copy", f"oci:{layout}:latest",
                  f"oci-archive:{daemon.top}/pause.tar:{PAUSE}"]):
        done = run(argv, timeout=120)
        assert done.returncode == 0, done.stderr
    for archive in (images.oci_archive, daemon.top / "pause.tar"):
        done = daemon.ctr("images", "import", str(archive), timeout=120)
        assert done.returncode == 0, done.stderr


def runtime_handler(runtimeclass: Path) -> str:
    """The handler a RuntimeClass file gives pods: what the kubelet asks for."""
    text = runtimeclass.read_text()
    return next(line.split(":", 1)[1].strip() for line in text.splitlines()
                if line.startswith("handler:"))


@contextlib.contextmanager
def serving(daemon: Containerd, images: Images) -> Iterator[CRI]:
    """`daemon` started with the images imported, and a client of its CRI plugin; both stopped at
    the end."""
    client: CRI | None = None
    try:
        daemon.start()
        import_images(daemon, images)
        client = CRI(daemon.sock)
        yield client
    finally:
        if client:
            client.close()
        daemon.stop()


@contextlib.contextmanager
def sleeping_pod(client: CRI, top: Path, cgroup_parent: str, name: str, handler: str
                 ) -> Iterator[tuple[str, str]]:
    """Pod `name` through the CRI API: a sandbox with RuntimeClass handler `handler`, the node's
    network namespace and the cgroup parent `cgroup_parent`/`name`, and one started container
    running `sleep 1000000`; an ExecSync in it answers, and sees the sandbox's sleep as pid 1 (a
    pod's containers share its pid namespace). Yields the sandbox's and the container's ids;
    the sandbox is stopped and removed at the end (quietly when the test failed)."""
    sandbox_config: wire.Msg = {
        "metadata": {"name": name, "uid": uuid.uuid4().hex, "namespace": "default"},
        "log_directory": str(top / "pods" / name),
        "linux": {"cgroup_parent": f"{cgroup_parent}/{name}",
                  "security_context": {"namespace_options": {"network": NODE}}}}
    sandbox = str(client.call("RunPodSandbox", RUN_SANDBOX, {
        "config": sandbox_config, "runtime_handler": handler})["id"])

    def remove() -> None:
        client.call("StopPodSandbox", ID, {"id": sandbox})
        client.call("RemovePodSandbox", ID, {"id": sandbox})

    try:
        container_config: wire.Msg = {"metadata": {"name": "main"}, "image": {"image": IMAGE},
                                      "command": ["sleep"], "args": ["1000000"],
                                      "log_path": "main.log"}
        cid = str(client.call("CreateContainer", CREATE, {
            "pod_sandbox_id": sandbox, "config": container_config,
            "sandbox_config": sandbox_config})["id"])
        client.call("StartContainer", ID, {"id": cid})
        reply = client.call("ExecSync", EXEC_SYNC, {
            "container_id": cid, "cmd": ["sh", "-c", "echo exec-$((6*7)); cat /proc/1/cmdline"],
            "timeout": 30}, EXEC_SYNC_RESPONSE)
        assert reply.get("stdout") == b"exec-42\nsleep\x001000000\x00", reply
        assert reply.get("exit_code", 0) == 0, reply
        yield sandbox, cid
    except BaseException:
        with contextlib.suppress(Exception):
            remove()
        raise
    remove()
