#!/usr/bin/env python3
"""`build` of one Dockerfile, cold (`--no-cache`) and cached (nothing changed): pyctr (on runc
and pyrunc) against a private dockerd (20.10, Debian's; its classic builder, DOCKER_BUILDKIT=0,
and BuildKit), interleaved, with the busybox test image as the local base on both sides.

The Dockerfile has ENV, WORKDIR, a COPY of the context, two RUNs (shell and exec form), LABEL,
EXPOSE and CMD. RUN steps have no network on either side (pyctr's default, docker's
`--network none`); dockerd is started with no bridge, iptables or ip forwarding. The clock
covers the whole client command (pyctr's interpreter start included).

`--tree NAME=DIR` (repeatable) adds pyctr from another source tree (its PYTHONPATH), to compare
a change with what was there before.

    .venv/bin/python bench/build.py [--rounds 7] [--tree before=/tmp/before]
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
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests" / "integration" / "clients"), str(REPO / "tests" / "integration"),
                str(REPO / "tests"), str(REPO)]

BASE = "localhost/busybox:latest"
DOCKERFILE = """\
FROM localhost/busybox
ENV APP=/app
WORKDIR /app
COPY . /app/src/
RUN echo built > /app/built && ls /app/src | wc -l > /app/count
RUN ["sh", "-c", "date > /app/date"]
LABEL bench=build
EXPOSE 8080
CMD ["cat", "/app/built"]
"""


def base_archive(work: Path) -> Path:
    from pyctr_fixtures import build_oci_layout

    layout = work / "layout"
    build_oci_layout(layout)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["annotations"]["io.containerd.image.name"] = BASE
    (layout / "index.json").write_text(json.dumps(index))
    archive = work / "busybox-oci.tar"
    with tarfile.open(archive, "w") as tar:
        for entry in layout.iterdir():
            tar.add(entry, entry.name)
    return archive


def timed(fn: Callable[[], None]) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def check(argv: list[str], env: dict[str, str] | None = None) -> None:
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}...: {p.stderr[-1500:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                    help="also pyctr from DIR (a tree holding pyctr/), labelled NAME")
    args = ap.parse_args()
    from daemons import Dockerd

    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    os.chdir(work)  # `python -m` puts the cwd first on sys.path: not a pyctr tree
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(REPO)
    root = work / "pyctr"
    ctx = work / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    for n in range(5):
        (ctx / f"f{n}.txt").write_text(f"file {n}\n")

    def pyctr(runtime: str, *rest: str) -> list[str]:
        return [sys.executable, "-m", "pyctr", "--root", str(root), "--runtime", runtime, *rest]

    pyrunc = os.environ.get("PYRUNC") or str(REPO / "bin" / "pyrunc")
    check(pyctr("runc", "load", "-i", str(base_archive(work))), env)
    check(pyctr("runc", "save", "-o", str(work / "busybox-docker.tar"), BASE), env)
    daemon = Dockerd.for_runtimes(Path(tempfile.mkdtemp(prefix="bench-bd-")), [])
    try:
        daemon.start()
        check(daemon.argv("load", "-i", str(work / "busybox-docker.tar")), daemon.env)
        docker = {"classic": dict(daemon.env, DOCKER_BUILDKIT="0"),
                  "buildkit": dict(daemon.env, DOCKER_BUILDKIT="1")}
        sides: dict[str, Callable[[bool], None]] = {
            "pyctr on runc": lambda cold: check(pyctr(
                "/usr/sbin/runc", "build", *(["--no-cache"] if cold else []), "-t", "b/app", str(ctx)), env),
            "pyctr on pyrunc": lambda cold: check(pyctr(
                pyrunc, "build", *(["--no-cache"] if cold else []), "-t", "b/app", str(ctx)), env),
        }
        for label, tree in (t.split("=", 1) for t in args.tree):
            tenv = dict(env, PYTHONPATH=tree)
            for rt_name, rt in (("runc", "/usr/sbin/runc"), ("pyrunc", pyrunc)):
                sides[f"pyctr({label}) on {rt_name}"] = lambda cold, rt=rt, tenv=tenv: check(  # type: ignore[misc]
                    pyctr(rt, "build", *(["--no-cache"] if cold else []), "-t", "b/app", str(ctx)),
                    tenv)
        for kind, denv in docker.items():
            sides[f"docker 20.10, {kind}"] = lambda cold, denv=denv: check(daemon.argv(  # type: ignore[misc]
                "build", *(["--no-cache"] if cold else []), "--network", "none", "-t", "b/app",
                str(ctx)), denv)
        for run in sides.values():  # warm up: the base unpacked, the cache filled
            run(True)
        times: dict[str, dict[str, list[float]]] = {s: {"cold": [], "cached": []} for s in sides}
        for _ in range(args.rounds):
            for name, run in sides.items():
                times[name]["cold"].append(timed(lambda run=run: run(True)))  # type: ignore[misc]
                times[name]["cached"].append(timed(lambda run=run: run(False)))  # type: ignore[misc]
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'':28} {'cold (median, min)':>22} {'cached (median, min)':>24}")
    for name, t in times.items():
        print(f"{name:28} {statistics.median(t['cold']):>13.3f} s {min(t['cold']):>6.3f} s"
              f" {statistics.median(t['cached']):>15.3f} s {min(t['cached']):>6.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
