"""Networks and the addresses they hand out: the records behind `network create|ls|rm|inspect`
and `run --network bridge|NAME`.

    <root>/networks/<name>.json   one per network: its bridge, subnet and gateway, the rules
                                  its NAT added while its bridge exists, and its endpoints:
                                  {container id: name, hostname, address, veth, ports, rules}
    <root>/networks/.lock         every change happens under an exclusive flock of it
    <root>/config.json            {"network": {"subnet": "10.88.0.0/16",
                                               "pool": "10.89.0.0/16"}} (both optional)

`bridge` is the predefined network (bridge `pyctr0`, the configured subnet, podman's default
10.88.0.0/16 otherwise); its record is made on first use. A network made by `network create`
gets `--subnet` or the first /24 of the pool that no other network overlaps. An address belongs
to its container from `run` to `rm`, stopped or not: the allocation is the record, written
temp + fsync + rename, so no two containers ever hold one address, whatever crashed between.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pyctr.driver.firewall import PortMapping, Rule, from_json
from pyctr.errors import NetworkError, NotFound
from pyctr.image.store import Store, atomic_write, flocked, now, private_dir

DEFAULT = "bridge"
DEFAULT_BRIDGE = "pyctr0"
DEFAULT_SUBNET = "10.88.0.0/16"
DEFAULT_POOL = "10.89.0.0/16"
PSEUDO = ("host", "none")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@dataclass
class Endpoint:
    name: str
    hostname: str
    address: str
    veth: str
    ports: list[PortMapping] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)


@dataclass
class Network:
    name: str
    id: str
    bridge: str
    subnet: str
    gateway: str
    created: str = field(default_factory=now)
    rules: list[Rule] = field(default_factory=list)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    def user_defined(self) -> bool:
        """Names resolve between containers on user-defined networks only (as in docker)."""
        return self.name != DEFAULT

    def to_json(self) -> bytes:
        data = asdict(self)
        for cid, ep in self.endpoints.items():
            data["endpoints"][cid]["ports"] = [p.to_json() for p in ep.ports]
        return json.dumps(data, indent=2).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Network:
        data = json.loads(raw)
        endpoints = {cid: Endpoint(**(ep | {"ports": [PortMapping(**p) for p in ep["ports"]],
                                            "rules": from_json(ep["rules"])}))
                     for cid, ep in data.pop("endpoints").items()}
        return cls(**(data | {"rules": from_json(data["rules"]), "endpoints": endpoints}))


class Networks:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.dir = store.root / "networks"
        private_dir(self.dir)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with flocked(self.dir / ".lock"):
            yield

    def _path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def _config(self) -> dict[str, str]:
        try:
            data = json.loads((self.store.root / "config.json").read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise NetworkError(f"{self.store.root / 'config.json'}: {exc}") from exc
        section = data.get("network") if isinstance(data, dict) else None
        return {k: str(v) for k, v in (section or {}).items()}

    # --- records (call these under `locked`) ----------------------------------------------

    def get(self, name: str) -> Network:
        """The network `name`; the record of `bridge` is made on first use."""
        net = self._load(name)
        if net is None:
            if name != DEFAULT:
                raise NotFound(f"network {name} not found")
            net = self._default()
            self.save(net)
        return net

    def _load(self, name: str) -> Network | None:
        try:
            return Network.from_json(self._path(name).read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise NetworkError(f"{self._path(name)}: damaged record ({exc})") from exc

    def _default(self) -> Network:
        subnet = self._config().get("subnet", DEFAULT_SUBNET)
        return self._new(DEFAULT, DEFAULT_BRIDGE, _check_subnet(subnet, "config.json network.subnet"))

    def save(self, net: Network) -> None:
        atomic_write(self._path(net.name), net.to_json(), mode=0o600)

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def all(self) -> list[Network]:
        """Every network, `bridge` included (as it will be, if it has no record yet)."""
        out = []
        for name in sorted({p.stem for p in self.dir.glob("*.json")} | {DEFAULT}):
            net = self._load(name)
            if net is None and name == DEFAULT:
                net = self._default()
            if net is not None:
                out.append(net)
        return out

    def create(self, name: str, subnet: str | None) -> Network:
        if not _NAME.match(name) or name in PSEUDO or name == DEFAULT:
            raise NetworkError(f"invalid network name {name!r}" if not _NAME.match(name)
                               else f"{name} is a predefined network")
        if self._path(name).exists():
            raise NetworkError(f"network with name {name} already exists")
        others = [ipaddress.ip_network(n.subnet) for n in self.all()]
        if subnet is None:
            subnet = self._free_subnet(others)
        else:
            subnet = _check_subnet(subnet, "--subnet")
            clash = [o for o in others if o.overlaps(ipaddress.ip_network(subnet))]
            if clash:
                raise NetworkError(f"--subnet {subnet} overlaps {clash[0]}, in use by another "
                                   "network")
        nid = uuid.uuid4().hex + uuid.uuid4().hex
        net = self._new(name, "pyctr-" + nid[:8], subnet, nid)
        self.save(net)
        return net

    def _new(self, name: str, bridge: str, subnet: str, nid: str | None = None) -> Network:
        gateway = str(ipaddress.ip_network(subnet)[1])
        return Network(name, nid or uuid.uuid4().hex + uuid.uuid4().hex, bridge, subnet, gateway)

    def _free_subnet(self, taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
        pool = ipaddress.ip_network(_check_subnet(self._config().get("pool", DEFAULT_POOL),
                                                  "config.json network.pool"))
        for candidate in pool.subnets(new_prefix=max(24, pool.prefixlen)):
            if not any(candidate.overlaps(t) for t in taken):
                return str(candidate)
        raise NetworkError(f"no free /24 left in the pool {pool}")

    # --- addresses ------------------------------------------------------------------------

    @staticmethod
    def allocate(net: Network, cid: str, name: str, hostname: str,
                 ports: list[PortMapping], everyone: list[Network]) -> Endpoint:
        """The lowest address of `net` no endpoint holds, for container `cid`; each port
        without a host port (0) gets a free one."""
        for other in everyone:
            for owner, ep in other.endpoints.items():
                for p in ep.ports:
                    if any(p.key() == q.key() and _same_ip(p, q) for q in ports):
                        raise NetworkError(f"port {p.host_port}/{p.proto} is already published "
                                           f"by container {ep.name} ({owner[:12]})")
        ports = _assign_host_ports(ports, everyone)
        subnet = ipaddress.ip_network(net.subnet)
        held = {ep.address for ep in net.endpoints.values()} | {net.gateway}
        for address in subnet.hosts():
            if str(address) not in held:
                ep = Endpoint(name, hostname, str(address), "veth" + cid[:8], list(ports))
                net.endpoints[cid] = ep
                return ep
        raise NetworkError(f"network {net.name}: no free address left in {net.subnet}")


def _assign_host_ports(ports: list[PortMapping], everyone: list[Network]) -> list[PortMapping]:
    """docker's dynamic ports: the lowest of the kernel's ephemeral range that no container
    publishes and that nothing in pyctr's network namespace has bound (a bind test)."""
    taken = {p.key() for net in everyone for ep in net.endpoints.values() for p in ep.ports}
    taken |= {p.key() for p in ports if p.host_port}
    low, high = _ephemeral_range()
    out = []
    for p in ports:
        if not p.host_port:
            port = next((n for n in range(low, high + 1)
                         if (p.proto, n) not in taken and _bindable(p, n)), None)
            if port is None:
                raise NetworkError(f"no free host port left in {low}-{high} for "
                                   f"{p.container_port}/{p.proto}")
            p = dataclasses.replace(p, host_port=port)
            taken.add(p.key())
        out.append(p)
    return out


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49153, 65535  # docker's fallback


def _bindable(p: PortMapping, port: int) -> bool:
    kind = socket.SOCK_STREAM if p.proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((p.host_ip or "0.0.0.0", port))  # noqa: S104 - a test, closed at once
        except OSError:
            return False
    return True


def _same_ip(a: PortMapping, b: PortMapping) -> bool:
    return not a.host_ip or not b.host_ip or a.host_ip == b.host_ip


def _check_subnet(text: str, what: str) -> str:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise NetworkError(f"invalid {what} {text!r}: {exc}") from exc
    if net.version != 4 or net.prefixlen > 30:
        raise NetworkError(f"invalid {what} {text!r}: an IPv4 subnet of /30 or wider")
    return str(net)
