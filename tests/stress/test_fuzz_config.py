"""Hostile input through the real CLI: fuzzed config.json, signal names and container ids.

Every case either succeeds (and is then deleted) or ends with exit status 1, one clear line on
stderr and no traceback; nothing is left behind and nothing hangs (each call has a timeout).
Failures are collected by kind rather than raised inside hypothesis, so one run lists every kind of
problem (with an example of each) instead of stopping at the first and shrinking it.

Most cases break a field that `create` checks before it makes anything (fast); a smaller share
(bad mount options and destinations, odd resource values) reaches the init.
"""

from __future__ import annotations

import copy
import glob
import json
import subprocess  # noqa: TID251 — tests drive the CLI
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability import Figures, Leaks, bounded_and_full, call, clean_failure, sizes

# ---- hostile values ----------------------------------------------------------------------------

HUGE = [2**31, 2**32, 2**63, 2**64, 2**64 + 1, -1, -(2**63) - 1, 10**30]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from(HUGE),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["", "/", "..", "../../etc", "/proc/self/exe", "a" * 5000, "\u202e", "x\ny"]),
)
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(
    st.text(max_size=10), c, max_size=4), max_leaves=12)

# fields checked before anything is made, as paths into the config
EARLY_FIELDS = [
    ("ociVersion",), ("root",), ("root", "path"), ("root", "readonly"), ("process",),
    ("process", "args"), ("process", "cwd"), ("process", "env"), ("process", "user"),
    ("process", "user", "uid"), ("process", "user", "gid"), ("process", "user", "additionalGids"),
    ("process", "user", "umask"), ("process", "rlimits"), ("process", "rlimits", 0),
    ("process", "rlimits", 0, "type"), ("process", "rlimits", 0, "hard"),
    ("process", "capabilities"), ("process", "capabilities", "bounding"),
    ("process", "capabilities", "effective", 0), ("process", "oomScoreAdj"),
    ("process", "terminal"), ("process", "noNewPrivileges"), ("process", "apparmorProfile"),
    ("process", "selinuxLabel"), ("process", "ioPriority"), ("process", "scheduler"),
    ("process", "consoleSize"), ("mounts",), ("mounts", 0), ("mounts", 0, "destination"),
    ("mounts", 0, "options"), ("mounts", 0, "type"), ("linux",), ("linux", "namespaces"),
    ("linux", "namespaces", 0), ("linux", "namespaces", 0, "type"),
    ("linux", "namespaces", 0, "path"), ("linux", "uidMappings"), ("linux", "resources"),
    ("linux", "resources", "devices"), ("linux", "resources", "devices", 0),
    ("linux", "resources", "memory"), ("linux", "resources", "cpu"), ("linux", "resources", "pids"),
    ("linux", "cgroupsPath"), ("linux", "sysctl"), ("linux", "maskedPaths"),
    ("linux", "readonlyPaths"), ("linux", "seccomp"), ("linux", "devices"), ("linux", "rootfsPropagation"),
    ("linux", "personality"), ("linux", "intelRdt"), ("linux", "timeOffsets"), ("hooks",),
    ("hooks", "prestart"), ("hostname",), ("domainname",), ("annotations",),
]
# fields whose problems show only in the init or the cgroup files
LATE_FIELDS = [
    ("linux", "resources", "memory", "limit"), ("linux", "resources", "cpu", "shares"),
    ("linux", "resources", "cpu", "quota"), ("linux", "resources", "pids", "limit"),
    ("linux", "sysctl", "kernel.msgmax"), ("process", "rlimits", 0, "soft"),
]
MOUNT_OPTIONS = ["ro", "rw", "bind", "rbind", "nosuid", "noexec", "nodev", "rro", "rprivate",
                 "shared", "mode=0755", "mode=99999", "size=-1", "size=1k", "idmap", "remount",
                 "tmpcopyup", "uid=abc", "nr_inodes=0", "bogus", "", ",", "=", "x" * 300]
MOUNT_TYPES = ["tmpfs", "proc", "sysfs", "bind", "none", "ext4", "bogusfs", "", "overlay"]
DESTINATIONS = ["/x", "/tmp/a/b/c", "/proc/x", "/../../../../etc/evil", "/dev/null", "/proc",
                "/etc/passwd/x", "/sys/kernel", "/" + "d/" * 300, "relative", "/x\u00e9"]
SOURCES = ["tmpfs", "/", "/nonexistent", "/proc/self/root", "/dev/null", "", "proc"]


