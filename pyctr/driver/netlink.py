"""Bridges, veth pairs and a container's side of them, with iproute2's `ip` in batch mode.

    pyctr's network namespace                    the container's (/proc/<pid>/ns/net)
    bridge pyctr0 10.88.0.1/16  ── veth<id8> ═══ eth0 10.88.0.2/16, default via 10.88.0.1, lo up

Why `ip` and not pyroute2: importing pyroute2 0.7 costs 250-365 ms (its package __init__ loads
every entry point of every installed distribution, and even its submodules alone pull in
multiprocessing, asyncio and unittest.mock: ~140 ms), while one `ip -batch` process costs 2-4
ms. A bridge run makes three: the bridge (when missing), the veth pair, the container's side.

The container's end is made directly in the container's namespace (the kernel's veth
`IFLA_NET_NS_FD`), through a file descriptor of /proc/<pid>/ns/net that pyctr opened and
passes down (not by pid, which could be reused): `ip` opens `netns /proc/self/fd/N`, and
`nsenter --net=/proc/self/fd/N` configures it from inside. pyctr's own namespace never changes.

Every sysctl written here is one of the current network namespace (net.ipv4.ip_forward and the
bridge's route_localnet are per namespace): pyctr's own, as docker sets dockerd's.
"""

from __future__ import annotations

import os
import shutil
import subprocess  # noqa: TID251 - iproute2 is a separate program
from pathlib import Path

from pyctr.errors import NetworkError

CONTAINER_IFNAME = "eth0"


def _which(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not found:
        raise NetworkError(f"bridge networks need the {name} command, which is not on PATH")
    return found


def _run(argv: list[str], lines: list[str] | None = None,
         pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input="".join(f"{line}\n" for line in lines or []),
                          capture_output=True, text=True, check=False, pass_fds=pass_fds)


def _err(proc: subprocess.CompletedProcess[str]) -> str:
    """`ip`'s complaint on one line (-batch adds "Command failed -:N" on another)."""
    return "; ".join(line.strip() for line in proc.stderr.splitlines() if line.strip()) \
        or f"exit status {proc.returncode}"


def _batch(lines: list[str], netns_fd: int | None = None) -> None:
    """`ip -batch -` of `lines`, in pyctr's namespace or (netns_fd) in the container's."""
    argv = [_which("ip"), "-batch", "-"]
    fds: tuple[int, ...] = ()
    if netns_fd is not None:
        argv = [_which("nsenter"), f"--net=/proc/self/fd/{netns_fd}", *argv]
        fds = (netns_fd,)
    proc = _run(argv, lines, fds)
    if proc.returncode != 0:
        where = " (in the container's namespace)" if netns_fd is not None else ""
        raise NetworkError(f"ip{where}: {_err(proc)}")


def ensure_bridge(name: str, gateway: str, prefixlen: int) -> bool:
    """The bridge `name` with `gateway/prefixlen`, up; whether this call made it."""
    proc = _run([_which("ip"), "link", "add", "name", name, "type", "bridge"])
    made = proc.returncode == 0
    if not made and "exists" not in proc.stderr:
        raise NetworkError(f"ip link add {name} type bridge: {_err(proc)}")
    # `replace`: an address the bridge has already is no error
    _batch([f"address replace {gateway}/{prefixlen} dev {name}", f"link set dev {name} up"])
    # Published ports reached at 127.0.0.1 are DNATed out of the bridge: the kernel drops
    # such packets as martians unless the interface allows loopback sources.
    _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
    _sysctl("net/ipv4/ip_forward", "1")
    return made


def delete_link(ifname: str) -> bool:
    """Delete `ifname` (a veth's peer goes with it); whether it existed."""
    proc = _run([_which("ip"), "link", "del", "dev", ifname])
    if proc.returncode == 0:
        return True
    if "Cannot find device" in proc.stderr or "does not exist" in proc.stderr:
        return False
    raise NetworkError(f"ip link del {ifname}: {_err(proc)}")


def _sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key
    try:
        if path.read_text().strip() != value:
            path.write_text(value)
    except OSError as exc:
        raise NetworkError(f"sysctl {key.replace('/', '.')}={value}: {exc.strerror}") from exc


def attach(pid: int, bridge: str, host_ifname: str, address: str, prefixlen: int,
           gateway: str) -> None:
    """A veth pair from `bridge` into the network namespace of `pid`, configured there."""
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _run_or_raise([_which("ip"), "link", "add", "name", host_ifname, "type", "veth", "peer",
                       "name", CONTAINER_IFNAME, "netns", f"/proc/self/fd/{fd}"], (fd,))
        try:
            _batch([f"link set dev {host_ifname} master {bridge}",
                    f"link set dev {host_ifname} up"])
            _batch(["link set dev lo up",
                    f"address add {address}/{prefixlen} dev {CONTAINER_IFNAME}",
                    f"link set dev {CONTAINER_IFNAME} up",
                    f"route add default via {gateway} dev {CONTAINER_IFNAME}"], netns_fd=fd)
        except BaseException:
            delete_link(host_ifname)  # its peer goes with it, wherever it is
            raise
    finally:
        os.close(fd)


def _run_or_raise(argv: list[str], pass_fds: tuple[int, ...]) -> None:
    proc = _run(argv, pass_fds=pass_fds)
    if proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(argv[1:4])}: {_err(proc)}")
