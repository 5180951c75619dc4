"""Run opencontainers/runtime-tools' validation programs against one or more runtimes.

The suite is a checkout with `runtimetest` and `validation/<name>/<name>.t` built as its README
says; the project neither builds nor ships it. Each program runs with the checkout as its working
directory (it reads rootfs-amd64.tar.gz and ./runtimetest there), `RUNTIME=<wrapper>` in its
environment, in its own process group killed whole on time-out. The wrapper pins a private
`--root` (see wrappers.py). After each program: leftover containers are force-deleted through
the wrapper, and the suite's cgroups, mounts and bundles removed (hostclean.py).

The expected file lists, for one runtime (pyrunc), every test that does not pass with its reason;
a run exits 1 when that runtime regresses against it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from conformance import report, tap
from conformance.hostclean import Snapshot
from conformance.wrappers import Wrapped, delete_all, make_wrapper, runtime_names

DEFAULT_EXPECTED = Path(__file__).resolve().parent / "runtime-tools" / "expected.json"


def discover(suite: Path, names: list[str]) -> list[tuple[str, Path]]:
    """(name, program) for every validation/<name>/<name>.t, or only the named ones, sorted."""
    validation = suite / "validation"
    if names:
        wanted = [n.removesuffix(".t") for n in names]
        return [(n, validation / n / f"{n}.t") for n in wanted]
    found = [(d.name, d / f"{d.name}.t") for d in validation.iterdir() if d.is_dir()]
    return sorted((n, p) for n, p in found if p.is_file())


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# Each program runs in private mount, UTS, IPC and network namespaces (lo up): a runtime that
# wrongly inherits one of them (a config without it: linux_ns_itype removes them all) then changes
# only that copy, never the host's mounts, propagation, hostname, sysctls or network.
PRIVATE = ["unshare", "--mount", "--propagation", "private", "--uts", "--ipc", "--net", "sh", "-c",
           'ip link set lo up && exec "$0"']


def run_program(program: Path, cwd: Path, env: dict[str, str], timeout: float,
                log: Path) -> tuple[str, int | None, bool]:
    """Run one program; returns its stdout, exit status and whether it timed out.

    Output goes to files, not pipes: a container that inherits the program's stdout would keep a
    pipe open after the program exits. `log` is `<dir>/<test>.<runtime>`: the files append `.out` and
    `.err` to it (not with_suffix, which would replace the runtime's name).
    """
    out_path, err_path = log.parent / f"{log.name}.out", log.parent / f"{log.name}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([*PRIVATE, str(program)], cwd=cwd, env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc: int | None = proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            rc, timed_out = None, True
        _kill_group(proc.pid)  # a time-out, or background children left behind
        proc.wait()
    return out_path.read_text(errors="replace"), rc, timed_out


def outcome_of(result: tap.TapResult, rc: int | None, timed_out: bool,
               seconds: float) -> report.Outcome:
    result = tap.finish(result, rc, timed_out)
    status = "TIMEOUT" if timed_out else ("FAIL" if result.failed else "ok")
    detail = [c.description for c in result.cases if c.status == "fail"]
    return report.Outcome(status, result.passed, result.failed, result.skipped, detail, seconds)


def run_one(name: str, program: Path, suite: Path, rt: Wrapped, timeout: float,
            logdir: Path) -> report.Outcome:
    if not program.is_file():
        return report.Outcome("ERROR", failed=1, detail=[f"no such program {program}"])
    env = dict(os.environ, RUNTIME=str(rt.wrapper))
    snapshot = Snapshot()
    start = time.monotonic()
    text, rc, timed_out = run_program(program, suite, env, timeout, logdir / f"{name}.{rt.name}")
    outcome = outcome_of(tap.parse(text), rc, timed_out, time.monotonic() - start)
    left = [f"left container {c}" for c in delete_all(rt)]
    left += [f"left {x}" for x in snapshot.clean(suite)]
    outcome.detail += left
    return outcome


# -- the expected file ------------------------------------------------------------------------


def load_expected(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {"runtime": None, "tests": {}}
    data: dict[str, Any] = json.loads(path.read_text())
    data.setdefault("tests", {})
    return data


def _unexpected_failures(outcome: report.Outcome, entry: dict[str, Any]) -> list[str]:
    """Failures not covered by the entry's `cases` (substrings of failure descriptions)."""
    cases = entry.get("cases")
    if cases is None:
        return []
    failures = [d for d in outcome.detail if not d.startswith("left ")]
    return [d for d in failures if not any(c in d for c in cases)]


def regressions(results: report.Results, expected: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(regressions, fixed) of the expected file's runtime against its entries."""
    runtime, entries = expected.get("runtime"), expected["tests"]
    bad: list[str] = []
    fixed: list[str] = []
    for test, row in results.items():
        outcome = row.get(runtime) if runtime else None
        if outcome is None:
            continue
        entry = entries.get(test)
        if entry is None:
            if not outcome.clean:
                bad.append(f"{test}: expected to pass, now {outcome.status} "
                           f"({'; '.join(outcome.detail[:3])})")
        elif outcome.clean and not entry.get("flaky"):
            fixed.append(f"{test}: now passes; drop it from the expected file ({entry.get('kind')})")
        else:
            bad += [f"{test}: new failure: {d}" for d in _unexpected_failures(outcome, entry)]
    return bad, fixed


# -- command line -----------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="run-runtime-tools", description=__doc__.split("\n")[0])
    p.add_argument("--suite", required=True, type=Path, help="a built runtime-tools checkout")
    p.add_argument("--runtime", action="append", required=True, help="a runtime binary (repeat)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per program (60)")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    p.add_argument("--expected", type=Path, default=DEFAULT_EXPECTED,
                   help="the expected-failures file (default: conformance/runtime-tools/expected.json)")
    p.add_argument("--no-expected", action="store_true", help="do not check for regressions")
    p.add_argument("--logs", type=Path, help="keep each program's stdout/stderr here")
    p.add_argument("tests", nargs="*", help="test names (default: all of validation/)")
    return p.parse_args(argv)


def run_suite(args: argparse.Namespace, workdir: Path) -> tuple[report.Results, list[str]]:
    names = runtime_names(args.runtime)
    wrapped = [make_wrapper(n.replace("/", "_"), real, workdir)
               for n, real in zip(names, args.runtime, strict=True)]
    logdir = args.logs or workdir / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    suite = args.suite.resolve()
    results: report.Results = {}
    for name, program in discover(suite, args.tests):
        row = results.setdefault(name, {})
        for n, rt in zip(names, wrapped, strict=True):
            row[n] = run_one(name, program, suite, rt, args.timeout, logdir)
            print(f"{name} [{n}] {row[n].cell()} {row[n].seconds:.1f}s", file=sys.stderr,
                  flush=True)
    return results, names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not (args.suite / "validation").is_dir():
        print(f"run-runtime-tools: {args.suite}/validation: no such directory", file=sys.stderr)
        return 2
    expected = load_expected(None if args.no_expected else args.expected)
    with tempfile.TemporaryDirectory(prefix="cf-rtt-") as tmp:
        results, names = run_suite(args, Path(tmp))
    print(report.table(results, names))
    details = report.failure_details(results, names)
    if details:
        print("\nfailures:\n" + details)
    bad, fixed = regressions(results, expected)
    for line in fixed:
        print(f"fixed: {line}")
    for line in bad:
        print(f"REGRESSION: {line}")
    if args.json:
        args.json.write_text(json.dumps({"suite": str(args.suite), "runtimes": names,
                                         "results": report.as_json(results),
                                         "regressions": bad, "fixed": fixed}, indent=2))
    return 1 if bad else 0
