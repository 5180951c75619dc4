"""What a real `pyrunc run` (and the create/start/delete of a container) imports, read from the
interpreter's own -X importtime log: the heavy or enum/re-pulling modules stay off the hot path,
however lazily a verb imports its mechanisms."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from testlib import Bundle, Runtime

pytestmark = pytest.mark.requires("root", "busybox")

REPO = Path(__file__).resolve().parents[3]
OFF_THE_HOT_PATH = {"jsonschema", "pyroute2", "argparse", "logging", "subprocess", "dataclasses",
                    "typing", "inspect", "json", "re", "enum", "socket", "selectors", "threading",
                    "array", "contextlib", "collections", "base64", "ctypes", "os"}


def _imports(runtime: Runtime, *args: str) -> set[str]:
    argv = [sys.executable, "-X", "importtime", "-I", "-S", str(REPO / "bin" / "pyrunc"),
            "--root", str(runtime.root), *args]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in p.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_run_imports_nothing_heavy(runtime: Runtime, bundle: Bundle, cid: str) -> None:
    loaded = _imports(runtime, "run", "-b", str(bundle.path), cid)
    assert "pyrunc.container.create" in loaded  # the log is real
    assert not loaded & OFF_THE_HOT_PATH, sorted(loaded & OFF_THE_HOT_PATH)


def test_start_and_delete_import_nothing_heavy(runtime: Runtime, make_bundle, cid: str) -> None:  # type: ignore[no-untyped-def]
    b = make_bundle("true")
    assert runtime.run("create", "-b", str(b.path), cid).rc == 0
    for verb in (["start", cid], ["state", cid], ["delete", "--force", cid]):
        loaded = _imports(runtime, *verb)
        assert not loaded & OFF_THE_HOT_PATH, (verb, sorted(loaded & OFF_THE_HOT_PATH))
