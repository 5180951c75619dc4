"""NAT for outbound traffic and published ports (`-p [IP:]HOST:CONTAINER[/tcp|udp]`), as rules
planned here as data and applied with `iptables-restore --noflush`, one batch per change.

Why iptables: it is what this kind of host has (Debian's iptables 1.8.9, whose default
alternative, iptables-nft, programs the kernel's nf_tables, the same engine `nft` drives); the
`nft` command and its Python bindings are absent, and pyroute2's nftables module (0.7) builds
rules from raw expressions only. iptables-legacy hosts work unchanged, since the command is the
same. docker and podman (before netavark) do the same.

Every rule sits in a built-in chain (inserted first, ahead of any DROP another tool put there)
and carries a comment naming its owner, `pyctr net:<network>` or `pyctr <container id12>`; the
exact rules added are recorded with the network, so removing them is `-D` of the same rules and
nothing else, and `iptables-save | grep pyctr` shows all that pyctr added.

    nat POSTROUTING  -s SUBNET ! -o BR -j MASQUERADE              outbound NAT
    nat POSTROUTING  -o BR -m addrtype --src-type LOCAL -j MASQUERADE
                                        replies to a port reached at 127.0.0.1 come back to us
    filter FORWARD   -i BR -j ACCEPT; -o BR -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    per port:
    nat PREROUTING, OUTPUT  -m addrtype --dst-type LOCAL [-d IP] -p P --dport H -j DNAT --to C:P
    nat POSTROUTING  -s SUBNET -d C -p P --dport P -j MASQUERADE  a container reaching a
                                        published port of its own network (hairpin)
    filter FORWARD   -d C -o BR -p P --dport P -j ACCEPT
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess  # noqa: TID251 - iptables is a separate program
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from pyctr.errors import NetworkError

# (table, chain, the rule's matches and target)
Rule = tuple[str, str, tuple[str, ...]]


@dataclass(frozen=True)
class PortMapping:
    host_ip: str
    host_port: int
    container_port: int
    proto: str = "tcp"

    def key(self) -> tuple[str, int]:
        return self.proto, self.host_port

    def __str__(self) -> str:
        host = f"{self.host_ip}:" if self.host_ip else ""
        return f"{host}{self.host_port}->{self.container_port}/{self.proto}"

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def parse_publish(text: str) -> PortMapping:
    """docker's `-p [[IP:][HOST]:]CONTAINER[/tcp|udp]` (IPv4). Without HOST (`-p 80`,
    `-p 127.0.0.1::80`) the host port is 0 here: a free one is chosen when the container
    joins its network (networks.Networks.allocate), as docker does."""
    spec, _, proto = text.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise NetworkError(f"invalid --publish {text!r}: protocol {proto!r} (tcp or udp)")
    parts = spec.rsplit(":", 2)
    if len(parts) == 1:
        parts = ["", parts[0]]
    host_ip = parts[0] if len(parts) == 3 else ""
    if host_ip:
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError as exc:
            raise NetworkError(f"invalid --publish {text!r}: host IP {host_ip!r} "
                               "(an IPv4 address)") from exc
    host_port = 0 if parts[-2] in ("", "0") else _port(text, "host", parts[-2])
    return PortMapping(host_ip, host_port, _port(text, "container", parts[-1]), proto)


def _port(text: str, which: str, value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise NetworkError(f"invalid --publish {text!r}: {which} port {value!r} (1-65535)")
    return int(value)


# --- plans ----------------------------------------------------------------------------------


def network_rules(name: str, bridge: str, subnet: str) -> list[Rule]:
    tag = ("-m", "comment", "--comment", f"pyctr net:{name}")
    return [
        ("nat", "POSTROUTING", ("-s", subnet, "!", "-o", bridge, *tag, "-j", "MASQUERADE")),
        ("nat", "POSTROUTING", ("-o", bridge, "-m", "addrtype", "--src-type", "LOCAL", *tag,
                                "-j", "MASQUERADE")),
        ("filter", "FORWARD", ("-i", bridge, *tag, "-j", "ACCEPT")),
        ("filter", "FORWARD", ("-o", bridge, "-m", "conntrack", "--ctstate",
                               "RELATED,ESTABLISHED", *tag, "-j", "ACCEPT")),
    ]


def port_rules(owner: str, bridge: str, subnet: str, address: str,
               ports: Iterable[PortMapping]) -> list[Rule]:
    tag = ("-m", "comment", "--comment", f"pyctr {owner}")
    rules: list[Rule] = []
    for p in ports:
        proto = ("-p", p.proto)
        dest = ("-d", p.host_ip) if p.host_ip else ()
        dnat = ("-m", "addrtype", "--dst-type", "LOCAL", *dest, *proto, "--dport",
                str(p.host_port), *tag, "-j", "DNAT", "--to-destination",
                f"{address}:{p.container_port}")
        to_container = ("-d", address, *proto, "--dport", str(p.container_port))
        rules += [
            ("nat", "PREROUTING", dnat),
            ("nat", "OUTPUT", dnat),
            ("nat", "POSTROUTING", ("-s", subnet, *to_container, *tag, "-j", "MASQUERADE")),
            ("filter", "FORWARD", (*to_container, "-o", bridge, *tag, "-j", "ACCEPT")),
        ]
    return rules


# --- applying -------------------------------------------------------------------------------


def _iptables(name: str = "iptables") -> str:
    found = shutil.which(name)
    if not found:
        raise NetworkError(f"bridge networks need the {name} command (iptables-nft or "
                           "iptables-legacy), which is not on PATH")
    return found


def _restore(op: str, rules: list[Rule]) -> subprocess.CompletedProcess[str]:
    """One `iptables-restore --noflush` for all of `rules`: one process instead of one per rule,
    and each table's part is committed whole or not at all."""
    lines = []
    for table in dict.fromkeys(r[0] for r in rules):
        lines.append(f"*{table}")
        for _, chain, spec in (r for r in rules if r[0] == table):
            where = f"{chain} 1" if op == "-I" else chain
            lines.append(f"{op} {where} " + " ".join(_quote(s) for s in spec))
        lines.append("COMMIT")
    return subprocess.run([_iptables("iptables-restore"), "-w", "--noflush"],
                          input="\n".join(lines) + "\n", capture_output=True, text=True,
                          check=False)


