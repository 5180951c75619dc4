#!/usr/bin/env python3
"""Compare pyrunc with runc and crun on the hot verbs: wall time, CPU time and memory.

The runtimes run interleaved (A B C A B C ...) on one busybox bundle (`runc spec` defaults,
`/bin/true`, no terminal), each with a private --root, and the medians are printed with their
ratio to runc: ratios from one interleaved run are trustworthy where absolute times are not.

How each figure is taken:
- Every verb is launched (posix_spawn) as `/usr/bin/time -f %M -o FILE RUNTIME ...`. A child's ru_maxrss
  includes the RSS of the process it was forked from before exec, so a runtime forked from this
  Python process would report Python's RSS; time(1) is small, and its %M is the runtime's own peak.
  Wall time is taken around the launch, CPU time from wait4's rusage of time(1) (itself plus the
  runtime and whatever it reaped). The "launcher" row (`time /bin/true`) is the offset that every
  wall and CPU figure includes.
- This process is a child subreaper (as containerd's shim and conmon are), so the container's
  init is reparented to it and reaped here after `start`, before `delete`.
- The init waiting between create and start: VmRSS from /proc/PID/status, Pss from smaps_rollup,
  PID from the pid file.
- The short verbs on rows of their own: `start` (of the created /bin/true container) and `delete`
  (of the stopped one) from the lifecycle, `state` and `kill` of a running container (`sleep`).
  For a runtime that is a script re-executing an interpreter (pyrunc's sh/Python polyglot), the
  "floor" row is the interpreter doing nothing (`pass`), started the same way (the same first two
  lines, so the same sh and the same interpreter with the same flags): what no Python runtime can
  go below. The report then gives each short verb minus the floor, from the same interleaved run.
- crun 1.8.1 refuses this cgroup v1 hybrid host (hugetlb on the cgroup2 mount): it runs in a
  mount namespace, made once and held by a `sleep` process, where an empty file is bind-mounted over
  the cgroup2 cgroup.controllers; each crun call enters it with nsenter(1), so no namespace is
  created or torn down per call (that teardown waits for an RCU grace period and would be charged
  to crun). nsenter's own cost shows in crun's launcher figure.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.bundle import default_config, make_rootfs, write_bundle  # noqa: E402

TIME = "/usr/bin/time"
CONTROLLERS = "/sys/fs/cgroup/unified/cgroup.controllers"
PR_SET_CHILD_SUBREAPER = 36
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class Sample:
    wall: float  # seconds
    cpu: float  # seconds, user + system
    maxrss_kb: int
    rc: int
    err: str


@dataclass
class Runtime:
    name: str
    argv: list[str]  # the binary and its --root
    prefix: list[str] = field(default_factory=list)  # crun: nsenter into its mount namespace
    floor: str | None = None  # the interpreter floor of a script runtime (see floor_script)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def record(self, metric: str, value: float) -> None:
        self.metrics.setdefault(metric, []).append(value)


def launch(rt: Runtime, *args: str, work: Path) -> Sample:
    """Run one verb under time(1); stdout and stderr go to a file (a container may hold them).

    posix_spawn (vfork) keeps the launcher's cost small and the same for every runtime.
    """
    rss_file, out_file = work / "rss", work / "out"
    argv = [*rt.prefix, TIME, "-f", "%M", "-o", str(rss_file), *rt.argv, *args]
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, str(out_file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
               (os.POSIX_SPAWN_DUP2, 1, 2)]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    rc = os.waitstatus_to_exitcode(status)
    lines = rss_file.read_text().split() if rss_file.exists() else []
    maxrss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    err = out_file.read_text(errors="replace").strip()
    return Sample(wall, usage.ru_utime + usage.ru_stime, maxrss, rc, err)


def proc_kb(pid: int, path: str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_gone(pid: int, deadline: float = 10.0) -> None:
    """Reap the container's init (it was reparented to us), or wait for it to vanish."""
    try:
        os.waitpid(pid, 0)
        return
    except ChildProcessError:
        pass
    end = time.monotonic() + deadline
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < end:
        time.sleep(0.001)


class Failed(Exception):
    pass


def verb(rt: Runtime, work: Path, *args: str) -> Sample:
    s = launch(rt, *args, work=work)
    if s.rc != 0:
        raise Failed(f"{args[0]}: rc={s.rc}: {s.err.splitlines()[-1] if s.err else ''}")
    return s


def bench_run(rt: Runtime, bundle: Path, work: Path) -> None:
    s = verb(rt, work, "run", "--bundle", str(bundle), f"bn-{uuid.uuid4().hex[:10]}")
    rt.record("run wall", s.wall * 1e3)
    rt.record("run CPU", s.cpu * 1e3)
    rt.record("peak RSS run", s.maxrss_kb / 1024)


