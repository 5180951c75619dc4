"""Image config + options -> config.json, resolved against the image's own files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyctr.driver import bundle, users
from pyctr.driver.paths import secure_join
from pyctr.errors import ContainerError, NotFound
from pyctr.image import platforms


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1001:\nextra:x:2000:app,other\n")
    (root / "data").mkdir()
    (root / "data" / "seed").write_text("seed")
    return root


def test_user_resolution(rootfs: Path) -> None:
    assert users.resolve(rootfs, "") == users.User(0, 0, (), "/root")
    assert users.resolve(rootfs, "app") == users.User(1000, 1001, (2000,), "/home/app")
    assert users.resolve(rootfs, "app:extra").gid == 2000
    assert users.resolve(rootfs, "4242:4243") == users.User(4242, 4243, (), "/")
    with pytest.raises(ContainerError):
        users.resolve(rootfs, "nobody-here")
    with pytest.raises(ContainerError):
        users.resolve(rootfs, "app:nogroup")


def test_passwd_symlink_stays_in_rootfs(rootfs: Path, tmp_path: Path) -> None:
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to("../../etc-outside")
    (tmp_path / "etc-outside").write_text("evil:x:7:7::/:/bin/sh\n")
    assert (rootfs / "etc" / "passwd").read_text().startswith("evil")  # naively: the host's
    assert secure_join(rootfs, "/etc/passwd") == rootfs / "etc-outside"
    with pytest.raises(ContainerError):
        users.resolve(rootfs, "evil")


def test_args_entrypoint_and_cmd() -> None:
    image = {"Entrypoint": ["/init"], "Cmd": ["serve"]}
    assert bundle.process_args(image, bundle.RunOptions()) == ["/init", "serve"]
    assert bundle.process_args(image, bundle.RunOptions(args=["x"])) == ["/init", "x"]
    assert bundle.process_args(image, bundle.RunOptions(entrypoint="sh", args=["-c", "id"])) == [
        "sh", "-c", "id"]
    with pytest.raises(ContainerError):
        bundle.process_args({}, bundle.RunOptions())


def test_env_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_HOST", "h")
    env = bundle.merge_env(["A=1", "PATH=/bin"], ["A=2", "FROM_HOST", "UNSET_THING"])
    assert env == ["A=2", "PATH=/bin", "FROM_HOST=h"]
    assert any(e.startswith("PATH=") for e in bundle.merge_env([], []))


def test_capabilities() -> None:
    caps = bundle.capabilities(["NET_ADMIN"], ["chown"])
    assert "CAP_NET_ADMIN" in caps and "CAP_CHOWN" not in caps and "CAP_KILL" in caps
    assert bundle.capabilities([], ["ALL"]) == []
    assert "CAP_SYS_ADMIN" in bundle.capabilities(["ALL"], [])
    with pytest.raises(ContainerError):
        bundle.capabilities(["CAP_NOPE"], [])


def test_sizes() -> None:
    assert bundle.parse_size("64m") == 64 << 20
    assert bundle.parse_size("1g") == 1 << 30
    assert bundle.parse_size("512") == 512
    with pytest.raises(ContainerError):
        bundle.parse_size("lots")


def test_make_spec(rootfs: Path, tmp_path: Path) -> None:
    image = {"config": {"Env": ["PATH=/bin", "X=1"], "Cmd": ["sh"], "WorkingDir": "/data",
                        "User": "app", "Volumes": {"/data": {}}, "Labels": {"l": "v"}}}
    opts = bundle.RunOptions(env=["Y=2"], memory=1 << 20, cpus=0.5, pids_limit=10,
                             read_only=True, volumes=[f"{tmp_path}:/host:ro"], hostname="h1")
    cdir = tmp_path / "c"
    cdir.mkdir()
    spec = bundle.make_spec(image, opts, "abc" * 10, cdir, rootfs, lo_up_hook=True)
    p = spec["process"]
    assert p["args"] == ["sh"] and p["cwd"] == "/data"
    assert p["user"] == {"uid": 1000, "gid": 1001, "additionalGids": [2000]}
    assert {"X=1", "Y=2", "HOSTNAME=h1", "HOME=/home/app"} <= set(p["env"])
    assert spec["root"] == {"path": str(rootfs), "readonly": True}
    assert spec["annotations"] == {"l": "v"}
    res = spec["linux"]["resources"]
    assert res["memory"]["limit"] == 1 << 20 and res["cpu"]["quota"] == 50000
    assert res["pids"]["limit"] == 10
    assert {"type": "network"} in spec["linux"]["namespaces"]
    dests = {m["destination"]: m for m in spec["mounts"]}
    assert dests["/host"]["options"][-1] == "ro" and dests["/host"]["source"] == str(tmp_path)
    assert (Path(dests["/data"]["source"]) / "seed").read_text() == "seed"
    assert "/etc/hosts" in dests and "/proc" in dests
    assert "mount" in spec["linux"]["seccomp"]["syscalls"][0]["names"]
    assert spec["hooks"]["createRuntime"][0]["args"][-1] == "pyctr.driver.nethook"
    host = bundle.make_spec(image, bundle.RunOptions(network="host"), "d" * 30, cdir, rootfs)
    assert {"type": "network"} not in host["linux"]["namespaces"] and "hooks" not in host


def test_platform_selection() -> None:
    index = {"manifests": [
        {"digest": "arm", "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
        {"digest": "arm7", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"digest": "amd", "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "att", "platform": {"os": "unknown", "architecture": "unknown"}},
        {"digest": "a64", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    ]}
    pick = platforms.select
    assert pick(index, platforms.parse_platform("linux/amd64"))["digest"] == "amd"
    assert pick(index, platforms.parse_platform("linux/arm/v7"))["digest"] == "arm7"
    assert pick(index, platforms.parse_platform("linux/arm64"))["digest"] == "a64"
    with pytest.raises(NotFound):
        pick(index, platforms.parse_platform("linux/s390x"))
    assert os.uname().machine != "x86_64" or platforms.host_platform().architecture == "amd64"


def test_lo_hook_finds_this_pyctr_without_site_packages() -> None:
    # -S (no site: ~10 ms less per container) means the hook's PYTHONPATH alone must reach the
    # pyctr it was written by, not an installed copy
    hook = bundle.lo_hook()
    assert hook["args"][1:] == ["-S", "-m", "pyctr.driver.nethook"]
    (env,) = hook["env"]
    top = Path(env.removeprefix("PYTHONPATH="))
    assert (top / "pyctr" / "driver" / "nethook.py").resolve() == \
        Path(bundle.__file__).resolve().parent / "nethook.py"