def _quote(word: str) -> str:
    return f'"{word}"' if " " in word else word


def _call(op: str, rule: Rule) -> subprocess.CompletedProcess[str]:
    table, chain, spec = rule
    return subprocess.run([_iptables(), "-w", "-t", table, op, chain, *spec],
                          capture_output=True, text=True, check=False)


def add(rules: list[Rule]) -> None:
    """Add every rule, or (on a refusal) none: a table committed before is taken back."""
    if not rules:
        return
    proc = _restore("-I", rules)
    if proc.returncode != 0:
        remove(rules)
        raise NetworkError(f"iptables-restore: {proc.stderr.strip() or proc.returncode}")


def remove(rules: list[Rule]) -> list[str]:
    """Delete each rule that is there; the errors other than "no such rule". All at once,
    or (when one is missing, which fails the batch) one by one."""
    if not rules or _restore("-D", rules).returncode == 0:
        return []
    errors = []
    for rule in reversed(rules):
        proc = _call("-D", rule)
        if proc.returncode != 0 and not _missing(proc.stderr):
            errors.append(f"iptables -t {rule[0]} -D {rule[1]}: {proc.stderr.strip()}")
    return errors


def _missing(stderr: str) -> bool:
    text = stderr.lower()
    return "does a matching rule exist" in text or "bad rule" in text or "no chain" in text


def from_json(data: object) -> list[Rule]:
    """Rules as a record stores them ([[table, chain, [args...]], ...])."""
    out: list[Rule] = []
    for item in data if isinstance(data, list) else []:
        table, chain, spec = item
        out.append((str(table), str(chain), tuple(str(s) for s in spec)))
    return out
