"""The createRuntime hook pyctr gives runtimes that do not bring lo up in a new netns."""

from __future__ import annotations

import json
import subprocess  # noqa: TID251 - a process in its own network namespace
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.requires("root", "cmd:unshare", "cmd:nsenter", "cmd:ip")
def test_hook_brings_lo_up() -> None:
    proc = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        def lo_flags() -> str:
            out = subprocess.run(["nsenter", "-t", str(proc.pid), "-n", "ip", "-o", "link", "show",
                                  "lo"], capture_output=True, text=True, check=True).stdout
            return out.split("<")[1].split(">")[0]
        for _ in range(50):  # until unshare has exec'd sleep in the new namespace
            if "UP" not in lo_flags():
                break
        assert "UP" not in lo_flags().split(",")
        state = {"ociVersion": "1.0.2", "id": "pc-hook", "status": "creating", "pid": proc.pid,
                 "bundle": "/"}
        hook = subprocess.run([sys.executable, "-m", "pyctr.driver.nethook"], input=json.dumps(state),
                              text=True, capture_output=True, cwd=REPO, timeout=60)
        assert hook.returncode == 0, hook.stderr
        assert "UP" in lo_flags().split(",")
    finally:
        proc.kill()
        proc.wait()
