"""A container's life on a bridge network, and `network create|ls|rm|inspect`.

    run      join:     an address from the network's record (held until rm), the ports
                       checked against every other published port; /etc/hosts (with the
                       other containers of a user-defined network, by name), /etc/resolv.conf
    start    connect:  (after `runtime create`, before `runtime start`, with the init's pid)
                       the bridge and its NAT if missing; a veth pair into the container's
                       network namespace; the published ports' rules
    exit     disconnect: the ports' rules and the veth go; the address stays
    rm       leave:    disconnect, then the address goes; the peers' /etc/hosts forget it

Each step works from the network's record alone, under its lock, so `rm -f` of a container
whose monitor or runtime was killed removes exactly the veth, rules and address it recorded.
/etc/hosts is rewritten in place: the container sees the file through a bind mount of its
inode, so a peer that joins later appears in the running containers' copies.
"""

from __future__ import annotations

import contextlib
import ipaddress
from pathlib import Path
from typing import Any

from pyctr.driver import firewall, netlink
from pyctr.driver.firewall import PortMapping
from pyctr.errors import NetworkError, NotFound
from pyctr.image.networks import PSEUDO, Endpoint, Network, Networks
from pyctr.image.store import Store

FALLBACK_DNS = ("8.8.8.8", "8.8.4.4")  # docker's, when the host's resolvers are all local


def is_bridge(network: str) -> bool:
    return network not in PSEUDO and not network.startswith("container:")


def join(store: Store, network: str, cid: str, name: str, hostname: str,
         ports: list[PortMapping]) -> Endpoint:
    nets = Networks(store)
    with nets.locked():
        net = nets.get(network)
        ep = nets.allocate(net, cid, name, hostname, ports, nets.all())
        nets.save(net)
        etc = store.containers / cid / "etc"
        (etc / "resolv.conf").write_text(resolv_conf(Path("/etc/resolv.conf")))
        _write_hosts(store, net)
    return ep


def connect(store: Store, network: str, cid: str, pid: int) -> None:
    nets = Networks(store)
    with nets.locked():
        net = nets.get(network)
        ep = net.endpoints.get(cid)
        if ep is None:
            raise NetworkError(f"container {cid[:12]} holds no address on network {network}")
        _bridge_up(nets, net)
        netlink.attach(pid, net.bridge, ep.veth, ep.address, net.prefixlen, net.gateway)
        try:
            ep.rules = firewall.port_rules(cid[:12], net.bridge, net.subnet, ep.address, ep.ports)
            firewall.add(ep.rules)
        except BaseException:
            ep.rules = []
            netlink.delete_link(ep.veth)
            raise
        nets.save(net)


def _bridge_up(nets: Networks, net: Network) -> None:
    """The network's bridge, address and NAT rules, made if missing (first use, or lost)."""
    made = netlink.ensure_bridge(net.bridge, net.gateway, net.prefixlen)
    if made or not net.rules:
        firewall.remove(net.rules)
        net.rules = firewall.network_rules(net.name, net.bridge, net.subnet)
        try:
            firewall.add(net.rules)
        except BaseException:
            net.rules = []
            if made:
                netlink.delete_link(net.bridge)
            raise
        nets.save(net)


def disconnect(store: Store, network: str, cid: str) -> list[str]:
    """The container's veth and rules go, its address stays; the errors, if any."""
    return _detach(store, network, cid, release=False)


def leave(store: Store, network: str, cid: str) -> list[str]:
    """disconnect, then give the address back and tell the peers."""
    return _detach(store, network, cid, release=True)


def _detach(store: Store, network: str, cid: str, *, release: bool) -> list[str]:
    """disconnect; with release, leave: the endpoint goes too and the peers' hosts are rewritten."""
    nets = Networks(store)
    with nets.locked():
        try:
            net = nets.get(network)
        except NotFound:
            return []
        ep = net.endpoints.pop(cid, None) if release else net.endpoints.get(cid)
        if ep is None:
            return []
        errors = _undo(ep)
        nets.save(net)
        if release:
            _write_hosts(store, net)
    return errors


def _undo(ep: Endpoint) -> list[str]:
    errors = firewall.remove(ep.rules)
    ep.rules = []
    try:
        netlink.delete_link(ep.veth)
    except NetworkError as exc:
        errors.append(str(exc))
    return errors


