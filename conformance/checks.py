"""Runtime-agnostic checks of runtime-spec behaviour, run side by side against several runtimes.

Each check is written from the spec (runtime.md, config.md, config-linux.md), not from any
runtime's behaviour, drives the runtime only through its command line on busybox bundles, and
observes from outside (state, pid file, exit status) or from inside (busybox prints facts).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance import report
from conformance.bundle import default_config, make_rootfs, write_bundle
from conformance.wrappers import Wrapped, delete_all, make_wrapper, runtime_names

CALL_TIMEOUT = 30.0
# CAP_AUDIT_WRITE (29), CAP_KILL (5), CAP_NET_BIND_SERVICE (10): `runc spec`'s default set
DEFAULT_CAP_MASK = (1 << 29) | (1 << 5) | (1 << 10)


class CheckFailed(Exception):
    pass


def expect(cond: object, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


@dataclass
class Proc:
    rc: int
    out: str
    err: str

    def why(self) -> str:
        return f"rc={self.rc} stderr={self.err.strip()[-300:]!r}"


@dataclass
class Ctx:
    """What a check gets: the wrapped runtime, a private work dir and the busybox rootfs."""

    rt: Wrapped
    work: Path
    rootfs: Path

    def cid(self) -> str:
        return "cf-" + uuid.uuid4().hex[:10]

    def bundle(self, args: list[str], edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
        config = default_config(args)
        if edit:
            edit(config)
        return write_bundle(self.work / uuid.uuid4().hex[:8], self.rootfs, config)

    def call(self, *args: str, timeout: float = CALL_TIMEOUT) -> Proc:
        """Run the runtime; output goes to files, since a created container keeps its stdio open."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                p = subprocess.run(self.rt.argv(*args), stdout=out, stderr=err,
                                   timeout=timeout, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired as exc:
                raise CheckFailed(f"`{' '.join(args[:2])}` hung for {timeout:.0f}s") from exc
            out.seek(0)
            err.seek(0)
            return Proc(p.returncode, out.read().decode(errors="replace"),
                        err.read().decode(errors="replace"))

    def ok(self, *args: str) -> Proc:
        p = self.call(*args)
        expect(p.rc == 0, f"`{' '.join(args[:1])}` failed: {p.why()}")
        return p

    def state(self, cid: str) -> dict[str, Any]:
        p = self.ok("state", cid)
        try:
            data: dict[str, Any] = json.loads(p.out)
        except ValueError as exc:
            raise CheckFailed(f"state output is not JSON: {p.out[:200]!r}") from exc
        return data

    def wait_status(self, cid: str, status: str, deadline: float = 10.0) -> None:
        end = time.monotonic() + deadline
        while (now := self.state(cid).get("status")) != status:
            expect(time.monotonic() < end, f"status stayed {now!r}, expected {status!r}")
            time.sleep(0.05)

    def run_inside(self, script: str, edit: Callable[[dict[str, Any]], None] | None = None) -> Proc:
        """`run` a container executing `sh -c script`; returns what it printed."""
        return self.call("run", "--bundle", str(self.bundle(["sh", "-c", script], edit)), self.cid())

    def created(self, args: list[str], *extra: str) -> tuple[str, Path]:
        bundle = self.bundle(args)
        cid = self.cid()
        self.ok("create", "--bundle", str(bundle), *extra, cid)
        return cid, bundle


Check = Callable[[Ctx], None]
CHECKS: dict[str, tuple[str, Check]] = {}


