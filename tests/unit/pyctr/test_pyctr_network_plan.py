"""Networking's pure parts: `-p` parsing, the rules planned, address allocation, /etc files.
Nothing here touches a network namespace (the integration tests do, in private ones)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyctr.driver.firewall import PortMapping, network_rules, parse_publish, port_rules
from pyctr.errors import NetworkError, NotFound
from pyctr.image.networks import Networks
from pyctr.image.store import Store
from pyctr.ops.networking import hosts_text, resolv_conf


def test_publish_forms() -> None:
    assert parse_publish("8080:80") == PortMapping("", 8080, 80, "tcp")
    assert parse_publish("127.0.0.1:53:5353/udp") == PortMapping("127.0.0.1", 53, 5353, "udp")
    assert str(parse_publish("10.0.0.1:1:2/tcp")) == "10.0.0.1:1->2/tcp"
    # no host port (docker's forms): 0 until the network picks a free one
    assert parse_publish("80") == PortMapping("", 0, 80, "tcp")
    assert parse_publish("0:80") == parse_publish(":80") == PortMapping("", 0, 80, "tcp")
    assert parse_publish("127.0.0.1::53/udp") == PortMapping("127.0.0.1", 0, 53, "udp")


@pytest.mark.parametrize(("text", "words"), [
    ("0", ["container port '0'"]),
    ("8080:", ["container port ''"]),
    ("8080:80/sctp", ["protocol 'sctp'"]),
    ("70000:80", ["host port '70000'"]),
    ("8080:70000", ["container port '70000'"]),
    ("8080:http", ["container port 'http'"]),
    ("::1:8080:80", ["host IP"]),
    ("localhost:8080:80", ["host IP 'localhost'"]),
])
def test_publish_refusals_name_the_field(text: str, words: list[str]) -> None:
    with pytest.raises(NetworkError) as info:
        parse_publish(text)
    message = str(info.value)
    assert message.startswith(f"invalid --publish {text!r}") and "\n" not in message
    assert all(w in message for w in words), message


def test_rules_are_tagged_and_scoped() -> None:
    rules = network_rules("n1", "pyctr-x", "10.89.0.0/24") + port_rules(
        "abc", "pyctr-x", "10.89.0.0/24", "10.89.0.2", [parse_publish("127.0.0.1:8080:80")])
    assert all(("pyctr net:n1" in r[2]) != ("pyctr abc" in r[2]) for r in rules)
    dnat = [r for r in rules if "DNAT" in r[2]]
    assert {r[1] for r in dnat} == {"PREROUTING", "OUTPUT"}
    for _, _, spec in dnat:
        assert spec[spec.index("-d") + 1] == "127.0.0.1"
        assert spec[spec.index("--dport") + 1] == "8080"
        assert spec[-1] == "10.89.0.2:80"


def test_allocation_holds_until_released(tmp_path: Path) -> None:
    nets = Networks(Store(tmp_path / "root"))
    with nets.locked():
        net = nets.create("n1", "10.99.0.0/29")
        a = nets.allocate(net, "a" * 64, "a", "a", [], nets.all())
        b = nets.allocate(net, "b" * 64, "b", "b", [], nets.all())
        nets.save(net)
        assert (a.address, b.address) == ("10.99.0.2", "10.99.0.3")  # .1 is the gateway
        net = nets.get("n1")  # from the record on disk
        assert net.endpoints["a" * 64].address == "10.99.0.2"
        del net.endpoints["a" * 64]
        c = nets.allocate(net, "c" * 64, "c", "c", [], nets.all())
        assert c.address == "10.99.0.2"  # freed, so given again
        for n in "def":  # .4 .5 .6: a /29 has six host addresses, the gateway one of them
            nets.allocate(net, n * 64, n, n, [], nets.all())
        with pytest.raises(NetworkError, match="no free address left in 10.99.0.0/29"):
            nets.allocate(net, "g" * 64, "g", "g", [], nets.all())
    # listing every network (as allocate's port check does) writes no record of `bridge`
    assert sorted(p.name for p in nets.dir.iterdir()) == [".lock", "n1.json"]


def test_a_published_port_is_held_once(tmp_path: Path) -> None:
    nets = Networks(Store(tmp_path / "root"))
    with nets.locked():
        net = nets.get("bridge")
        nets.allocate(net, "a" * 64, "web", "a", [parse_publish("8080:80")], nets.all())
        nets.save(net)
        with pytest.raises(NetworkError, match="port 8080/tcp is already published by container web"):
            nets.allocate(net, "b" * 64, "b", "b", [parse_publish("127.0.0.1:8080:81")], nets.all())
        nets.allocate(net, "c" * 64, "c", "c", [parse_publish("8080:80/udp")], nets.all())


def test_ports_without_a_host_port_get_free_ones(tmp_path: Path) -> None:
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    nets = Networks(Store(tmp_path / "root"))
    with nets.locked():
        net = nets.get("bridge")
        nets.allocate(net, "a" * 64, "a", "a", [parse_publish(f"{low}:80")], nets.all())
        nets.save(net)
        ep = nets.allocate(net, "b" * 64, "b", "b", [parse_publish("80"), parse_publish("81"),
                                                      parse_publish("80/udp")], nets.all())
        tcp = [p.host_port for p in ep.ports if p.proto == "tcp"]
        assert len(set(tcp)) == 2 and all(low < port <= high for port in tcp)  # not a's
        assert all(p.host_port for p in ep.ports)
        nets.save(net)
        again = nets.allocate(net, "c" * 64, "c", "c", [parse_publish("80")], nets.all())
        assert again.ports[0].host_port not in [low, *tcp]


def test_network_create_refusals(tmp_path: Path) -> None:
    nets = Networks(Store(tmp_path / "root"))
    with nets.locked():
        assert nets.create("n1", None).subnet == "10.89.0.0/24"
        assert nets.create("n2", None).subnet == "10.89.1.0/24"
        for name, subnet, words in [("n1", None, "already exists"), ("host", None, "predefined"),
                                    ("bad name", None, "invalid network name"),
                                    ("n3", "10.89.1.128/25", "overlaps 10.89.1.0/24"),
                                    ("n3", "10.0.0.1/24", "invalid --subnet"),
                                    ("n3", "10.0.0.0/31", "/30 or wider")]:
            with pytest.raises(NetworkError, match=words):
                nets.create(name, subnet)
        with pytest.raises(NotFound):
            nets.get("n3")


def test_hosts_name_peers_on_user_networks_only(tmp_path: Path) -> None:
    nets = Networks(Store(tmp_path / "root"))
    with nets.locked():
        for net in (nets.get("bridge"), nets.create("n1", None)):
            nets.allocate(net, "a" * 64, "one", "aaaaaaaaaaaa", [], [])
            nets.allocate(net, "b" * 64, "two", "box", [], [])
            text = hosts_text(net, "b" * 64)
            assert "127.0.0.1\tlocalhost\n" in text
            me = text.splitlines()[2].split()
            assert me[0] == str(net.endpoints["b" * 64].address) and me[1:] == ["box", "two"]
            assert ("one" in text) == (net.name == "n1")


def test_resolv_conf_drops_loopback_resolvers(tmp_path: Path) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("search example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.1\n")
    assert resolv_conf(host) == "search example.org\nnameserver 192.0.2.1\n"
    host.write_text("nameserver 127.0.0.53\nnameserver ::1\n")
    assert resolv_conf(host) == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
