#!/usr/bin/env python3
"""containerd with pyrunc's shim against containerd's runc shim: `ctr run --rm` and a pod of 10.

One private containerd (tests/integration/clients/daemons.py; the shim found on its PATH is
bin/containerd-shim-pyrunc-v2 unless --shim-dir says otherwise), one busybox image, and
interleaved rounds (A B C A B C ...) of:

- `ctr run --rm IMAGE ID /bin/true`, wall time, with
  pyrunc-shim: `--runtime io.containerd.pyrunc.v2` (pyrunc in-process, one shim per namespace),
  runc-shim+runc: containerd's io.containerd.runc.v2 with runc (a shim per container),
  runc-shim+pyrunc: the same shim with `--runc-binary pyrunc`;
- a pod of 10: `ctr run -d` of ten `sleep` containers, then kill, wait and delete each: the wall
  time of the whole, and the RSS (VmRSS, and Pss from smaps_rollup) of the shim processes while the
  ten run (for runc, ten shims: their sum, and one).

The pyrunc shim is started once before the rounds (it lingers between containers; its start-up
is a one-time cost per namespace, shown apart as "first container").
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "integration" / "clients"))

from daemons import Containerd, _spawn, wait_until  # noqa: E402
from images import IMAGE, build_images  # noqa: E402
from testlib import make_rootfs  # noqa: E402


class Daemon(Containerd):
    shim_dir: Path = REPO / "bin"

    def start(self) -> None:
        cfg = self.top / "config.toml"
        cfg.write_text(self.config())
        log = self.top / "containerd.log"
        env = {**os.environ, "PATH": f"{self.shim_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
               "PYRUNC_SHIM_IDLE": "120"}
        self.proc = _spawn(["containerd", "--config", str(cfg)], log, env)
        wait_until(lambda: self.ctr("version", timeout=10).returncode == 0, "containerd", log)


def flags(kind: str, cd: Containerd, pyrunc: str) -> list[str]:
    if kind == "pyrunc-shim":
        return ["--runtime", "io.containerd.pyrunc.v2", *cd.fifo_dir()]
    if kind == "runc-shim+runc":
        return ["--runc-binary", "/usr/sbin/runc", "--runc-root", f"{cd.top}/runc", *cd.fifo_dir()]
    return ["--runc-binary", pyrunc, "--runc-root", f"{cd.top}/runc", *cd.fifo_dir()]


def ctr(cd: Containerd, *args: str) -> float:
    t0 = time.perf_counter()
    done = cd.ctr(*args, timeout=60)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"ctr {' '.join(args)}: {done.stderr.strip()}")
    return wall


def run_rm(cd: Containerd, kind: str, pyrunc: str) -> float:
    return ctr(cd, "run", "--rm", *flags(kind, cd, pyrunc), IMAGE, "bench-" + uuid.uuid4().hex[:8],
               "/bin/true")


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def _kb(pid: int, path: str, key: str) -> int:
    for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _task_pids(cd: Containerd) -> dict[str, int]:
    out = cd.ctr("task", "ls").stdout.splitlines()[1:]
    return {f[0]: int(f[1]) for f in (line.split() for line in out) if len(f) >= 2}


def pod(cd: Containerd, kind: str, pyrunc: str, n: int = 10) -> tuple[float, int, int, int]:
    """(wall s, shims, sum of their VmRSS kB, sum of their Pss kB) for n containers."""
    ids = ["pod-" + uuid.uuid4().hex[:8] for _ in range(n)]
    t0 = time.perf_counter()
    for cid in ids:
        ctr(cd, "run", "-d", *flags(kind, cd, pyrunc), IMAGE, cid, "sleep", "1000")
    pids = _task_pids(cd)
    shims = {_parent(pids[cid]) for cid in ids}
    rss = sum(_kb(s, "status", "VmRSS") for s in shims)
    pss = sum(_kb(s, "smaps_rollup", "Pss") for s in shims)
    t1 = time.perf_counter()
    for cid in ids:
        ctr(cd, "task", "kill", "-s", "SIGKILL", cid)
    deadline = time.monotonic() + 30
    while any(_status(cd, c) != "STOPPED" for c in ids):  # a short poll: no 0.2 s steps
        if time.monotonic() > deadline:
            raise RuntimeError("pod: tasks not stopped after 30 s")
        time.sleep(0.01)
    for cid in ids:
        ctr(cd, "task", "delete", cid)
        ctr(cd, "container", "delete", cid)
    t2 = time.perf_counter()
    return (t1 - t0) + (t2 - t1), len(shims), rss, pss


def _status(cd: Containerd, cid: str) -> str:
    for line in cd.ctr("task", "ls").stdout.splitlines()[1:]:
        f = line.split()
        if f and f[0] == cid:
            return f[-1]
    return ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--pod-rounds", type=int, default=3)
    ap.add_argument("--pyrunc", default=os.environ.get("PYRUNC") or str(REPO / "bin" / "pyrunc"))
    ap.add_argument("--shim-dir", default=str(REPO / "bin"))
    args = ap.parse_args()
    kinds = ["pyrunc-shim", "runc-shim+runc", "runc-shim+pyrunc"]
    with tempfile.TemporaryDirectory(prefix="bench-shim-") as tmp:
        top = Path(tmp)
        rootfs = top / "rootfs"
        make_rootfs(rootfs)
        images = build_images(rootfs, top)
        Daemon.shim_dir = Path(args.shim_dir)
        cd = Daemon(top / "containerd")
        cd.namespace = "bench-" + cd.namespace
        cd.top.mkdir()
        try:
            cd.start()
            ctr(cd, "images", "import", str(images.oci_archive))
            first = run_rm(cd, "pyrunc-shim", args.pyrunc)
            for kind in kinds[1:]:
                run_rm(cd, kind, args.pyrunc)  # warm up
            walls: dict[str, list[float]] = {k: [] for k in kinds}
            for _ in range(args.rounds):
                for kind in kinds:
                    walls[kind].append(run_rm(cd, kind, args.pyrunc))
            pods: dict[str, list[tuple[float, int, int, int]]] = {k: [] for k in kinds[:2]}
            for _ in range(args.pod_rounds):
                for kind in kinds[:2]:
                    pods[kind].append(pod(cd, kind, args.pyrunc))
        finally:
            cd.stop()  # kills the shim too: its command line names containerd's socket
            shutil.rmtree(f"/run/containerd/pyrunc/{cd.namespace}", ignore_errors=True)
            for leftover in ("/run/containerd/pyrunc", "/run/containerd/s", "/run/containerd"):
                with contextlib.suppress(OSError):
                    os.rmdir(leftover)  # only when empty
    ref = statistics.median(walls["runc-shim+runc"])
    print(f"`ctr run --rm /bin/true`, {args.rounds} interleaved rounds, medians:")
    for kind in kinds:
        med = statistics.median(walls[kind])
        print(f"  {kind:18} {med * 1000:7.1f} ms  {med / ref:5.2f}x")
    print(f"  (pyrunc-shim, first container of the namespace, shim start-up included: "
          f"{first * 1000:.1f} ms)")
    print(f"a pod of 10 (`ctr run -d` x10, then kill/delete), {args.pod_rounds} rounds, medians:")
    pref = statistics.median(p[0] for p in pods["runc-shim+runc"])
    rss_ref = statistics.median(p[2] for p in pods["runc-shim+runc"])
    pss_ref = statistics.median(p[3] for p in pods["runc-shim+runc"])
    for kind, rows in pods.items():
        wall = statistics.median(p[0] for p in rows)
        shims = rows[-1][1]
        rss = statistics.median(p[2] for p in rows)
        pss = statistics.median(p[3] for p in rows)
        print(f"  {kind:18} {wall:6.2f} s  {wall / pref:5.2f}x   {shims} shim(s): "
              f"VmRSS {rss / 1024:.1f} MB ({rss / rss_ref:.2f}x), "
              f"Pss {pss / 1024:.1f} MB ({pss / pss_ref:.2f}x) in all "
              f"({rss / shims / 1024:.1f} MB each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
