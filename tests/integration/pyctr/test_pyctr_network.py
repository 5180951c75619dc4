"""Issue 16, networking: bridges, veths, addresses, NAT and published ports, for real.

Every scenario runs in a process of its own inside fresh private network and mount namespaces
(`unshare --net --mount --propagation private`, lo up): the bridges, veths, routes, iptables
rules and the ip_forward sysctl pyctr makes exist only in that copy and vanish with it, and all
traffic goes to addresses inside it. The test re-executes this file there (`python FILE
SCENARIO ROOT`); the scenario prints what it saw as JSON, and the test asserts on that. What
pyctr leaves is listed before and after (`ip -o link`, `ip -o addr`, `ip route`, the rules of
`iptables-save`, the networks' allocation records) and must be the same.
"""

from __future__ import annotations

import json
import os
import subprocess  # noqa: TID251 - tests drive the real command line
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()
REPO = HERE.parents[3]
sys.path[:0] = [str(REPO / "tests" / "integration"), str(REPO / "tests")]

from pyctr_fixtures import RUNTIME_PARAMS, _tar_layer, build_oci_layout  # noqa: E402

pytestmark = pytest.mark.requires("root", "busybox", "cmd:unshare", "cmd:ip", "cmd:iptables",
                                  "cmd:iptables-save")
IMAGE = "localhost/net-busybox:v1"
PAGE = "hello from a published port\n"
HTTPD = ["busybox", "httpd", "-f", "-p", "80", "-h", "/www"]


# --- outside: the tests ---------------------------------------------------------------------


def in_private_netns(scenario: str, root: Path, runtime: str) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYCTR_TEST_RUNTIME=runtime)
    p = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private",
                        sys.executable, str(HERE), scenario, str(root)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, f"{scenario} failed in its namespace:\n{p.stderr[-4000:]}{p.stdout}"
    result: dict[str, object] = json.loads(p.stdout.splitlines()[-1])
    return result


def _runtime(param: str) -> str:
    import shutil
    found = shutil.which(param) or param
    if not os.path.exists(found):
        pytest.skip(f"runtime {param} not found")
    return found


@pytest.mark.parametrize("runtime", RUNTIME_PARAMS)
def test_published_port_serves_a_page(tmp_path: Path, runtime: str) -> None:
    r = in_private_netns("published_port", tmp_path, _runtime(runtime))
    assert r["page_lo"] == r["page_gateway"] == PAGE  # via 127.0.0.1:8080 and 10.88.0.1:8080
    inside = r["inside"]
    assert isinstance(inside, dict)
    assert inside["links"] == ["eth0", "lo"]
    assert "inet 10.88.0.2/16" in str(inside["eth0"])
    assert "default via 10.88.0.1 dev eth0" in str(inside["routes"])
    assert "10.88.0.2\tweb-host web" in str(inside["hosts"])
    assert str(inside["hostname"]) == "web-host"
    assert "nameserver" in str(inside["resolv"])
    assert r["inspect"] == ["10.88.0.2", {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}]
    running = r["running"]
    assert isinstance(running, dict)
    assert "pyctr0" in running["links"] and any(n.startswith("veth") for n in running["links"])
    assert any("DNAT --to-destination 10.88.0.2:80" in rule for rule in running["rules"])
    # rm -f: the veth, the container's rules and its address are gone; the bridge stays
    after_rm = r["after_rm"]
    assert isinstance(after_rm, dict)
    assert not [n for n in after_rm["links"] if n.startswith("veth")]
    assert not [rule for rule in after_rm["rules"] if "10.88.0.2" in rule]
    assert after_rm["files"] == {"bridge.json": {}}
    # network rm bridge: back to the namespace as it was before pyctr ran
    assert r["after"] == r["before"]


def test_user_network_reaches_peers_by_name(tmp_path: Path) -> None:
    r = in_private_netns("user_network", tmp_path, _runtime(RUNTIME_PARAMS[0]))
    assert r["by_name"] == PAGE  # net-two fetched http://net-one/ through its /etc/hosts
    assert r["ping"] == 0
    assert r["late_peer_seen"] is True  # net-one's /etc/hosts learnt of net-three
    addresses = r["addresses"]
    assert isinstance(addresses, list)
    assert len(set(addresses)) == 3 and all(str(a).startswith("10.89.0.") for a in addresses)
    assert r["ls"] == ["bridge", "net-a", "host", "none"]
    assert r["members"] == ["net-one", "net-three", "net-two"]
    assert r["reused_after_rm"] == addresses[0]  # net-one's address, freed by rm
    refusal = r["rm_in_use"]
    assert isinstance(refusal, list)
    assert refusal[0] == 1 and refusal[1].startswith("pyctr: network net-a has active endpoints")
    now, then = r["default_bridge"]  # type: ignore[misc]
    assert now == then  # net-a's coming and going left the default bridge as it was
    assert r["after"] == r["before"]