def settings(store: Store, network: str, cid: str) -> dict[str, Any]:
    """docker inspect's NetworkSettings."""
    empty: dict[str, Any] = {"Networks": {}, "Ports": {}, "IPAddress": "", "Gateway": ""}
    if not is_bridge(network):
        return empty | {"Networks": {network: {}}}
    nets = Networks(store)
    try:
        net = nets.get(network)
    except NotFound:
        return empty
    ep = net.endpoints.get(cid)
    if ep is None:
        return empty
    ports = {f"{p.container_port}/{p.proto}": [{"HostIp": p.host_ip or "0.0.0.0",
                                                 "HostPort": str(p.host_port)}] for p in ep.ports}
    one = {"NetworkID": net.id, "IPAddress": ep.address, "IPPrefixLen": net.prefixlen,
           "Gateway": net.gateway, "Aliases": [ep.name]}
    return {"Networks": {net.name: one}, "Ports": ports, "IPAddress": ep.address,
            "Gateway": net.gateway, "Bridge": net.bridge}


def published(store: Store) -> dict[str, list[PortMapping]]:
    """Every container's published ports, by container id (`ps`, `port`)."""
    nets = Networks(store)
    with nets.locked():
        return {cid: ep.ports for net in nets.all() for cid, ep in net.endpoints.items()}


def port_text(p: PortMapping) -> str:
    """As docker shows a binding: 0.0.0.0:8080->80/tcp."""
    return f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.container_port}/{p.proto}"


# --- /etc files -------------------------------------------------------------------------------


def hosts_text(net: Network, cid: str) -> str:
    me = net.endpoints[cid]
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"{me.address}\t" + " ".join(dict.fromkeys([me.hostname, me.name]))]
    if net.user_defined():
        for other, ep in sorted(net.endpoints.items(), key=lambda kv: kv[1].address):
            if other != cid:
                lines.append(f"{ep.address}\t" + " ".join(dict.fromkeys([ep.name, other[:12],
                                                                          ep.hostname])))
    return "\n".join(lines) + "\n"


def _write_hosts(store: Store, net: Network) -> None:
    for cid in net.endpoints:
        path = store.containers / cid / "etc" / "hosts"
        if path.parent.is_dir():
            # in place (same inode): running containers see it through their bind mount
            with contextlib.suppress(FileNotFoundError), open(path, "w") as f:
                f.write(hosts_text(net, cid))


def resolv_conf(host: Path) -> str:
    """The host's resolv.conf without the resolvers a container cannot reach (loopback ones,
    such as systemd-resolved's 127.0.0.53); docker's fallback when none is left."""
    try:
        lines = host.read_text().splitlines()
    except OSError:
        lines = []
    kept = []
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and _loopback(words[1]):
            continue
        kept.append(line)
    if not any(line.split()[:1] == ["nameserver"] for line in kept):
        kept += [f"nameserver {ip}" for ip in FALLBACK_DNS]
    return "\n".join(kept) + "\n"


def _loopback(text: str) -> bool:
    try:
        return ipaddress.ip_address(text.split("%")[0]).is_loopback
    except ValueError:
        return False


# --- network create | ls | rm -----------------------------------------------------------------


def create_network(store: Store, name: str, subnet: str | None) -> Network:
    nets = Networks(store)
    with nets.locked():
        return nets.create(name, subnet)


def inspect(net: Network) -> dict[str, Any]:
    """docker network inspect's shape."""
    return {"Name": net.name, "Id": net.id, "Created": net.created, "Driver": "bridge",
            "IPAM": {"Driver": "default", "Config": [{"Subnet": net.subnet,
                                                      "Gateway": net.gateway}]},
            "Containers": {cid: {"Name": ep.name, "IPv4Address": f"{ep.address}/{net.prefixlen}",
                                 "Ports": [str(p) for p in ep.ports]}
                           for cid, ep in net.endpoints.items()},
            "Options": {"com.docker.network.bridge.name": net.bridge}}


def list_networks(store: Store) -> list[Network]:
    nets = Networks(store)
    with nets.locked():
        return nets.all()


def remove_network(store: Store, name: str) -> None:
    """Its bridge, its rules and its record. `bridge` may go too when no container holds an
    address on it: it is made again on first use, as `pyctr0` was the first time."""
    if name in PSEUDO:
        raise NetworkError(f"{name} is a predefined network and cannot be removed")
    nets = Networks(store)
    with nets.locked():
        net = nets.get(name)
        if net.endpoints:
            users = ", ".join(ep.name for ep in net.endpoints.values())
            raise NetworkError(f"network {name} has active endpoints: {users}")
        errors = firewall.remove(net.rules)
        netlink.delete_link(net.bridge)
        if errors:  # the record keeps the rules: `network rm` again retries them
            raise NetworkError(f"network {name}: " + "; ".join(errors))
        nets.delete(name)