def _set(config: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    """Put `value` at `path`, making (or replacing with) containers on the way."""
    node: Any = config
    for key, nxt in zip(path, path[1:], strict=False):
        want: Any = [] if isinstance(nxt, int) else {}
        if isinstance(key, int):
            if not isinstance(node, list):
                return
            while len(node) <= key:
                node.append(copy.deepcopy(want))
            if not isinstance(node[key], type(want)):
                node[key] = want
        elif not isinstance(node.get(key), type(want)):
            node[key] = want
        node = node[key]
    last = path[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
    node[last] = value


@st.composite
def configs(draw: Any, base: dict[str, Any]) -> tuple[str, str, bytes]:
    """(kind, what was changed, config.json bytes): a valid config with a few hostile changes."""
    config = copy.deepcopy(base)
    kind = draw(st.sampled_from(["early"] * 6 + ["late", "mount", "unknown", "nested", "raw"]))
    if kind == "early":
        changes = []
        for path in draw(st.lists(st.sampled_from(EARLY_FIELDS), min_size=1, max_size=3)):
            v = draw(values)
            _set(config, path, v)
            changes.append(f"{'.'.join(map(str, path))}={json.dumps(v)[:200]}")
        what = "; ".join(changes)
    elif kind == "late":
        path, v = draw(st.sampled_from(LATE_FIELDS)), draw(scalars)
        _set(config, path, v)
        what = f"{'.'.join(map(str, path))}={json.dumps(v)[:200]}"
    elif kind == "mount":
        what = "mounts[+]"
        config["mounts"].append({
            "destination": draw(st.sampled_from(DESTINATIONS)),
            "type": draw(st.sampled_from(MOUNT_TYPES)), "source": draw(st.sampled_from(SOURCES)),
            "options": draw(st.lists(st.sampled_from(MOUNT_OPTIONS), max_size=4))})
    elif kind == "unknown":
        target = draw(st.sampled_from([config, config["process"], config["linux"],
                                       config["mounts"][0]]))
        extra = draw(st.dictionaries(st.text(min_size=1, max_size=12), values, min_size=1,
                                     max_size=3))
        target.update(extra)
        what = f"unknown fields {json.dumps(extra)[:200]}"
    elif kind == "nested":
        depth = draw(st.sampled_from([50, 500, 5000, 100000]))
        key = draw(st.sampled_from(["annotations", "x-unknown", "process"]))
        return kind, f"{key}: nested {depth} deep", json.dumps(config)[:-1].encode() + (
            f',"{key}":' + "[" * depth + "]" * depth + "}").encode()
    else:
        data = draw(st.sampled_from([b"", b"null", b"[]", b"{", b"\xff\xfe", b'{"a":1}{}', b"1e999",
                                     b'"\\ud800"', b"{\"ociVersion\": NaN}"]))
        return kind, f"raw {data!r}", data
    if kind == "mount":
        what += json.dumps(config["mounts"][-1])
    return kind, what, json.dumps(config, allow_nan=True).encode()


# ---- running one case --------------------------------------------------------------------------

class Tally:
    def __init__(self, figures: Figures) -> None:
        self.figures = figures
        self.kinds: dict[str, tuple[int, str]] = {}  # problem signature -> (count, example)
        self.outcomes: Counter[str] = Counter()

    def problem(self, signature: str, example: str) -> None:
        count, first = self.kinds.get(signature, (0, example))
        self.kinds[signature] = (count + 1, first)

    def outcome(self, what: str) -> None:
        self.outcomes[what] += 1
        self.figures.fuzz_cases += 1
        self.figures.fuzz_outcomes = dict(self.outcomes)

    def report(self) -> list[str]:
        return [f"{n}x {sig}\n      e.g. {ex[:600]}" for sig, (n, ex) in sorted(self.kinds.items())]


def _signature(r: Any) -> str:
    if "Traceback" in r.err:
        lines = r.err.strip().splitlines()
        where = next((x.strip() for x in reversed(lines) if x.strip().startswith("File ")), "")
        return f"traceback: {lines[-1][:160]} ({where.replace('/work/main/bin/../', '')})"
    return (clean_failure(r) or "?").splitlines()[0][:160]


def run_case(rt: Any, bundle: Path, cid: str, data: bytes, tally: Tally, kind: str,
             what: str) -> None:
    (bundle / "config.json").write_bytes(data)
    try:
        r = call(rt, "create", "--bundle", str(bundle), cid, timeout=30)
    except subprocess.TimeoutExpired:
        tally.problem("hang: create did not return in 30 s", what)
        tally.outcome("hang")
        return
    finally:
        leftover = (rt.root / cid).exists()
    if r.rc == 0:
        tally.outcome(f"{kind}:ok")
        d = call(rt, "delete", "--force", cid, timeout=30)
        if d.rc != 0:
            tally.problem(f"delete --force after a good create: {_signature(d)}", d.err)
    else:
        tally.outcome(f"{kind}:refused")
        if clean_failure(r):
            tally.problem(_signature(r), what)
        if leftover:
            tally.problem("a failed create left its state dir", what)
            call(rt, "delete", "--force", cid)
    if glob.glob(f"/sys/fs/cgroup/*/pyrunc/{cid}"):
        tally.problem("cgroup left behind", what)


def _fuzz_configs(rt: Any, make_bundle: Any, prefix: str, figures: Figures, n: int) -> None:
    bundle = make_bundle("true")
    base = json.loads((bundle.path / "config.json").read_text())
    leaks = Leaks(rt, prefix, [bundle.path])
    tally = Tally(figures)
    counter = iter(range(10**9))

    @settings(max_examples=n, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(configs(base))
    def case(kc: tuple[str, str, bytes]) -> None:
        run_case(rt, bundle.path, f"{prefix}{next(counter)}", kc[2], tally, kc[0], kc[1])

    case()
    figures.conclude(tally.report(), leaks)


test_fuzz_config, test_fuzz_config_full = bounded_and_full(
    _fuzz_configs, lambda full: sizes(full)["fuzz"])


# ---- signals and ids ---------------------------------------------------------------------------

argv_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"),
                    max_size=60)


def _fuzz_cli(rt: Any, make_bundle: Any, prefix: str, figures: Figures, n: int) -> None:
    bundle = make_bundle("sleep", "100")
    leaks = Leaks(rt, prefix, [bundle.path])
    tally = Tally(figures)
    cid = f"{prefix}target"
    assert call(rt, "create", "--bundle", str(bundle.path), cid).rc == 0
    outside = sorted(p.name for p in rt.root.parent.iterdir())

    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(["kill-signal", "state-id", "kill-id", "delete-id", "create-id"]),
           st.one_of(argv_text, st.sampled_from(
               ["0", "-1", "65", "99999999999999999999", "SIGRTMIN+99", "RTMAX-100", "sig",
                "SIGKILL ", "../x", ".", "..", "-x", "--all", "a/b", "a" * 2000, "KILL\n"])))
    def case(verb: str, text: str) -> None:
        if verb == "kill-signal":  # never a signal that stops the target: it must stay put
            if text.strip().upper().lstrip("SIG") in ("KILL", "TERM", "9", "15"):
                return
            args: tuple[str, ...] = ("kill", cid, text)
        elif verb == "create-id":
            args = ("create", "--bundle", str(bundle.path), text)
        else:
            args = (verb.split("-")[0], *(("--force",) if verb == "delete-id" else ()), text)
        try:
            r = call(rt, *args, timeout=30)
        except subprocess.TimeoutExpired:
            tally.problem(f"hang: {verb}", text)
            return
        tally.outcome(f"{verb}:{'ok' if r.rc == 0 else 'refused'}")
        if r.rc != 0 and clean_failure(r):
            tally.problem(f"{verb}: {_signature(r)}", f"{text!r} -> {r.err.strip()[-300:]}")
        if verb == "kill-signal" and r.rc == 0 and "stopped" in call(rt, "state", cid).out:
            tally.outcome("kill-signal:target-stopped")  # SIGINT, SIGSTOP+SIGKILL...: remake it
            call(rt, "delete", "--force", cid)
            call(rt, "create", "--bundle", str(bundle.path), cid)
        if verb == "create-id" and r.rc == 0:
            call(rt, "delete", "--force", text)
        if sorted(p.name for p in rt.root.parent.iterdir()) != outside:
            tally.problem(f"{verb}: something made outside --root", repr(text))

    case()
    st_ = call(rt, "state", cid)
    if st_.rc != 0:
        tally.problem("the target container vanished", st_.err)
    call(rt, "delete", "--force", cid)
    figures.conclude(tally.report(), leaks)


test_fuzz_signals_and_ids, test_fuzz_signals_and_ids_full = bounded_and_full(
    _fuzz_cli, lambda full: sizes(True)["fuzz"] // 2 if full else sizes(False)["fuzz"])
