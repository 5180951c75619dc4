"""`update` and re-created cgroups as runc 1.1.5 leaves them on cgroup v1: cpu limits under a pod
parent that has its own quota, and device rules that never pass through allowing a denied device.

Device files are watched with inotify (a write to a cgroup file is an IN_MODIFY event), so what
the runtime wrote is seen exactly, not raced. Cgroups live under a private
`pyrunc-test-cg-<random>` (the `parent` fixture of tests/integration/conftest.py).
"""

from __future__ import annotations

import ctypes
import os
import struct
import subprocess  # noqa: TID251  (tests start real processes)
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from testlib import Bundle, Runtime

pytestmark = pytest.mark.requires("root", "busybox", "cgroup-v1")

V1 = Path("/sys/fs/cgroup")
IN_MODIFY = 0x2


class Writes:
    """The cgroup files of `names` in `directory` written to since the watch began, in order."""

    def __init__(self, directory: Path, names: tuple[str, ...]) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        self.names = {self.libc.inotify_add_watch(self.fd, str(directory / n).encode(),
                                                  IN_MODIFY): n for n in names}
        assert all(wd >= 0 for wd in self.names)

    def seen(self) -> list[str]:
        out: list[str] = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            off = 0
            while off < len(buf):
                wd, mask, _cookie, length = struct.unpack_from("iIII", buf, off)
                off += 16 + length
                if mask & IN_MODIFY:
                    out.append(self.names[wd])

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def create(runtime: Runtime, make_bundle: Callable[..., Bundle]) -> Callable[..., str]:
    def _create(cgroups_path: str, linux: dict[str, Any] | None = None, start: bool = True,
                args: tuple[str, ...] = ("sleep", "600")) -> str:
        cid = "par-" + uuid.uuid4().hex[:10]
        b = make_bundle(*args)
        b.linux["cgroupsPath"] = cgroups_path
        b.linux.update(linux or {})
        b.write()
        with open(b.path / "out", "w") as out:
            p = subprocess.run(runtime.argv("create", "--bundle", str(b.path), cid),
                               stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60)
        assert p.returncode == 0, (b.path / "out").read_text()
        if start:
            runtime.run("start", cid, check=True)
        return cid

    return _create


def test_update_cpu_under_a_pod_parent_with_a_quota(runtime: Runtime,
                                                    create: Callable[..., str],
                                                    parent: str) -> None:
    pod = V1 / "cpu" / parent
    pod.mkdir()
    (pod / "cpu.cfs_quota_us").write_text("50000")  # half a CPU for the pod, period 100000
    cid = create(f"/{parent}/ctr")
    leaf = pod / "ctr"
    period = int((leaf / "cpu.cfs_period_us").read_text())
    # more than the pod has: the kernel refuses, with runc's words, and nothing changes
    r = runtime.run("update", "--cpu-quota", str(period * 6 // 10), cid)
    assert r.rc == 1
    assert r.err == (f'failed to write "{period * 6 // 10}": write {leaf}/cpu.cfs_quota_us: '
                     "invalid argument\n"), r.err
    assert (leaf / "cpu.cfs_quota_us").read_text().strip() == "-1"
    # 30% with a shorter period than the pod's
    r = runtime.run("update", "--cpu-period", "10000", "--cpu-quota", "3000", cid)
    assert (r.rc, r.err) == (0, ""), r.err
    assert (leaf / "cpu.cfs_period_us").read_text().strip() == "10000"
    assert (leaf / "cpu.cfs_quota_us").read_text().strip() == "3000"


DENY_KMSG = {"resources": {"devices": [{"allow": True, "access": "rwm"},
                                       {"allow": False, "type": "c", "major": 1, "minor": 11,
                                        "access": "rwm"}]}}


def test_update_writes_no_device_rules(runtime: Runtime, create: Callable[..., str],
                                       parent: str) -> None:
    cid = create(f"/{parent}/ctr", DENY_KMSG)
    devices = V1 / "devices" / parent / "ctr"
    before = (devices / "devices.list").read_text()
    watch = Writes(devices, ("devices.allow", "devices.deny"))
    try:
        for n in range(5):
            runtime.run("update", "--pids-limit", str(30 + n), cid, check=True)
            runtime.run("update", "-r", "-", cid, check=True,
                        input='{"cpu": {"shares": 512}, "devices": [{"allow": true}]}')
        assert watch.seen() == []
    finally:
        watch.close()
    assert (devices / "devices.list").read_text() == before


def test_a_shared_cgroup_never_passes_through_allowing_every_device(
        runtime: Runtime, create: Callable[..., str], parent: str) -> None:
    create(f"/{parent}/pod", DENY_KMSG)
    devices = V1 / "devices" / parent / "pod"
    watch = Writes(devices, ("devices.allow", "devices.deny"))
    try:
        # the same deny list again, into the cgroup the first one runs in: only the denial
        create(f"/{parent}/pod", DENY_KMSG, start=False, args=("true",))
        assert watch.seen() == ["devices.deny"]
        # an allow list (runc's default rules): `a` to devices.deny, then the allowed devices
        create(f"/{parent}/pod", start=False, args=("true",))
        seen = watch.seen()
        assert seen[0] == "devices.deny" and set(seen[1:]) == {"devices.allow"}, seen
        # the same allow list again: nothing to write at all
        create(f"/{parent}/pod", start=False, args=("true",))
        assert watch.seen() == []
    finally:
        watch.close()
    assert (devices / "devices.list").read_text().startswith("c *:* m\n")
