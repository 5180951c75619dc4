"""pyctr's whole path with a real runtime: pull -> run -> exec -> commit -> push -> rmi -> pull
-> run the committed image, plus the run options and the detached monitor.

The runtimes come from PYCTR_TEST_RUNTIMES (comma separated, default "runc").
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyctr_fixtures import (
    Pyctr,
    RegistryServer,
    build_oci_layout,
    skopeo_push_layout,
    start_registry,
)

# pyctr drives any runc-compatible runtime: pyrunc (the installed one, as `make test` exports
# it) and runc, side by side.
_PYRUNC = os.environ.get("PYRUNC") or str(Path(__file__).resolve().parents[3] / ".venv/bin/pyrunc")
RUNTIMES = [r for r in os.environ.get("PYCTR_TEST_RUNTIMES", f"{_PYRUNC},runc").split(",") if r]
pytestmark = pytest.mark.requires("root", "cmd:docker-registry", "cmd:skopeo", "busybox")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    layout = tmp_path_factory.mktemp("layout") / "oci"
    build_oci_layout(layout)
    server = start_registry(tmp_path_factory.mktemp("registry"), "none")
    try:
        skopeo_push_layout(layout, "latest", f"{server.host}/test/busybox:v1", server)
        yield server
    finally:
        server.stop()


@pytest.fixture(params=RUNTIMES)
def pyctr(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pyctr]:
    runtime = shutil.which(request.param) or request.param
    if not os.path.exists(runtime):
        pytest.skip(f"runtime {request.param} not found")
    p = Pyctr(tmp_path / "root", runtime, tmp_path / "docker-config")
    yield p
    p.cleanup()
    assert not _mounts_under(tmp_path)


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


@pytest.fixture
def image(pyctr: Pyctr, registry: RegistryServer) -> str:
    ref = f"{registry.host}/test/busybox:v1"
    pyctr.run("pull", ref)
    return ref


def test_run_shows_layers_and_returns_exit_status(pyctr: Pyctr, image: str) -> None:
    r = pyctr.run("run", "--rm", image, "sh", "-c",
                  "cat /hello.txt; ls /data; test -e /gone.txt || echo gone; exit 3", check=False)
    assert r.rc == 3, r.err
    assert r.out.split() == ["hello", "from", "layer", "3", "new", "gone"]
    assert pyctr.run("ps", "-a", "-q").out.strip() == ""  # --rm removed it
    assert not _mounts_under(pyctr.root)


def test_image_defaults_and_options(pyctr: Pyctr, image: str, tmp_path: Path) -> None:
    assert pyctr.run("run", "--rm", image).out == "hello from the image\n"
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    (host_dir / "f").write_text("from host\n")
    r = pyctr.run("run", "--rm", "-e", "A=b", "-w", "/tmp", "-u", "app", "--hostname", "box",
                  "-v", f"{host_dir}:/mnt:ro", "--read-only", image, "sh", "-c",
                  "echo $A $FROM_IMAGE; pwd; id -u; id -G; hostname; cat /mnt/f; "
                  "touch /mnt/x 2>/dev/null || echo ro-mnt; touch /etc/x 2>/dev/null || echo ro-root;"
                  " ip -o link show lo")
    lines = r.out.splitlines()
    assert lines[:8] == ["b yes", "/tmp", "1000", "1000 2000", "box", "from host", "ro-mnt", "ro-root"]
    assert "UP" in lines[8] or "LOWER_UP" in lines[8]


def test_limits_reach_the_cgroups(pyctr: Pyctr, image: str) -> None:
    r = pyctr.run("run", "--rm", "--memory", "64m", "--pids-limit", "50", "--cap-drop", "ALL",
                  image, "sh", "-c", "grep CapEff /proc/self/status; "
                  "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max")
    assert r.out.split() == ["CapEff:", "0000000000000000", str(64 << 20), "50"]


def test_detached_exec_logs_stop_wait(pyctr: Pyctr, image: str) -> None:
    cid = pyctr.run("run", "-d", "--name", "pc-web", image, "sh", "-c",
                    "echo out; echo err >&2; trap 'echo bye; exit 7' TERM; "
                    "while true; do sleep 0.1; done").out.strip()
    assert len(cid) == 64
    assert "pc-web" in pyctr.run("ps").out
    assert pyctr.run("exec", "pc-web", "sh", "-c", "echo in-$HOSTNAME").out == f"in-{cid[:12]}\n"
    assert pyctr.run("exec", "pc-web", "sh", "-c", "exit 4", check=False).rc == 4
    pyctr.run("stop", "-t", "10", "pc-web")
    assert pyctr.run("wait", "pc-web").out.strip() == "7"
    logs = pyctr.run("logs", "pc-web")
    assert logs.out == "out\nbye\n" and logs.err == "err\n"
    log_file = pyctr.root / "containers" / cid / f"{cid}-json.log"
    first = json.loads(log_file.read_text().splitlines()[0])
    assert first["log"] == "out\n" and first["stream"] == "stdout" and first["time"].endswith("Z")
    assert "Exited (7)" in pyctr.run("ps", "-a").out
    pyctr.run("rm", "pc-web")
    assert pyctr.run("ps", "-a", "-q").out.strip() == ""


def test_rm_force_kills_a_running_container(pyctr: Pyctr, image: str) -> None:
    pyctr.run("run", "-d", "--name", "pc-sleeper", image, "sleep", "1000")
    r = pyctr.run("rm", "pc-sleeper", check=False)
    assert r.rc == 1 and "running" in r.err
    pyctr.run("rm", "-f", "pc-sleeper")
    assert "pc-sleeper" not in pyctr.run("ps", "-a").out


def test_commit_push_rmi_pull_run(pyctr: Pyctr, image: str, registry: RegistryServer) -> None:
    pyctr.run("run", "--name", "pc-build", image, "sh", "-c",
              "rm /hello.txt; rm -r /data; mkdir /data; echo fresh > /data/x; echo v2 > /version")
    committed = f"{registry.host}/test/committed:v2"
    pyctr.run("commit", "-m", "second", "pc-build", committed)
    history = json.loads(pyctr.run("inspect", committed).out)[0]["Config"]["history"]
    assert history[-1]["comment"] == "second" and len(history) == 4
    pyctr.run("rm", "pc-build")
    pyctr.run("push", committed)
    pyctr.run("rmi", committed, image)
    assert pyctr.run("images", "-q").out.strip() == ""
    assert list((pyctr.root / "blobs" / "sha256").iterdir()) == []
    pyctr.run("pull", committed)
    r = pyctr.run("run", "--rm", committed, "sh", "-c",
                  "cat /version /data/x; ls /data; test -e /hello.txt || echo no-hello")
    assert r.out.split() == ["v2", "fresh", "x", "no-hello"]


def test_save_load_both_formats(pyctr: Pyctr, image: str, tmp_path: Path) -> None:
    import subprocess  # noqa: TID251 - skopeo reads what we saved

    docker_tar, oci_tar = tmp_path / "d.tar", tmp_path / "o.tar"
    pyctr.run("save", "-o", str(docker_tar), image)
    pyctr.run("save", "--format", "oci", "-o", str(oci_tar), image)
    digest = json.loads(pyctr.run("inspect", image).out)[0]["Digest"]
    subprocess.run(["skopeo", "copy", "--quiet", f"oci-archive:{oci_tar}", f"oci:{tmp_path / 'sk'}:x"],
                   check=True, capture_output=True)
    assert json.loads((tmp_path / "sk" / "index.json").read_text())["manifests"][0]["digest"] == digest
    for archive in (docker_tar, oci_tar):
        pyctr.run("rmi", image)
        assert image in pyctr.run("load", "-i", str(archive)).out
        assert pyctr.run("run", "--rm", image, "cat", "/hello.txt").out == "hello from layer 3\n"


@pytest.mark.requires("cmd:script")
def test_tty_run_and_exec(pyctr: Pyctr, image: str) -> None:
    import subprocess  # noqa: TID251 - `script` gives us a terminal
    import sys

    def in_pty(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = " ".join([sys.executable, "-m", "pyctr", "--root", str(pyctr.root), "--runtime",
                        pyctr.runtime, *args])
        return subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True,
                              timeout=60, env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[3])))
    r = in_pty("run", "--rm", "-t", image, "sh", "-c", "'tty; echo $TERM; exit 5'")
    assert r.returncode == 5 and r.stdout.split() == ["/dev/pts/0", "xterm"]
    pyctr.run("run", "-d", "--name", "pc-tty", image, "sleep", "100")
    r = in_pty("exec", "-t", "pc-tty", "sh", "-c", "'tty; exit 6'")
    assert r.returncode == 6 and r.stdout.split() == ["/dev/pts/0"]
    pyctr.run("rm", "-f", "pc-tty")
