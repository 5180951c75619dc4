#!/usr/bin/env python3
"""Time from `run -d -p 8080:80 IMAGE` to the first answered HTTP request: pyctr (on pyrunc
and runc) against dockerd (20.10, Debian's, with its default bridge, iptables and userland
proxy), interleaved, on one busybox `httpd` image.

Everything runs inside fresh private network and mount namespaces (the script re-executes
itself under `unshare --net --mount --propagation private`): pyctr's pyctr0 and dockerd's docker0,
their veths, NAT rules and ip_forward exist only there. The clock starts before the `run`
command is spawned and stops when a GET of http://127.0.0.1:8080/ (retried every 2 ms) returns
the page; `rm -f` follows, outside the clock. A second table gives how long the `run -d`
command itself took, and the same for `run -d --network none` (no veth, no NAT: the CLI's own
start, the runtime, the lo hook).

`--tree NAME=DIR` (repeatable) adds pyctr from another source tree (its PYTHONPATH), to compare
a change with what was there before (`cp -r pyctr /tmp/before/` first).

    .venv/bin/python bench/network.py [--rounds 10] [--tree before=/tmp/before]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests" / "integration"), str(REPO / "tests"), str(REPO)]

IMAGE = "localhost/net-bench:v1"
PAGE = "bench page\n"
URL = "http://127.0.0.1:8080/"


def first_answer(start: float, timeout: float = 30) -> float:
    while True:
        try:
            with urllib.request.urlopen(URL, timeout=2) as resp:
                if resp.read().decode() == PAGE:
                    return time.monotonic() - start
        except OSError:
            pass
        if time.monotonic() - start > timeout:
            raise RuntimeError("no answer")
        time.sleep(0.002)


def make_image(work: Path) -> Path:
    from pyctr_fixtures import _tar_layer, build_oci_layout

    layout = work / "layout"
    www = _tar_layer([("www", "dir", None, 0o755), ("www/index.html", "file", PAGE, 0o644)])
    build_oci_layout(layout, tag=IMAGE, cmd=["busybox", "httpd", "-f", "-p", "80", "-h", "/www"],
                     extra_layer=www)
    archive = work / "oci.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(layout / name, name)
    return archive


def inner(rounds: int, runtimes: list[str], trees: dict[str, str]) -> None:
    from clients.daemons import Dockerd

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    work = Path(tempfile.mkdtemp(prefix="net-bench-"))
    archive = make_image(work)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    os.chdir(work)  # `python -m` puts the cwd first on sys.path: not a pyctr tree

    def pyctr(runtime: str) -> list[str]:
        return [sys.executable, "-m", "pyctr", "--root", str(work / "store"), "--runtime", runtime]
    subprocess.run([*pyctr(runtimes[0]), "load", "-i", str(archive)], check=True, env=env,
                   capture_output=True)
    subprocess.run([*pyctr(runtimes[0]), "save", "-o", str(work / "docker.tar"), IMAGE],
                   check=True, env=env, capture_output=True)

    class NetDockerd(Dockerd):
        def daemon_argv(self) -> list[str]:
            return [a for a in super().daemon_argv() if not a.startswith(
                ("--iptables", "--ip-masq", "--ip-forward", "--bridge", "--userland-proxy"))]

    dockerd = NetDockerd(work / "docker", {})
    dockerd.top.mkdir()
    dockerd.start()
    try:
        dockerd.docker("load", "-i", str(work / "docker.tar"), timeout=120)
        # name -> (run argv, rm argv, PYTHONPATH, whether a page answers)
        cases: dict[str, tuple[Callable[[], list[str]], Callable[[str], list[str]], str, bool]] = {}
        for label, tree in {"": str(REPO), **trees}.items():
            for rt in runtimes:
                name = f"pyctr{'(' + label + ')' if label else ''}+{Path(rt).name}"
                for net, page in (("bridge", True), ("none", False)):
                    publish = ["-p", "8080:80"] if page else []
                    cases[f"{name} {net}"] = (
                        lambda rt=rt, net=net, publish=publish: [  # type: ignore[misc]
                            *pyctr(rt), "run", "-d", "--network", net, *publish, IMAGE],
                        lambda cid, rt=rt: [*pyctr(rt), "rm", "-f", cid],  # type: ignore[misc]
                        tree, page)
        cases["docker bridge"] = (lambda: dockerd.argv("run", "-d", "-p", "8080:80", IMAGE),
                                  lambda cid: dockerd.argv("rm", "-f", cid), str(REPO), True)
        times: dict[str, list[float]] = {name: [] for name in cases if cases[name][3]}
        commands: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds + 1):  # the first round warms caches and is not counted
            for name, (run, rm, tree, page) in cases.items():
                run_env = dict(dockerd.env, PYTHONPATH=tree)
                start = time.monotonic()
                proc = subprocess.run(run(), capture_output=True, text=True, env=run_env)
                commands[name].append(time.monotonic() - start)
                if proc.returncode != 0:
                    raise RuntimeError(f"{name}: {proc.stderr}")
                if page:
                    times[name].append(first_answer(start))
                subprocess.run(rm(proc.stdout.strip()), capture_output=True, env=run_env,
                               check=True)
        print(json.dumps([{k: v[1:] for k, v in times.items()},
                          {k: v[1:] for k, v in commands.items()}]))
    finally:
        dockerd.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--runtime", action="append",
                    default=[str(REPO / ".venv" / "bin" / "pyrunc"), shutil.which("runc") or "runc"])
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                    help="also pyctr from DIR (a tree holding pyctr/), labelled NAME")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    runtimes = a.runtime[2:] or a.runtime
    trees = dict(t.split("=", 1) for t in a.tree)
    if a.inner:
        inner(a.rounds, runtimes, trees)
        return
    p = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", sys.executable,
                        __file__, "--inner", "--rounds", str(a.rounds),
                        *[x for rt in runtimes for x in ("--runtime", rt)],
                        *[x for t in a.tree for x in ("--tree", t)]],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(p.stderr[-3000:])
    answers, commands = json.loads(p.stdout.splitlines()[-1])
    for title, table in ((f"run -d -p -> first answered request, {a.rounds} interleaved rounds "
                          "(ms)", answers), ("the `run -d` command alone (ms)", commands)):
        print(title)
        width = max(len(n) for n in table) + 1
        print(f"{'':{width}} {'median':>8} {'min':>8} {'max':>8}")
        for name, values in table.items():
            ms = [v * 1000 for v in values]
            print(f"{name:{width}} {statistics.median(ms):8.1f} {min(ms):8.1f} {max(ms):8.1f}")


if __name__ == "__main__":
    main()
