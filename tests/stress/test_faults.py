"""Faults: pyrunc killed mid-create, a broken state.json, a full --root, an init that dies early.

After each fault the host must come back to its state before: `delete --force` removes whatever
the broken container left (state dir, cgroups, processes), and every error is one clear line.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess  # noqa: TID251 — tests drive the CLI
import time
from pathlib import Path
from typing import Any

import pytest
from reliability import Figures, Leaks, bounded_and_full, call, clean_failure, scrub, sizes


def _create_and_kill(rt: Any, bundle: str, cid: str, delay: float) -> None:
    p = subprocess.Popen(rt.argv("create", "--bundle", bundle, cid), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()


def _sigkill_create(rt: Any, make_bundle: Any, prefix: str, figures: Figures, n: int) -> None:
    bundle = make_bundle("sleep", "10")
    leaks = Leaks(rt, prefix, [bundle.path])
    rng = random.Random(9)
    for i in range(n):
        cid = f"{prefix}{i}"
        # `create` takes about 0.1 s here: most kills land inside it, some before, some after.
        _create_and_kill(rt, str(bundle.path), cid, rng.uniform(0.0, 0.15))
        figures.faults += 1
        r = call(rt, "delete", "--force", cid)
        if r.rc != 0 and "does not exist" not in r.err:
            figures.failures.append(f"delete --force {cid}: rc={r.rc} {r.err.strip()}")
        if "Traceback" in r.err:
            figures.failures.append(f"delete --force {cid}: traceback {r.err[-400:]}")
        if left := leaks.check():
            figures.leaks += [f"after kill #{i}: {x}" for x in left]
            scrub(rt, cid)  # one leak must not be counted again for the next container
    listed = call(rt, "list", "-q")
    assert listed.rc == 0 and listed.out.strip() == ""
    assert figures.failures == []
    assert figures.leaks == []


test_sigkill_during_create, test_sigkill_during_create_full = bounded_and_full(
    _sigkill_create, lambda full: sizes(full)["faults"])


# ---- a broken state.json -----------------------------------------------------------------------

def _garbage(original: bytes, live_pid: int) -> dict[str, bytes]:
    return {
        "truncated": original[: len(original) // 2],
        "empty": b"",
        "binary": b"\x00\xff\xfe garbage \x01",
        "array": b"[]",
        "pid-string": json.dumps({**json.loads(original), "pid": "12ab"}).encode(),
        "pid-float": json.dumps({**json.loads(original), "pid": 1.5}).encode(),
        "pid-start-string": json.dumps({**json.loads(original), "pid_start": "x"}).encode(),
        "cgroup-string": json.dumps({**json.loads(original), "cgroup": "nope"}).encode(),
        "config-list": json.dumps({**json.loads(original), "config": []}).encode(),
    }


KINDS = list(_garbage(b"{}", 1))


@pytest.mark.requires("root", "busybox")
@pytest.mark.parametrize("kind", KINDS)
def test_broken_state_json(rt: Any, make_bundle: Any, prefix: str, kind: str) -> None:
    bundle = make_bundle("sleep", "10")
    leaks = Leaks(rt, prefix, [bundle.path])
    cid = f"{prefix}{kind}"
    r = call(rt, "create", "--bundle", str(bundle.path), cid)
    assert r.rc == 0, r.err
    path = rt.root / cid / "state.json"
    original = path.read_bytes()
    init = json.loads(original)["pid"]
    path.write_bytes(_garbage(original, init)[kind])

    for verb in (("state", cid), ("start", cid), ("kill", cid, "KILL"), ("delete", cid)):
        r = call(rt, *verb)
        assert "Traceback" not in r.err, r.err
        assert r.rc in (0, 1), (verb, r)
        if r.rc == 1:
            assert clean_failure(r) is None, (verb, clean_failure(r))
    r = call(rt, "list")
    assert r.rc == 0 and "Traceback" not in r.err, r.err

    if (rt.root / cid).exists():  # unless the plain `delete` above took it (a corrupt pid reads
        r = call(rt, "delete", "--force", cid)  # as a dead init, and delete kills the cgroup)
        assert r.rc == 0 and "Traceback" not in r.err, r.err
    assert leaks.check() == []


# ---- a full --root -----------------------------------------------------------------------------

@pytest.fixture
def tiny_root(tmp_path: Path) -> Any:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k,mode=0700", "rl-tiny", str(mnt)],
                   check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(d: Path, leave: int) -> None:
    """Fill the filesystem at `d`, then free `leave` bytes."""
    fd = os.open(d / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"x" * 512):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    if leave:
        size = (d / "filler").stat().st_size
        os.truncate(d / "filler", max(0, size - leave))


@pytest.mark.requires("root", "busybox")
@pytest.mark.parametrize("leave", [0, 1024, 4096])
def test_full_root(rt: Any, make_bundle: Any, prefix: str, tiny_root: Path, leave: int) -> None:
    bundle = make_bundle("sleep", "10")
    root = tiny_root / "state"
    root.mkdir()
    _fill(tiny_root, leave)
    rt.root = root
    leaks = Leaks(rt, prefix, [bundle.path])
    cid = f"{prefix}full"
    r = call(rt, "create", "--bundle", str(bundle.path), cid)
    if r.rc == 0:  # it fitted: a full lifecycle must still work
        assert call(rt, "start", cid).rc == 0
        assert call(rt, "delete", "--force", cid).rc == 0
    else:
        assert clean_failure(r) is None, clean_failure(r)
        assert "space" in r.err.lower() or "ENOSPC" in r.err, r.err
        assert sorted(p.name for p in root.iterdir()) == [], "a half-written state dir is left"
    assert leaks.check() == []


# ---- the init dies before start ----------------------------------------------------------------

@pytest.mark.requires("root", "busybox")
def test_init_killed_before_start(rt: Any, make_bundle: Any, prefix: str) -> None:
    bundle = make_bundle("sleep", "10")
    leaks = Leaks(rt, prefix, [bundle.path])
    cid = f"{prefix}early"
    assert call(rt, "create", "--bundle", str(bundle.path), cid).rc == 0
    st = json.loads(call(rt, "state", cid).out)
    assert st["status"] == "created"
    os.kill(st["pid"], signal.SIGKILL)
    fd = os.pidfd_open(st["pid"])
    try:
        import select

        select.select([fd], [], [], 30)  # readable once it has exited
    finally:
        os.close(fd)

    st = json.loads(call(rt, "state", cid).out)
    assert (st["status"], st["pid"]) == ("stopped", 0)
    r = call(rt, "start", cid)
    assert r.rc == 1 and clean_failure(r) is None, r
    r = call(rt, "kill", cid, "KILL")
    assert r.rc == 1 and "not running" in r.err, r
    assert call(rt, "delete", cid).rc == 0
    assert leaks.check() == []
