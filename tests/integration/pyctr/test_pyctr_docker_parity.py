"""Issue 15: docker behaviours of `pyctr run` and friends, each with real containers."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from pyctr_fixtures import (
    Pyctr,
    RegistryServer,
    open_store_fixtures,
)

pytestmark = pytest.mark.requires("root", "cmd:docker-registry", "cmd:skopeo", "busybox")


registry, pyctr = open_store_fixtures("p15-parity")


@pytest.fixture
def image(pyctr: Pyctr, registry: RegistryServer) -> str:
    ref = f"{registry.host}/test/busybox:v1"
    pyctr.run("pull", ref)
    return ref


def _until(cond: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)


def test_run_dit_keeps_a_shell_on_its_terminal(pyctr: Pyctr, image: str) -> None:
    cid = pyctr.run("run", "-dit", "--name", "p15-dit", image, "sh").out.strip()
    time.sleep(0.5)
    assert pyctr.run("ps", "-q").out.split() == [cid[:12]]
    assert pyctr.run("exec", "p15-dit", "sh", "-c", "test -t 0 < /proc/1/fd/0 && echo tty"
                     ).out == "tty\n"
    pyctr.run("stop", "-t", "1", "p15-dit")
    assert pyctr.run("ps", "-q").out.strip() == ""


def test_logs_of_a_foreground_run_rotated(pyctr: Pyctr, image: str) -> None:
    r = pyctr.run("run", "--name", "p15-fg", image, "sh", "-c", "echo out; echo err >&2")
    assert (r.out, r.err) == ("out\n", "err\n")
    logs = pyctr.run("logs", "p15-fg")
    assert (logs.out, logs.err) == ("out\n", "err\n")
    pyctr.run("run", "--name", "p15-rot", "--log-opt", "max-size=2k", "--log-opt", "max-file=2",
              image, "sh", "-c", "i=0; while test $i -lt 200; do echo line$i; i=$((i+1)); done")
    cdir = Path(json.loads(pyctr.run("inspect", "p15-rot").out)[0]["Bundle"])
    logs_files = sorted(p.name for p in cdir.glob("*-json.log*"))
    assert len(logs_files) == 2, logs_files  # the current file and one rotated
    assert all((cdir / n).stat().st_size <= 2048 for n in logs_files)
    tail = pyctr.run("logs", "p15-rot").out.split()
    assert tail[-1] == "line199" and "line0" not in tail
    assert tail == [f"line{i}" for i in range(200 - len(tail), 200)]


def test_missing_workdir_is_created_for_the_image_user(pyctr: Pyctr, image: str,
                                                       registry: RegistryServer) -> None:
    r = pyctr.run("run", "--rm", "-u", "app", "-w", "/srv/app/work", image, "sh", "-c",
                  "pwd; stat -c '%u:%g %a' . ; touch mine && echo writable")
    assert r.out.split("\n")[:3] == ["/srv/app/work", "1000:1000 755", "writable"]
    vol_image = f"{registry.host}/test/volume:v1"
    r = pyctr.run("run", "--rm", vol_image, "sh", "-c", "pwd; id -u; stat -c '%u:%g' .")
    assert r.out.split("\n")[:3] == ["/srv/work", "1000", "1000:1000"]


def test_volume_keeps_image_owner_and_mode(pyctr: Pyctr, registry: RegistryServer) -> None:
    vol_image = f"{registry.host}/test/volume:v1"
    r = pyctr.run("run", "--rm", vol_image, "sh", "-c",
                  "stat -c '%u:%g %a' /home/app /home/app/f; touch /home/app/new && echo ok; "
                  "grep -c ' /home/app ' /proc/self/mounts")
    assert r.out.split("\n")[:4] == ["1000:1000 750", "1000:2000 640", "ok", "1"]


@pytest.mark.parametrize(("command", "code"), [
    (["nosuchcommand"], 127), (["/etc/passwd"], 126), (["/nosuch/path"], 127)])
def test_exit_codes_as_docker(pyctr: Pyctr, image: str, command: list[str], code: int) -> None:
    before = pyctr.run("ps", "-a", "-q").out
    r = pyctr.run("run", "--rm", image, *command, check=False)
    assert r.rc == code, r.err
    assert r.err.startswith("pyctr: ") and len(r.err.strip().splitlines()) == 1
    assert pyctr.run("ps", "-a", "-q").out == before  # --rm: no record left, as docker
    r = pyctr.run("run", "-d", image, *command, check=False)
    assert r.rc == code, r.err
    assert pyctr.run("run", "--rm", "--memory", "nonsense", image, "true", check=False).rc == 125


def test_inspect_format(pyctr: Pyctr, image: str) -> None:
    cid = pyctr.run("run", "-d", "--name", "p15-insp", image, "sleep", "100").out.strip()
    assert pyctr.run("inspect", "-f", "{{.State.Status}}", "p15-insp").out == "running\n"
    pid = int(pyctr.run("inspect", "--format", "{{.State.Pid}}", cid).out)
    assert Path(f"/proc/{pid}").exists()
    assert pyctr.run("inspect", "-f", "{{.Config.Image}} {{.State.Running}}", "p15-insp"
                     ).out == f"{image} true\n"
    whole = json.loads(pyctr.run("inspect", "-f", "{{json .}}", "p15-insp").out)
    assert whole["Id"] == cid and whole["State"]["Pid"] == pid
    assert json.loads(pyctr.run("inspect", "-f", "{{json .State}}", "p15-insp").out)["Running"]
    pyctr.run("rm", "-f", "p15-insp")
    bad = pyctr.run("inspect", "-f", "{{range .Mounts}}{{end}}", image, check=False)
    assert bad.rc == 1 and "template" in bad.err


def test_named_volumes(pyctr: Pyctr, image: str) -> None:
    assert pyctr.run("volume", "create", "p15-data").out == "p15-data\n"
    assert "p15-data" in pyctr.run("volume", "ls", "-q").out.split()
    info = json.loads(pyctr.run("volume", "inspect", "p15-data").out)[0]
    mountpoint = Path(info["Mountpoint"])
    assert info["Name"] == "p15-data" and mountpoint.is_dir()
    pyctr.run("run", "--rm", "-v", "p15-data:/data", image, "sh", "-c", "echo kept > /data/f")
    assert (mountpoint / "f").read_text() == "kept\n"
    # A new volume named on `run` is made on the spot, filled from the image's directory.
    r = pyctr.run("run", "--name", "p15-user", "-v", "p15-auto:/home", image, "ls", "/home")
    assert r.out == "app\n"
    assert "p15-auto" in pyctr.run("volume", "ls", "-q").out.split()
    busy = pyctr.run("volume", "rm", "p15-auto", check=False)
    assert busy.rc == 1 and "in use" in busy.err
    pyctr.run("rm", "p15-user")
    pyctr.run("volume", "rm", "p15-auto", "p15-data")
    assert pyctr.run("volume", "ls", "-q").out.strip() == ""
    assert not mountpoint.exists()
    assert stat.S_IMODE(os.stat(pyctr.root / "volumes").st_mode) == 0o700