def bench_lifecycle(rt: Runtime, bundle: Path, work: Path) -> None:
    cid = f"bn-{uuid.uuid4().hex[:10]}"
    pid_file = work / "pid"
    pid_file.unlink(missing_ok=True)
    try:
        create = verb(rt, work, "create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid)
        pid = int(pid_file.read_text())
        rt.record("init VmRSS (created)", proc_kb(pid, "status", "VmRSS") / 1024)
        rt.record("init Pss (created)", proc_kb(pid, "smaps_rollup", "Pss") / 1024)
        start = verb(rt, work, "start", cid)
        t0 = time.perf_counter()
        wait_gone(pid)
        reap = time.perf_counter() - t0
        delete = verb(rt, work, "delete", cid)
    except (Failed, OSError, ValueError):
        launch(rt, "delete", "--force", cid, work=work)
        raise
    rt.record("create+start+delete wall", (create.wall + start.wall + reap + delete.wall) * 1e3)
    rt.record("create+start+delete CPU", (create.cpu + start.cpu + delete.cpu) * 1e3)
    for name, s in (("create", create), ("start", start), ("delete", delete)):
        rt.record(f"{name} wall", s.wall * 1e3)
        rt.record(f"peak RSS {name}", s.maxrss_kb / 1024)


def bench_short(rt: Runtime, bundle: Path, work: Path) -> None:
    """The floor, then `state` and `kill` of a running container (the sleep bundle beside `bundle`)."""
    if rt.floor:
        floor = Runtime("floor", [rt.floor])
        rt.record("floor wall", launch(floor, work=work).wall * 1e3)
    cid = f"bn-{uuid.uuid4().hex[:10]}"
    pid_file = work / "pid"
    pid_file.unlink(missing_ok=True)
    try:
        verb(rt, work, "create", "--bundle", str(bundle.parent / "bundle-sleep"), "--pid-file",
             str(pid_file), cid)
        pid = int(pid_file.read_text())
        verb(rt, work, "start", cid)
        state = verb(rt, work, "state", cid)
        kill = verb(rt, work, "kill", cid, "KILL")
        wait_gone(pid)
        verb(rt, work, "delete", cid)
    except (Failed, OSError, ValueError):
        launch(rt, "delete", "--force", cid, work=work)
        raise
    rt.record("state wall", state.wall * 1e3)
    rt.record("kill wall", kill.wall * 1e3)


def floor_script(runtime: str, work: Path) -> str | None:
    """For an sh/Python polyglot runtime, a script whose first two lines are the runtime's (its
    `${0%/*}` made absolute: the interpreter beside the runtime) and whose Python is `pass`."""
    try:
        with open(runtime, "rb") as f:
            head = f.read(4096).decode(errors="replace").splitlines()
    except OSError:
        return None
    if len(head) < 2 or head[0] != "#!/bin/sh" or not head[1].startswith("''''"):
        return None
    path = work / f"floor-{Path(runtime).name}"
    path.write_text(f"{head[0]}\n{head[1].replace('${0%/*}', os.path.dirname(runtime))}\npass\n")
    path.chmod(0o755)
    return str(path)


# -- the crun namespace holder ----------------------------------------------------------------


def start_holder(work: Path) -> subprocess.Popen[bytes]:
    """A `sleep` in a private mount namespace where the cgroup2 controllers file is empty."""
    empty = work / "empty"
    empty.touch()
    script = f'mount --bind {empty} {CONTROLLERS} && exec sleep 100000'
    holder = subprocess.Popen(["unshare", "-m", "sh", "-c", script])
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            if Path(f"/proc/{holder.pid}/cmdline").read_bytes().startswith(b"sleep"):
                return holder
        except OSError:
            pass
        if holder.poll() is not None:
            break
        time.sleep(0.01)
    raise RuntimeError("could not set up crun's mount namespace")


# -- statistics and table ---------------------------------------------------------------------

METRICS = [("run wall", "ms"), ("run CPU", "ms"), ("create+start+delete wall", "ms"),
           ("create+start+delete CPU", "ms"), ("create wall", "ms"), ("start wall", "ms"),
           ("delete wall", "ms"), ("state wall", "ms"), ("kill wall", "ms"), ("floor wall", "ms"),
           ("peak RSS run", "MB"), ("peak RSS create", "MB"),
           ("peak RSS start", "MB"), ("peak RSS delete", "MB"), ("init VmRSS (created)", "MB"),
           ("init Pss (created)", "MB")]


def cell(rt: Runtime, ref: Runtime | None, metric: str, unit: str) -> str:
    values = rt.metrics.get(metric)
    if not values:
        return "error" if rt.errors else "-"
    med = statistics.median(values)
    text = f"{med:.1f} {unit}"
    ref_values = ref.metrics.get(metric) if ref is not None else None
    if ref is not None and ref is not rt and ref_values:
        base = statistics.median(ref_values)
        text += f" ({med / base:.2f}x)" if base else ""
    return text


def table(runtimes: list[Runtime], ref: Runtime | None) -> str:
    header = ["metric (median)", *(r.name for r in runtimes)]
    rows = [[m, *(cell(r, ref, m, u) for r in runtimes)] for m, u in METRICS]
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    return "\n".join([*lines, *(fmt.format(*row).rstrip() for row in rows)])


def summarize_errors(runtimes: list[Runtime]) -> list[str]:
    out = []
    for rt in runtimes:
        for msg in sorted(set(rt.errors)):
            out.append(f"{rt.name}: {rt.errors.count(msg)}x {msg}")
    return out


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    p.add_argument("--pyrunc", help="the pyrunc command")
    p.add_argument("--runc", default=shutil.which("runc"), help="runc (default: on PATH)")
    p.add_argument("--crun", default=shutil.which("crun"), help="crun (default: on PATH)")
    p.add_argument("-n", type=int, default=10, help="measured rounds (default 10)")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first (default 1)")
    p.add_argument("--json", type=Path, help="write every sample as JSON here")
    return p.parse_args(argv)


def make_runtimes(args: argparse.Namespace, work: Path) -> list[Runtime]:
    found = [(n, getattr(args, n)) for n in ("runc", "crun", "pyrunc") if getattr(args, n)]
    return [Runtime(name, [os.path.abspath(path), "--root", str(work / f"root-{name}")])
            for name, path in found]


def one_round(runtimes: list[Runtime], bundle: Path, work: Path, keep: bool) -> None:
    steps: list[Callable[[Runtime, Path, Path], None]] = [bench_run, bench_lifecycle, bench_short]
    for step in steps:
        for rt in runtimes:
            saved = {k: len(v) for k, v in rt.metrics.items()}
            try:
                step(rt, bundle, work)
            except (Failed, OSError, ValueError) as exc:
                if keep:
                    rt.errors.append(str(exc))
            if not keep:  # a warm-up round: drop what it measured
                for k, v in rt.metrics.items():
                    del v[saved.get(k, 0):]


def launcher_baseline(rt: Runtime, work: Path, rounds: int) -> str:
    """The launcher's own cost: the same command line with /bin/true as the runtime."""
    true = Runtime("true", ["/bin/true"], prefix=rt.prefix)
    samples = [launch(true, work=work) for _ in range(max(rounds, 3))]
    wall = statistics.median(s.wall for s in samples) * 1e3
    cpu = statistics.median(s.cpu for s in samples) * 1e3
    return f"{rt.name} {wall:.1f} ms wall, {cpu:.1f} ms CPU"


def report(runtimes: list[Runtime], args: argparse.Namespace, work: Path) -> None:
    ref = next((r for r in runtimes if r.name == "runc"), runtimes[0])
    baselines = ", ".join(launcher_baseline(rt, work, args.n) for rt in runtimes)
    print(f"{args.n} interleaved rounds (+{args.warmup} warm-up), busybox /bin/true bundle; "
          f"ratios vs {ref.name}")
    print(table(runtimes, ref))
    print(f"launcher cost per verb, included above: {baselines}")
    for rt in runtimes:
        floors = rt.metrics.get("floor wall")
        if floors:
            base = statistics.median(floors)
            above = ", ".join(f"{v} {statistics.median(rt.metrics[f'{v} wall']) - base:+.2f} ms"
                              for v in ("start", "delete", "kill", "state")
                              if rt.metrics.get(f"{v} wall"))
            print(f"{rt.name} above its interpreter floor ({base:.1f} ms): {above}")
    errors = summarize_errors(runtimes)
    if errors:
        print("errors:\n  " + "\n  ".join(errors))
    if args.json:
        args.json.write_text(json.dumps({r.name: {"metrics": r.metrics, "errors": r.errors}
                                         for r in runtimes}, indent=2))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("bench: cannot become a child subreaper", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bn-") as tmp:
        work = Path(tmp)
        make_rootfs(work / "rootfs-src")
        bundle = write_bundle(work / "bundle", work / "rootfs-src", default_config(["/bin/true"]))
        write_bundle(work / "bundle-sleep", work / "rootfs-src", default_config(["sleep", "1000"]))
        runtimes = make_runtimes(args, work)
        for rt in runtimes:
            rt.floor = floor_script(rt.argv[0], work)
        holder = None
        for rt in runtimes:
            if rt.name == "crun" and os.path.exists(CONTROLLERS):
                holder = holder or start_holder(work)
                rt.prefix = [NSENTER, f"--mount=/proc/{holder.pid}/ns/mnt"]
        try:
            for i in range(args.warmup + args.n):
                one_round(runtimes, bundle, work, keep=i >= args.warmup)
        finally:
            if holder is not None:
                os.kill(holder.pid, signal.SIGKILL)
                holder.wait()
        report(runtimes, args, work)
    return 0 if all(r.metrics for r in runtimes) else 1


if __name__ == "__main__":
    sys.exit(main())