def test_network_none_has_only_lo(tmp_path: Path) -> None:
    r = in_private_netns("none", tmp_path, _runtime(RUNTIME_PARAMS[0]))
    assert r["default"] == r["none"] == ["lo"]
    assert r["host"] == r["host_view"]  # --network host: the namespace's own interfaces
    for rc, err in r["refusals"]:  # type: ignore[union-attr]
        assert rc == 125 and len(err.splitlines()) == 1 and err.startswith("pyctr: "), err
    assert r["left"].strip() == ""  # no container record left by a refused run
    assert r["after"] == r["before"]


def test_dynamic_host_ports_ps_and_port(tmp_path: Path) -> None:
    r = in_private_netns("dynamic_ports", tmp_path, _runtime(RUNTIME_PARAMS[0]))
    low, high = r["range"]  # type: ignore[misc]
    port = r["dyn_port"]
    assert isinstance(port, int) and low < port <= high
    assert port != r["busy"]  # a port something had bound is skipped
    assert r["page_dyn"] == PAGE
    lines = r["port_all"]
    assert isinstance(lines, list) and len(lines) == 2
    assert lines[0].startswith("80/tcp -> 0.0.0.0:") and lines[1].startswith("9000/udp -> 0.0.0.0:")
    pall = int(lines[0].rsplit(":", 1)[1])
    assert pall not in (port, r["busy"])  # -P: the image's EXPOSE, on other free ports
    assert r["page_pall"] == PAGE
    assert f"0.0.0.0:{port}->80/tcp" in str(r["ps"])
    assert f"0.0.0.0:{pall}->80/tcp" in str(r["ps"]) and "PORTS" in str(r["ps"])
    missing = r["port_missing"]
    assert missing == [1, "pyctr: No public port '81/tcp' published for dyn\n"]
    assert r["usage_rc"] == 125  # docker's status for a command line it cannot parse
    assert r["after"] == r["before"]


def test_network_of_another_container(tmp_path: Path) -> None:
    r = in_private_netns("container_network", tmp_path, _runtime(RUNTIME_PARAMS[0]))
    assert r["page"] == PAGE  # 127.0.0.1 is srv's own lo: one network namespace
    assert "inet 10.88.0.2/16" in str(r["addr"])
    assert r["hostname"] == "srv-host" and "srv-host" in str(r["hosts"])
    assert r["same_netns"] is True
    for rc, err in r["refusals"]:  # type: ignore[union-attr]
        assert rc == 125 and len(err.splitlines()) == 1 and err.startswith("pyctr: "), err
    assert r["left"] == ["srv"]  # refused runs left no record
    assert r["after"] == r["before"]


def test_outbound_traffic_is_masqueraded(tmp_path: Path) -> None:
    r = in_private_netns("outbound", tmp_path, _runtime(RUNTIME_PARAMS[0]))
    assert r["seen"] == "192.0.2.1"  # not 10.88.0.2: NAT on the way out
    assert r["after"] == r["before"]


def test_rm_f_after_monitor_and_init_were_killed(tmp_path: Path) -> None:
    r = in_private_netns("killed", tmp_path, _runtime(RUNTIME_PARAMS[0]))
    assert r["page"] == PAGE
    assert r["killed"] is True
    assert r["after"] == r["before"]


