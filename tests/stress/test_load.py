"""Load: many containers through their whole life, 8 at a time; many verbs racing on one container.

Afterwards nothing of ours may be left: state dirs, cgroups, mounts of our bundles, processes in our
cgroups or naming our ids, fds of the test process. No call may ever print a Python traceback.
"""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reliability import Figures, Leaks, bounded_and_full, call, clean_failure, sizes

PARALLEL = 8
STATUSES = {"created", "running", "stopped"}


class Driver:
    """Runs pyrunc calls from many threads, counting them and collecting what went wrong."""

    def __init__(self, rt: Any) -> None:
        self.rt = rt
        self.ops = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def call(self, *args: str, ok_rc: tuple[int, ...] = (0,)) -> Any:
        r = call(self.rt, *args)
        problem = None
        if "Traceback" in r.err or "Traceback" in r.out:
            problem = "traceback"
        elif r.rc not in ok_rc:
            problem = f"rc={r.rc}"
        elif r.rc == 1 and (why := clean_failure(r)):
            problem = why
        with self._lock:
            self.ops += 1
            if problem:
                self.failures.append(f"{' '.join(args)}: {problem}: {r.err.strip()[-400:]}")
        return r

    def status(self, cid: str) -> str | None:
        r = self.call("state", cid)
        return json.loads(r.out)["status"] if r.rc == 0 else None

    def wait_stopped(self, cid: str) -> bool:
        deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
        while time.monotonic() < deadline:
            if self.status(cid) in ("stopped", None):
                return True
            time.sleep(0.05)
        with self._lock:
            self.failures.append(f"{cid}: never stopped")
        return False

    def lifecycle(self, bundle: str, cid: str, long_running: bool) -> None:
        if self.call("create", "--bundle", bundle, cid).rc != 0:
            self.call("delete", "--force", cid, ok_rc=(0, 1))
            return
        if (st := self.status(cid)) != "created":
            self.failures.append(f"{cid}: status {st!r} after create")
        self.call("start", cid)
        if long_running:
            if (st := self.status(cid)) != "running":
                self.failures.append(f"{cid}: status {st!r} after start of `sleep 10`")
            self.call("kill", cid, "KILL")
        self.wait_stopped(cid)
        self.call("delete", cid)


def _load(rt: Any, make_bundle: Any, prefix: str, figures: Figures, n: int) -> None:
    short, long_ = make_bundle("true"), make_bundle("sleep", "10")
    leaks = Leaks(rt, prefix, [short.path, long_.path])
    d = Driver(rt)
    t0 = time.monotonic()
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = [pool.submit(d.lifecycle, str((long_ if i % 2 else short).path), f"{prefix}{i}",
                               bool(i % 2)) for i in range(n)]
        for fut in futures:
            fut.result()
    figures.seconds = time.monotonic() - t0
    figures.containers, figures.operations = n, d.ops
    figures.conclude(d.failures, leaks)


test_parallel_lifecycles, test_parallel_lifecycles_full = bounded_and_full(
    _load, lambda full: sizes(full)["containers"])


# ---- many verbs on one container at once -------------------------------------------------------

ID = "{id}"
VERBS = [("start", ID), ("state", ID), ("kill", ID), ("kill", ID, "KILL"), ("delete", ID),
         ("delete", "--force", ID), ("list",), ("kill", "--all", ID, "KILL")]


def _check_state(r: Any, cid: str, failures: list[str]) -> None:
    if r.rc != 0:
        return
    st = json.loads(r.out)
    if st["status"] not in STATUSES or st["id"] != cid:
        failures.append(f"state {cid}: unexpected {st}")
    elif (st["pid"] > 0) != (st["status"] != "stopped"):
        failures.append(f"state {cid}: pid {st['pid']} with status {st['status']}")


def _race_one(d: Driver, bundle: str, cid: str, rng: random.Random) -> list[tuple[str, Any]]:
    if d.call("create", "--bundle", bundle, cid).rc != 0:
        return []
    plans = [[rng.choice(VERBS) for _ in range(3)] for _ in range(PARALLEL)]
    results: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def worker(plan: list[tuple[str, ...]]) -> None:
        for verb in plan:
            r = d.call(*(cid if a == ID else a for a in verb), ok_rc=(0, 1))
            with lock:
                results.append((verb[0], r))

    threads = [threading.Thread(target=worker, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    d.call("delete", "--force", cid, ok_rc=(0, 1))
    return results


def _race(rt: Any, make_bundle: Any, prefix: str, figures: Figures, rounds: int) -> None:
    bundle = make_bundle("sleep", "10")
    leaks = Leaks(rt, prefix, [bundle.path])
    d = Driver(rt)
    rng = random.Random(8)
    t0 = time.monotonic()
    for i in range(rounds):
        cid = f"{prefix}{i}"
        results = _race_one(d, str(bundle.path), cid, rng)
        for verb, r in results:
            if verb == "state":
                _check_state(r, cid, d.failures)
        starts = sum(1 for verb, r in results if verb == "start" and r.rc == 0)
        if starts > 1:
            d.failures.append(f"{cid}: started {starts} times")
    figures.seconds = time.monotonic() - t0
    figures.containers, figures.operations = rounds, d.ops
    figures.conclude(d.failures, leaks)


test_racing_verbs_on_one_container, test_racing_verbs_on_one_container_full = bounded_and_full(
    _race, lambda full: 40 if full else 6)