def check(name: str, ref: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = (ref, fn)
        return fn
    return register


# -- lifecycle and state (runtime.md) ---------------------------------------------------------


@check("state_after_create", "runtime.md#state")
def state_after_create(c: Ctx) -> None:
    cid, bundle = c.created(["sleep", "30"])
    s = c.state(cid)
    expect(isinstance(s.get("ociVersion"), str) and s["ociVersion"], f"ociVersion: {s}")
    expect(s.get("id") == cid, f"id {s.get('id')!r} != {cid!r}")
    expect(s.get("status") == "created", f"status {s.get('status')!r}, expected 'created'")
    expect(isinstance(s.get("pid"), int) and s["pid"] > 0, f"pid {s.get('pid')!r}")
    expect(os.path.exists(f"/proc/{s['pid']}"), f"no process {s['pid']} on the host")
    expect(s.get("bundle") == str(bundle), f"bundle {s.get('bundle')!r} != {str(bundle)!r}")


@check("lifecycle_statuses", "runtime.md#lifecycle")
def lifecycle_statuses(c: Ctx) -> None:
    cid, _ = c.created(["sleep", "30"])
    c.ok("start", cid)
    c.wait_status(cid, "running")
    c.ok("kill", cid, "KILL")
    c.wait_status(cid, "stopped")
    c.ok("delete", cid)
    expect(c.call("state", cid).rc != 0, "state of a deleted container succeeded")
    expect(cid not in c.call("list", "-q").out.split(), "a deleted container is still listed")


@check("create_does_not_run_process", "runtime.md#create")
def create_does_not_run_process(c: Ctx) -> None:
    out = c.work / "out"
    out.mkdir()

    def bind(config: dict[str, Any]) -> None:
        config["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                                 "options": ["rbind", "rw"]})
    (c.rootfs / "out").mkdir(exist_ok=True)
    bundle = c.bundle(["sh", "-c", "echo ran > /out/ran; sleep 30"], bind)
    cid = c.cid()
    c.ok("create", "--bundle", str(bundle), cid)
    time.sleep(0.2)
    expect(not (out / "ran").exists(), "the process ran before start")
    c.ok("start", cid)
    end = time.monotonic() + 10
    while not (out / "ran").exists():
        expect(time.monotonic() < end, "the process never ran after start")
        time.sleep(0.05)


@check("pid_file", "runtime.md#create (runc --pid-file: decimal, no newline)")
def pid_file(c: Ctx) -> None:
    path = c.work / "pid"
    cid, _ = c.created(["sleep", "30"], "--pid-file", str(path))
    text = path.read_text()
    expect(re.fullmatch(r"[1-9][0-9]*", text), f"pid file holds {text!r}")
    expect(int(text) == c.state(cid)["pid"], f"pid file {text} != state pid")


@check("start_twice_fails", "runtime.md#start")
def start_twice_fails(c: Ctx) -> None:
    cid, _ = c.created(["true"])
    c.ok("start", cid)
    c.wait_status(cid, "stopped")
    expect(c.call("start", cid).rc != 0, "start of a stopped container succeeded")


@check("kill_stopped_fails", "runtime.md#kill")
def kill_stopped_fails(c: Ctx) -> None:
    cid, _ = c.created(["true"])
    c.ok("start", cid)
    c.wait_status(cid, "stopped")
    expect(c.call("kill", cid, "TERM").rc != 0, "kill of a stopped container succeeded")


@check("delete_running_refused", "runtime.md#delete")
def delete_running_refused(c: Ctx) -> None:
    cid, _ = c.created(["sleep", "30"])
    c.ok("start", cid)
    expect(c.call("delete", cid).rc != 0, "delete of a running container succeeded")
    expect(c.state(cid)["status"] == "running", "the container is no longer running")
    c.ok("delete", "--force", cid)
    expect(c.call("state", cid).rc != 0, "state after delete --force succeeded")


@check("duplicate_id_refused", "runtime.md#create (id MUST be unique)")
def duplicate_id_refused(c: Ctx) -> None:
    cid, bundle = c.created(["sleep", "30"])
    expect(c.call("create", "--bundle", str(bundle), cid).rc != 0, "a second create succeeded")
    expect(c.state(cid)["status"] == "created", "the first container was disturbed")


@check("bad_id_refused", "runtime.md#state (id) and runc's id rules")
def bad_id_refused(c: Ctx) -> None:
    bundle = c.bundle(["true"])
    name = "cf-escape-" + uuid.uuid4().hex[:6]
    p = c.call("create", "--bundle", str(bundle), f"../{name}")
    escaped = c.rt.root.parent / name
    expect(p.rc != 0, "create with id ../x succeeded")
    expect(not escaped.exists(), f"{escaped} was created outside the state dir")


@check("missing_rootfs_refused", "config.md#root")
def missing_rootfs_refused(c: Ctx) -> None:
    bundle = c.bundle(["true"], lambda cfg: cfg["root"].update(path="no-such-rootfs"))
    cid = c.cid()
    expect(c.call("create", "--bundle", str(bundle), cid).rc != 0, "create succeeded")
    expect(c.call("state", cid).rc != 0, "the failed container has a state")
    expect(not (c.rt.root / cid).exists(), "the failed container left its state dir")
    left = [p for p in Path("/sys/fs/cgroup").glob(f"*/{cid}")]
    expect(not left, f"the failed container left cgroups {left}")


@check("exit_status", "runc run: the container's exit status")
def exit_status(c: Ctx) -> None:
    p = c.run_inside("exit 7")
    expect(p.rc == 7, f"run exited {p.rc}, expected 7 ({p.why()})")


# -- the process as seen from inside (config.md, config-linux.md) -----------------------------


def _inside(c: Ctx, script: str, edit: Callable[[dict[str, Any]], None] | None = None) -> list[str]:
    p = c.run_inside(script, edit)
    expect(p.rc == 0, f"run failed: {p.why()} stdout={p.out[:200]!r}")
    return p.out.splitlines()


def _prints(name: str, ref: str, script: str, want: list[str], what: str,
            edit: Callable[[dict[str, Any]], None] | None = None) -> None:
    """A check that a container running `script` (its config changed by `edit`) prints the
    lines `want`; `what` words a failure, with {out} for the lines it printed."""
    def run(c: Ctx) -> None:
        out = _inside(c, script, edit)
        expect(out == want, what.format(out=out))
    check(name, ref)(run)


_prints("hostname", "config.md#hostname", "hostname", ["cf-host"], "hostname {out}",
        lambda cfg: cfg.update(hostname="cf-host"))
_prints("env", "config.md#process (env)", 'echo "$CF_VAR"', ["hello world"], "CF_VAR={out}",
        lambda cfg: cfg["process"]["env"].append("CF_VAR=hello world"))
_prints("cwd", "config.md#process (cwd)", "pwd", ["/tmp"], "pwd {out}",
        lambda cfg: cfg["process"].update(cwd="/tmp"))


@check("user", "config.md#user (uid, gid, additionalGids)")
def user(c: Ctx) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        cfg["process"]["user"] = {"uid": 65534, "gid": 65534, "additionalGids": [1234]}
    out = _inside(c, "id -u; id -g; id -G", edit)
    expect(out[:2] == ["65534", "65534"], f"uid/gid {out}")
    expect(len(out) == 3 and "1234" in out[2].split(), f"groups {out}")


_prints("rlimits", "config.md#posix-process (rlimits)", "ulimit -Sn; ulimit -Hn", ["512", "768"],
        "soft/hard NOFILE {out}", lambda cfg: cfg["process"].update(
            rlimits=[{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 768}]))
_prints("readonly_root", "config.md#root (readonly)",
        "touch /cf-file 2>/dev/null && echo writable || echo readonly", ["readonly"], "root is {out}")


@check("masked_and_readonly_paths", "config-linux.md#masked-paths, #readonly-paths")
def masked_and_readonly_paths(c: Ctx) -> None:
    masked = [p for p in default_config([])["linux"]["maskedPaths"] if os.path.isfile(p)]
    script = "".join(f"wc -c < {p}; " for p in masked)
    out = _inside(c, script + "(echo x > /proc/sys/kernel/hostname) 2>/dev/null && echo rw || echo ro")
    expect(out == ["0"] * len(masked) + ["ro"], f"bytes read from {masked}, /proc/sys: {out}")


_prints("pid_namespace", "config-linux.md#namespaces (pid)", "echo $$", ["1"],
        "the process is pid {out} in its namespace")


@check("capabilities", "config.md#linux-process (capabilities, noNewPrivileges)")
def capabilities(c: Ctx) -> None:
    out = _inside(c, "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status")
    fields = dict(line.split(":\t") for line in out if ":\t" in line)
    for key in ("CapEff", "CapBnd"):
        expect(int(fields.get(key, "-1"), 16) == DEFAULT_CAP_MASK,
               f"{key} {fields.get(key)} != {DEFAULT_CAP_MASK:016x}")
    expect(fields.get("NoNewPrivs", "").strip() == "1", f"NoNewPrivs {fields.get('NoNewPrivs')}")


# -- where runtimes are known to differ (what users need to know before switching) -----------


@check("ungrantable_capability_warns", "config.md#linux-process: caps that cannot be granted "
       "MUST be logged as a warning; runtimes SHOULD NOT fail")
def ungrantable_capability_warns(c: Ctx) -> None:
    with open("/proc/self/status") as f:
        bnd = int(next(ln for ln in f if ln.startswith("CapBnd:")).split()[1], 16)
    missing = next((bit for bit in range(41) if not bnd & (1 << bit)), None)
    if missing is None:
        return  # this host's root can grant every capability: nothing to see
    from pyrunc.linux.caps import NAMES

    name = NAMES[missing]

    def add(cfg: dict[str, Any]) -> None:
        for key in ("bounding", "effective", "permitted"):
            cfg["process"]["capabilities"][key].append(name)

    p = c.run_inside("true", add)
    expect(p.rc == 0, f"{name} (not in root's bounding set here) failed the container: {p.why()}")


@check("delete_unknown_id_fails", "runtime.md#delete: an id that does not exist is an error; "
       "runc's `delete --force` of one succeeds (engines clean up with it)")
def delete_unknown_id_fails(c: Ctx) -> None:
    """Plain `delete` of an unknown id fails; `delete --force` of one, or of an id already
    deleted, exits 0 as runc and crun do."""
    expect(c.call("delete", c.cid()).rc != 0, "delete of an unknown id succeeded")
    p = c.call("delete", "--force", c.cid())
    expect(p.rc == 0, f"delete --force of an unknown id failed: {p.why()}")
    cid, _ = c.created(["sleep", "30"])
    c.ok("delete", "--force", cid)
    p = c.call("delete", "--force", cid)
    expect(p.rc == 0, f"a second delete --force failed: {p.why()}")


# -- running ----------------------------------------------------------------------------------


def run_check(fn: Check, rt: Wrapped, rootfs: Path) -> report.Outcome:
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cf-check-") as tmp:
        try:
            fn(Ctx(rt, Path(tmp), rootfs))
            outcome = report.Outcome("ok", passed=1)
        except CheckFailed as exc:
            outcome = report.Outcome("FAIL", failed=1, detail=[str(exc)])
        except Exception as exc:  # a check's own bug must not hide the other results
            outcome = report.Outcome("ERROR", failed=1, detail=[f"{type(exc).__name__}: {exc}"])
        finally:
            delete_all(rt)
    outcome.seconds = time.monotonic() - start
    return outcome


def run_all(names: list[str], reals: list[str], selected: list[str],
            work: Path) -> report.Results:
    rootfs = work / "rootfs"
    make_rootfs(rootfs)
    wrapped = [make_wrapper(n.replace("/", "_"), real, work / "runtimes")
               for n, real in zip(names, reals, strict=True)]
    results: report.Results = {}
    for name in selected:
        _, fn = CHECKS[name]
        row = results.setdefault(name, {})
        for n, rt in zip(names, wrapped, strict=True):
            row[n] = run_check(fn, rt, rootfs)
    return results


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="run-checks", description=__doc__.split("\n")[0])
    p.add_argument("--runtime", action="append", default=[], help="a runtime binary (repeat)")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.add_argument("checks", nargs="*", help="check names (default: all)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        print("\n".join(f"{n:28} {ref}" for n, (ref, _) in CHECKS.items()))
        return 0
    unknown = [n for n in args.checks if n not in CHECKS]
    if unknown or not args.runtime:
        print(f"run-checks: unknown checks {unknown}" if unknown else
              "run-checks: give at least one --runtime", file=sys.stderr)
        return 2
    names = runtime_names(args.runtime)
    with tempfile.TemporaryDirectory(prefix="cf-checks-") as tmp:
        results = run_all(names, args.runtime, args.checks or list(CHECKS), Path(tmp))
        shutil.rmtree(Path(tmp) / "rootfs", ignore_errors=True)
    print(report.table(results, names))
    details = report.failure_details(results, names)
    if details:
        print("\nfailures:\n" + details)
    if args.json:
        args.json.write_text(json.dumps({"runtimes": names, "results": report.as_json(results)},
                                        indent=2))
    return 1 if any(not o.clean for row in results.values() for o in row.values()) else 0
