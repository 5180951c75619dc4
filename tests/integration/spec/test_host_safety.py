"""Nothing a config says lands on the host: every rule of pyrunc.spec.rules that keeps a container off
the runtime's own namespaces is refused by create (field named, exit 1, nothing left), and a
namespace that is not listed is inherited without touching anything outside the bundle.

Every pyrunc here runs inside private mount, UTS, IPC and network namespaces made by `unshare`,
with a known hostname and known sysctl values: if the code under test were wrong, it would change
only that private copy, and the test reads the copy back to see it did not.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from proc_helpers import fails_cleanly
from testlib import Bundle, Runtime

pytestmark = pytest.mark.requires("root", "busybox", "cmd:unshare")

GUARD_HOSTNAME = "pyrunc-guard"
# What the private copies hold before pyrunc runs, read back after it ran.
GUARDED = "hostname; domainname; cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni"
PRIVATE = ["unshare", "--mount", "--propagation", "private", "--uts", "--ipc", "--net"]


def host_values() -> list[str]:
    out = subprocess.run(["sh", "-c", GUARDED], capture_output=True, text=True, check=True)
    return out.stdout.split()


def guarded_runtime(tmp_path: Path, pyrunc: str) -> tuple[Runtime, Path]:
    """A Runtime whose every call runs in fresh private namespaces; after each call the private
    hostname and sysctls are appended to the returned file."""
    guard = tmp_path / "guard"
    script = tmp_path / "pyrunc-private"
    inner = (f"ip link set lo up && hostname {GUARD_HOSTNAME} && domainname none && "
             f'"$0" "$@"; rc=$?; {{ {GUARDED}; }} >> {shlex.quote(str(guard))}; exit $rc')
    script.write_text("#!/bin/sh\nexec " + " ".join(PRIVATE) + f" sh -c {shlex.quote(inner)} "
                      f'{shlex.quote(pyrunc)} "$@"\n')
    script.chmod(0o755)
    return Runtime(str(script), tmp_path / "state"), guard


def private_values_untouched(guard: Path) -> None:
    lines = guard.read_text().split()
    assert lines, "the guard wrapper recorded nothing"
    expected = [GUARD_HOSTNAME, "none", "0", str(_fresh_shmmni())]
    for i in range(0, len(lines), 4):
        assert lines[i:i + 4] == expected


def _fresh_shmmni() -> int:
    out = subprocess.run(["unshare", "--ipc", "cat", "/proc/sys/kernel/shmmni"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def _drop_ns(b: Bundle, *kinds: str) -> None:
    b.linux["namespaces"] = [n for n in b.linux["namespaces"] if n["type"] not in kinds]


def _no_mount_ns(b: Bundle) -> None:
    _drop_ns(b, "mount")
    b.linux.pop("maskedPaths", None)
    b.linux.pop("readonlyPaths", None)
    b.config["root"]["readonly"] = False


REFUSALS: list[tuple[str, Callable[[Bundle], object], list[str]]] = [
    ("hostname-no-uts", lambda b: (_drop_ns(b, "uts"), b.config.update(hostname="evil")),
     ["hostname", "UTS"]),
    ("domainname-no-uts", lambda b: (_drop_ns(b, "uts"), b.config.pop("hostname"),
                                     b.config.update(domainname="evil")), ["domainname"]),
    ("hostname-own-uts", lambda b: (_drop_ns(b, "uts"),
                                    b.linux["namespaces"].append({"type": "uts", "path": "/proc/self/ns/uts"}),
                                    b.config.update(hostname="evil")), ["hostname"]),
    ("sysctl-net-no-netns", lambda b: (_drop_ns(b, "network"),
                                       b.linux.update(sysctl={"net.ipv4.ip_forward": "1"})),
     ["linux.sysctl", "net.ipv4.ip_forward", "network namespace"]),
    ("sysctl-net-own-netns", lambda b: (_drop_ns(b, "network"),
                                        b.linux["namespaces"].append({"type": "network", "path": "/proc/self/ns/net"}),
                                        b.linux.update(sysctl={"net.ipv4.ip_forward": "1"})),
     ["linux.sysctl", "net.ipv4.ip_forward"]),
    ("sysctl-ipc-no-ipcns", lambda b: (_drop_ns(b, "ipc"), b.linux.update(sysctl={"kernel.shmmni": "1234"})),
     ["linux.sysctl", "kernel.shmmni", "ipc namespace"]),
    ("sysctl-not-namespaced", lambda b: b.linux.update(sysctl={"vm.swappiness": "1"}),
     ["linux.sysctl", "vm.swappiness"]),
    ("masked-no-mountns", lambda b: (_drop_ns(b, "mount"), b.linux.pop("readonlyPaths")),
     ["linux.maskedPaths", "mount namespace"]),
    ("readonly-paths-no-mountns", lambda b: (_drop_ns(b, "mount"), b.linux.pop("maskedPaths")),
     ["linux.readonlyPaths", "mount namespace"]),
    ("root-readonly-no-mountns", lambda b: (_no_mount_ns(b), b.config["root"].update(readonly=True)),
     ["root.readonly", "mount namespace"]),
    ("propagation-no-mountns", lambda b: (_no_mount_ns(b), b.linux.update(rootfsPropagation="shared")),
     ["linux.rootfsPropagation"]),
    ("idmap-no-userns", lambda b: b.linux.update(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}]),
     ["linux.uidMappings"]),
    ("time-offsets-no-timens", lambda b: b.linux.update(timeOffsets={"monotonic": {"secs": 1}}),
     ["linux.timeOffsets"]),
    ("netdevices-no-netns", lambda b: (_drop_ns(b, "network"), b.linux.update(netDevices={"lo": {}})),
     ["linux.netDevices"]),
]


@pytest.mark.parametrize("verb", ["create", "run"])
@pytest.mark.parametrize("edit,words", [(e, w) for _, e, w in REFUSALS], ids=[i for i, _, _ in REFUSALS])
def test_create_refuses(runtime: Runtime, tmp_path: Path, make_bundle: Callable[..., Bundle], cid: str, edit: Callable[[Bundle], object],
                        words: list[str], verb: str) -> None:
    before = host_values()
    rt, guard = guarded_runtime(tmp_path, runtime.binary)
    b = make_bundle("true")
    edit(b)
    b.write()
    fails_cleanly(rt, b, cid, *words, verb=verb)
    private_values_untouched(guard)
    assert host_values() == before


def test_validate_reports_what_create_refuses(runtime: Runtime, tmp_path: Path, make_bundle: Callable[..., Bundle]) -> None:
    """One table: `pyrunc validate` names the same field for each refusal."""
    for name, edit, words in REFUSALS:
        b = make_bundle("true")
        edit(b)
        b.write()
        r = subprocess.run([runtime.binary, "validate", "-b", str(b.path)], capture_output=True, text=True)
        assert r.returncode == 1, name
        assert words[0] in r.stderr, (name, r.stderr)


# --- namespaces not listed are inherited -------------------------------------------------------

def in_private_namespaces(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PRIVATE, "sh", "-euc", "ip link set lo up\n" + script],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **env})


# Before and after pyrunc: the caller's root and /proc, /sys mounts with their propagation fields.
OWN_MOUNTS = """awk '$5 == "/" || $5 == "/proc" || $5 == "/sys" {print $5, $7}' /proc/self/mountinfo"""


@pytest.mark.parametrize("pivot", ["pivot", "no-pivot"])
def test_unlisted_mount_namespace_is_inherited_and_left_intact(
        runtime: Runtime, tmp_path: Path, make_bundle: Callable[..., Bundle], cid: str, pivot: str) -> None:
    b = make_bundle("readlink", "/proc/self/ns/mnt")
    _no_mount_ns(b)
    b.write()
    flags = "--no-pivot" if pivot == "no-pivot" else ""
    r = in_private_namespaces(f"""
        {OWN_MOUNTS} > "$D/before"
        readlink /proc/self/ns/mnt > "$D/caller"
        "$PYRUNC" --root "$D/state" run {flags} -b "$B" "$CID" > "$D/container"
        {OWN_MOUNTS} > "$D/after"
        grep -c " $B/" /proc/self/mountinfo > "$D/left" || true
        """, PYRUNC=runtime.binary, D=str(tmp_path), B=str(b.path), CID=cid)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "container").read_text() == (tmp_path / "caller").read_text()
    before = (tmp_path / "before").read_text()
    assert "/proc " in before and "/sys " in before
    assert (tmp_path / "after").read_text() == before  # nothing detached, no propagation change
    assert (tmp_path / "left").read_text().strip() == "0"  # the container's mounts are gone


def test_unlisted_mount_namespace_create_start_delete(
        runtime: Runtime, tmp_path: Path, make_bundle: Callable[..., Bundle], cid: str) -> None:
    """The mounts made under the rootfs stay while the container exists; delete removes them."""
    b = make_bundle("cat", "/proc/self/mounts")
    _no_mount_ns(b)
    b.write()
    r = in_private_namespaces("""
        "$PYRUNC" --root "$D/state" create -b "$B" "$CID" > "$D/out"
        grep -c " $B/rootfs/" /proc/self/mountinfo > "$D/while"
        "$PYRUNC" --root "$D/state" start "$CID"
        sleep 0.5
        "$PYRUNC" --root "$D/state" delete "$CID"
        grep -c " $B/" /proc/self/mountinfo > "$D/left" || true
        """, PYRUNC=runtime.binary, D=str(tmp_path), B=str(b.path), CID=cid)
    assert r.returncode == 0, r.stderr
    assert int((tmp_path / "while").read_text()) >= 3  # /proc, /dev, /sys at least
    assert "proc /proc proc" in (tmp_path / "out").read_text()
    assert (tmp_path / "left").read_text().strip() == "0"


@pytest.mark.parametrize("kind,link", [("uts", "uts"), ("ipc", "ipc"), ("network", "net")])
def test_unlisted_namespaces_are_inherited(runtime: Runtime, tmp_path: Path, make_bundle: Callable[..., Bundle], cid: str,
                                           kind: str, link: str) -> None:
    b = make_bundle("readlink", f"/proc/self/ns/{link}")
    _drop_ns(b, kind)
    b.config.pop("hostname")
    b.write()
    r = in_private_namespaces(f"""
        readlink /proc/self/ns/{link} > "$D/caller"
        "$PYRUNC" --root "$D/state" run -b "$B" "$CID" > "$D/container"
        """, PYRUNC=runtime.binary, D=str(tmp_path), B=str(b.path), CID=cid)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "container").read_text() == (tmp_path / "caller").read_text()
