"""bench/run.py with fake runtimes: figures for a working one, errors per row for a broken one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# --root R <verb> ...; create gets --bundle B --pid-file P ID and leaves a waiting "init" behind
GOOD = """#!/bin/sh
root=$2; shift 2
case "$1" in
  create) sleep 30 >/dev/null 2>&1 & printf %s $! > "$5"; printf %s $! > "$root.pid" ;;
  start) kill "$(cat "$root.pid")" ;;
esac
exit 0
"""
BAD = """#!/bin/sh
echo "boom: no cgroup" >&2
exit 1
"""


def fake(tmp: Path, name: str, body: str) -> str:
    path = tmp / name
    path.write_text(body)
    path.chmod(0o755)
    return str(path)


@pytest.mark.requires("busybox", "cmd:time")
def test_bench_measures_a_working_runtime_and_reports_a_broken_one(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    p = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "-n", "2", "--runc",
                        fake(tmp_path, "runc", GOOD), "--crun", "", "--pyrunc",
                        fake(tmp_path, "pyrunc", BAD), "--json", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    data = json.loads(out.read_text())
    good = data["runc"]["metrics"]
    assert len(good["run wall"]) == 2 and all(v > 0 for v in good["run wall"])
    assert len(good["create+start+delete wall"]) == 2
    for verb in ("create", "start", "delete"):  # each verb of the lifecycle on its own row
        assert len(good[f"{verb} wall"]) == 2 and all(v > 0 for v in good[f"{verb} wall"])
    assert all(v > 0 for v in good["init VmRSS (created)"])  # the fake init was alive to read
    assert data["runc"]["errors"] == []
    assert data["pyrunc"]["metrics"] == {}
    assert "create: rc=1: boom: no cgroup" in data["pyrunc"]["errors"]
    rows = {line.split("  ")[0]: line for line in p.stdout.splitlines()}
    assert rows["run wall"].split()[-1] == "error"
    assert "pyrunc: 2x run: rc=1: boom: no cgroup" in p.stdout