def test_dockerfile_with_every_instruction_serves_a_page(tmp_path: Path) -> None:
    probe = subprocess.run([sys.executable, "-m", "pyctr", "build", "--help"], capture_output=True,
                           env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    if probe.returncode != 0:
        pytest.skip("`pyctr build` is not there yet (issue 16, part 1)")
    r = in_private_netns("dockerfile", tmp_path, _runtime(RUNTIME_PARAMS[0]))
    assert r["pages"] == {"index.html": PAGE, "run.txt": "hi from RUN\n",
                          "exec.txt": "exec form\n", "stage.txt": "built in stage one\n",
                          "a.txt": "file a\n"}
    assert r["ignored"] == 404  # .dockerignore kept files/secret.txt out of COPY's glob
    assert r["owners"] == ["/www/stage.txt 0:0", "/www/b.txt 1000:1000"]  # COPY --chown
    config = r["config"]
    assert isinstance(config, dict)
    assert config["User"] == "1000" and config["WorkingDir"] == "/www"
    assert config["ExposedPorts"] == {"8000/tcp": {}} and config["Volumes"] == {"/data": {}}
    assert config["Labels"] == {"org.example.test": "every-instruction"}
    assert config["StopSignal"] == "SIGTERM" and config["Healthcheck"]["Test"][0] == "CMD-SHELL"
    assert "GREETING=hi" in config["Env"]
    assert r["after"] == r["before"]


# --- inside: the scenarios, run in the private namespaces ------------------------------------


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed rc={p.returncode}: {p.stderr}{p.stdout}")
    return p


class Ctr:
    def __init__(self, root: Path) -> None:
        self.root = root / "store"
        self.argv = [sys.executable, "-m", "pyctr", "--root", str(self.root), "--runtime",
                     os.environ["PYCTR_TEST_RUNTIME"]]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh(*self.argv, *args, check=check)

    def load_image(self, work: Path) -> None:
        layout = work / "layout"
        www = _tar_layer([("www", "dir", None, 0o755), ("www/index.html", "file", PAGE, 0o644)])
        build_oci_layout(layout, tag=IMAGE, cmd=HTTPD, extra_layer=www)
        archive = work / "image.tar"
        with tarfile.open(archive, "w") as tar:
            for name in ("oci-layout", "index.json", "blobs"):
                tar.add(layout / name, name)
        self("load", "-i", str(archive))

    def remove_all(self) -> None:
        containers = self.root / "containers"
        if containers.is_dir():
            for d in containers.iterdir():
                if not d.name.startswith("."):
                    self("rm", "-f", d.name, check=False)


def snapshot(root: Path) -> dict[str, object]:
    """What pyctr may leave in the namespace: interfaces, addresses, routes, rules, records."""
    links = sorted(line.split(":")[1].strip().split("@")[0]
                   for line in sh("ip", "-o", "link").stdout.splitlines())
    # (not the IPv6 link-local addresses the kernel gives each interface, new with each one)
    addrs = sorted(" ".join(line.split()[1:4]) for line in sh("ip", "-o", "addr").stdout.splitlines()
                   if "scope link" not in line)
    rules = [line for line in sh("iptables-save").stdout.splitlines()
             if line.startswith("-A") or (line.startswith(":") and " - " in line)]
    records = root / "store" / "networks"
    files = {p.name: json.loads(p.read_text())["endpoints"] for p in sorted(records.glob("*.json"))}
    # (a bridge whose last port went has no carrier: its route says "linkdown", a state)
    routes = [line.replace(" linkdown", "").strip() for line in sh("ip", "route").stdout.splitlines()]
    return {"links": links, "addrs": addrs, "routes": routes,
            "rules": rules, "files": files}


def fetch(url: str, timeout: float = 20) -> str:
    """The page at `url`, retried until the server in the container answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return str(resp.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def on_the_bridge(root: Path, p: Ctr, name: str, *run_args: str) -> dict[str, object]:
    """The image loaded, the host's state noted ("before"), then container `name` detached on the
    bridge network with `run_args`: a scenario's first results."""
    p.load_image(root)
    before = snapshot(root)
    p("run", "-d", "--name", name, "--network", "bridge", *run_args, IMAGE)
    return {"before": before}


def scenario_published_port(root: Path, p: Ctr) -> dict[str, object]:
    out = on_the_bridge(root, p, "web", "--hostname", "web-host", "-p", "8080:80")
    out["page_lo"] = fetch("http://127.0.0.1:8080/")
    out["page_gateway"] = fetch("http://10.88.0.1:8080/")

    def inside(*cmd: str) -> str:
        return p("exec", "web", *cmd).stdout.strip()
    out["inside"] = {
        "links": sorted(line.split(":")[1].strip().split("@")[0]
                        for line in inside("ip", "-o", "link").splitlines()),
        "eth0": inside("ip", "-o", "-4", "addr", "show", "eth0"),
        "routes": inside("ip", "route"),
        "hosts": inside("cat", "/etc/hosts"), "hostname": inside("cat", "/etc/hostname"),
        "resolv": inside("cat", "/etc/resolv.conf")}
    doc = json.loads(p("inspect", "web").stdout)[0]["NetworkSettings"]
    out["inspect"] = [doc["IPAddress"], doc["Ports"]]
    out["running"] = snapshot(root)
    p("rm", "-f", "web")
    out["after_rm"] = snapshot(root)
    p("network", "rm", "bridge")
    out["after"] = snapshot(root)
    return out


def scenario_user_network(root: Path, p: Ctr) -> dict[str, object]:
    p.load_image(root)
    p("run", "--rm", "--network", "bridge", IMAGE, "true")  # the default bridge exists too
    default_before = snapshot(root)
    p("network", "rm", "bridge")
    before = snapshot(root)
    p("run", "--rm", "--network", "bridge", IMAGE, "true")
    p("network", "create", "net-a")
    p("run", "-d", "--name", "net-one", "--network", "net-a", IMAGE)
    p("run", "-d", "--name", "net-two", "--network", "net-a", IMAGE, "sleep", "1000")
    out: dict[str, object] = {"before": before}
    out["by_name"] = p("exec", "net-two", "busybox", "wget", "-q", "-O", "-",
                       "http://net-one/").stdout
    out["ping"] = p("exec", "net-two", "busybox", "ping", "-c", "1", "-W", "5", "net-one",
                    check=False).returncode
    p("run", "-d", "--name", "net-three", "--network", "net-a", IMAGE, "sleep", "1000")
    out["late_peer_seen"] = "net-three" in p("exec", "net-one", "cat", "/etc/hosts").stdout

    def address(name: str) -> str:
        return str(json.loads(p("inspect", name).stdout)[0]["NetworkSettings"]["IPAddress"])
    out["addresses"] = [address(n) for n in ("net-one", "net-two", "net-three")]
    out["ls"] = p("network", "ls", "-q").stdout.split()
    members = json.loads(p("network", "inspect", "net-a").stdout)[0]["Containers"].values()
    out["members"] = sorted(m["Name"] for m in members)
    rm = p("network", "rm", "net-a", check=False)
    out["rm_in_use"] = [rm.returncode, rm.stderr]
    p("rm", "-f", "net-one")
    p("run", "-d", "--name", "net-four", "--network", "net-a", IMAGE, "sleep", "1000")
    out["reused_after_rm"] = address("net-four")
    p("rm", "-f", "net-two", "net-three", "net-four")
    p("network", "rm", "net-a")
    out["default_bridge"] = [snapshot(root), default_before]
    p("network", "rm", "bridge")
    out["after"] = snapshot(root)
    return out


def scenario_none(root: Path, p: Ctr) -> dict[str, object]:
    p.load_image(root)
    before = snapshot(root)

    def links(*args: str) -> list[str]:
        text = p("run", "--rm", *args, IMAGE, "ip", "-o", "link").stdout
        return sorted(line.split(":")[1].strip() for line in text.splitlines())
    out: dict[str, object] = {"before": before, "default": links(), "none": links("--network", "none"),
                              "host": links("--network", "host"),
                              "host_view": sorted(str(n) for n in before["links"])}  # type: ignore[attr-defined]
    refusals = []
    for args in (["--network", "none", "-p", "8080:80"], ["--network", "bridge", "-p", "8080:"],
                 ["--network", "bridge", "-p", "1.2.3:8080:80"], ["--network", "nosuch"]):
        r = p("run", "--rm", *args, IMAGE, "true", check=False)
        refusals.append((r.returncode, r.stderr))
    out["refusals"] = refusals
    out["left"] = p("ps", "-a", "-q").stdout
    out["after"] = snapshot(root)
    return out


def scenario_killed(root: Path, p: Ctr) -> dict[str, object]:
    """The container's monitor (pyctr's shim) and init die by SIGKILL; `rm -f` still cleans."""
    out = on_the_bridge(root, p, "victim", "-p", "8081:80")
    out["page"] = fetch("http://127.0.0.1:8081/")
    init = int(json.loads(p("inspect", "victim").stdout)[0]["State"]["Pid"])
    monitor = int(Path(f"/proc/{init}/status").read_text().split("PPid:")[1].split()[0])
    os.kill(monitor, 9)
    os.kill(init, 9)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{init}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    out["killed"] = not Path(f"/proc/{init}").exists()
    p("rm", "-f", "victim")
    p("network", "rm", "bridge")
    out["after"] = snapshot(root)
    return out


def scenario_dynamic_ports(root: Path, p: Ctr) -> dict[str, object]:
    import socket

    p.load_image(root)
    ctx = root / "exposing"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {IMAGE}\nEXPOSE 80\nEXPOSE 9000/udp\n")
    p("build", "-q", "-t", "localhost/exposing:v1", str(ctx))
    before = snapshot(root)
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    busy = socket.socket()
    busy.bind(("0.0.0.0", low))  # the lowest port of the range is taken in this namespace
    busy.listen()
    out: dict[str, object] = {"before": before, "range": [low, high], "busy": low}
    p("run", "-d", "--name", "dyn", "--network", "bridge", "-p", "80", IMAGE)
    port = int(p("port", "dyn", "80").stdout.strip().rsplit(":", 1)[1])
    out["dyn_port"] = port
    out["page_dyn"] = fetch(f"http://127.0.0.1:{port}/")
    p("run", "-d", "--name", "pall", "--network", "bridge", "-P", "localhost/exposing:v1")
    out["port_all"] = p("port", "pall").stdout.splitlines()
    pall = int(out["port_all"][0].rsplit(":", 1)[1])  # type: ignore[index]
    out["page_pall"] = fetch(f"http://127.0.0.1:{pall}/")
    out["ps"] = p("ps").stdout
    missing = p("port", "dyn", "81", check=False)
    out["port_missing"] = [missing.returncode, missing.stderr]
    out["usage_rc"] = p("run", "--no-such-flag", IMAGE, check=False).returncode
    busy.close()
    p("rm", "-f", "dyn", "pall")
    p("network", "rm", "bridge")
    out["after"] = snapshot(root)
    return out


def scenario_container_network(root: Path, p: Ctr) -> dict[str, object]:
    out = on_the_bridge(root, p, "srv", "--hostname", "srv-host")
    fetch_page = ["busybox", "wget", "-q", "-O", "-", "http://127.0.0.1/"]
    deadline = time.monotonic() + 20
    while True:  # until srv's httpd listens
        r = p("run", "--rm", "--network", "container:srv", IMAGE, *fetch_page, check=False)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    out["page"] = r.stdout
    out["addr"] = p("run", "--rm", "--network", "container:srv", IMAGE,
                    "ip", "-o", "-4", "addr", "show", "eth0").stdout
    out["hostname"] = p("run", "--rm", "--network", "container:srv", IMAGE, "hostname").stdout.strip()
    out["hosts"] = p("run", "--rm", "--network", "container:srv", IMAGE, "cat", "/etc/hosts").stdout
    p("run", "-d", "--name", "joiner", "--network", "container:srv", IMAGE, "sleep", "1000")
    pids = [json.loads(p("inspect", n).stdout)[0]["State"]["Pid"] for n in ("srv", "joiner")]
    out["same_netns"] = len({os.readlink(f"/proc/{pid}/ns/net") for pid in pids}) == 1
    p("rm", "-f", "joiner")
    p("run", "--name", "stopped", IMAGE, "true")
    refusals = []
    for args in (["--network", "container:nosuch"], ["--network", "container:stopped"],
                 ["--network", "container:srv", "-p", "8080:80"],
                 ["--network", "container:srv", "--hostname", "x"]):
        r = p("run", "--rm", *args, IMAGE, "true", check=False)
        refusals.append((r.returncode, r.stderr))
    out["refusals"] = refusals
    p("rm", "stopped")
    out["left"] = [line.split()[-1] for line in p("ps", "-a").stdout.splitlines()[1:]]
    p("rm", "-f", "srv")
    p("network", "rm", "bridge")
    out["after"] = snapshot(root)
    return out


# A server in a network namespace of its own, behind a veth: "outside", as the internet would be.
# It answers with the address it sees the client at.
_OUTSIDE = """
import http.server, os, subprocess, sys, time
while subprocess.run(["ip", "link", "show", "out1"], capture_output=True).returncode:
    time.sleep(0.01)
for cmd in (["addr", "add", "192.0.2.2/24", "dev", "out1"], ["link", "set", "out1", "up"]):
    subprocess.run(["ip", *cmd], check=True)

class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

server = http.server.HTTPServer(("192.0.2.2", 8000), Echo)
print("ready", flush=True)
server.serve_forever()
"""


def scenario_outbound(root: Path, p: Ctr) -> dict[str, object]:
    """A container reaches a server outside its bridge, through the masquerade: the server sees
    the namespace's own address (192.0.2.1), not the container's 10.88.0.x."""
    p.load_image(root)
    outside = subprocess.Popen(["unshare", "--net", sys.executable, "-c", _OUTSIDE],
                               stdout=subprocess.PIPE, text=True)
    try:
        mine = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 20
        while os.readlink(f"/proc/{outside.pid}/ns/net") == mine:
            if time.monotonic() > deadline:
                raise AssertionError("the outside namespace never appeared")
            time.sleep(0.01)
        sh("ip", "link", "add", "out0", "type", "veth", "peer", "name", "out1", "netns",
           str(outside.pid))
        sh("ip", "addr", "add", "192.0.2.1/24", "dev", "out0")
        sh("ip", "link", "set", "out0", "up")
        assert outside.stdout is not None and outside.stdout.readline().strip() == "ready"
        before = snapshot(root)
        seen = p("run", "--rm", "--network", "bridge", IMAGE, "busybox", "wget", "-q", "-O", "-",
                 "http://192.0.2.2:8000/").stdout
        p("network", "rm", "bridge")
        return {"seen": seen, "before": before, "after": snapshot(root)}
    finally:
        outside.kill()
        outside.wait()


DOCKERFILE = f"""\
ARG BASE={IMAGE}
FROM ${{BASE}} AS stage1
RUN mkdir -p /out && echo "built in stage one" > /out/stage.txt
FROM scratch AS files
COPY files/*.txt /
FROM ${{BASE}}
ARG GREETING=hi
ENV GREETING=${{GREETING}} PORT=8000
LABEL org.example.test="every-instruction"
SHELL ["/bin/sh", "-c"]
WORKDIR /www
COPY --from=stage1 /out/stage.txt /www/stage.txt
COPY --from=files /a.txt /www/a.txt
COPY --chown=1000:1000 files/*.txt /www/
ADD site.tar /www/
RUN echo "$GREETING from RUN" > /www/run.txt
RUN ["busybox", "sh", "-c", "echo exec form > /www/exec.txt"]
EXPOSE 8000/tcp
VOLUME /data
USER 1000
HEALTHCHECK --interval=5s CMD busybox wget -q -O /dev/null http://127.0.0.1:8000/ || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["busybox", "httpd", "-f", "-h", "/www"]
CMD ["-p", "8000"]
"""


def scenario_dockerfile(root: Path, p: Ctr) -> dict[str, object]:
    p.load_image(root)
    ctx = root / "context"
    (ctx / "files").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "files" / "a.txt").write_text("file a\n")
    (ctx / "files" / "b.txt").write_text("file b\n")
    (ctx / "files" / "secret.txt").write_text("not for the image\n")
    (ctx / ".dockerignore").write_text("files/secret.txt\n")
    (ctx / "index.html").write_text(PAGE)
    with tarfile.open(ctx / "site.tar", "w") as tar:
        tar.add(ctx / "index.html", "index.html")
    (ctx / "index.html").unlink()
    before = snapshot(root)
    p("build", "-t", "localhost/every:v1", str(ctx))
    p("run", "-d", "--name", "every", "--network", "bridge", "-p", "8082:8000", "localhost/every:v1")
    pages = {name: fetch(f"http://127.0.0.1:8082/{name}")
             for name in ("index.html", "run.txt", "exec.txt", "stage.txt", "a.txt")}
    try:
        urllib.request.urlopen("http://127.0.0.1:8082/secret.txt", timeout=5)
        ignored = 200
    except urllib.error.HTTPError as exc:
        ignored = exc.code
    owners = p("exec", "every", "stat", "-c", "%n %u:%g", "/www/stage.txt", "/www/b.txt").stdout
    config = json.loads(p("inspect", "localhost/every:v1").stdout)[0]["Config"]["config"]
    p("rm", "-f", "every")
    p("network", "rm", "bridge")
    return {"before": before, "pages": pages, "config": config, "after": snapshot(root),
            "ignored": ignored, "owners": owners.splitlines()}


SCENARIOS: dict[str, Callable[[Path, Ctr], dict[str, object]]] = {
    "published_port": scenario_published_port, "user_network": scenario_user_network,
    "none": scenario_none, "killed": scenario_killed, "dockerfile": scenario_dockerfile,
    "outbound": scenario_outbound, "dynamic_ports": scenario_dynamic_ports,
    "container_network": scenario_container_network,
}


def main(scenario: str, root: Path) -> None:
    # Refuse to run anywhere but a network namespace of our own: the host's has more than lo.
    if sh("ip", "-o", "link").stdout.count("\n") != 1:
        raise SystemExit("refusing to run outside a fresh private network namespace")
    sh("ip", "link", "set", "lo", "up")
    p = Ctr(root)
    try:
        result = SCENARIOS[scenario](root, p)
    finally:
        p.remove_all()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
