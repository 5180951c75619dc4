"""Static checks run as tests, so CI enforces them: ruff, mypy --strict, the import contracts,
and the promise that nothing heavy is imported on the hot path of create/start/run/delete."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_clean() -> None:
    p = _run(str(BIN / "ruff"), "check", "pyrunc", "pyctr", "tests", "bench", "conformance")
    assert p.returncode == 0, p.stdout + p.stderr


def test_mypy_strict_clean() -> None:
    p = _run(sys.executable, "-m", "mypy", "pyrunc", "pyctr")
    assert p.returncode == 0, p.stdout + p.stderr


def test_import_contracts_kept() -> None:
    p = _run(str(BIN / "lint-imports"))
    assert p.returncode == 0, p.stdout + p.stderr


HEAVY = ["jsonschema", "pyroute2", "argparse", "logging", "subprocess", "dataclasses", "typing",
         "asyncio", "inspect", "seccomp",
         # each pulls enum, re or collections: a few ms of every call (see pyrunc.sys.jsonfast,
         # pyrunc.sys.sockets, pyrunc._typing, pyrunc.records)
         "json", "re", "enum", "socket", "selectors", "threading", "array", "contextlib",
         "collections", "base64", "ctypes",
         # os builds collections.abc's ABCs (~1.3 ms): pyrunc.sys.oslite is posix plus what we use
         "os"]


@pytest.mark.parametrize("verb", ["create", "start", "run", "delete", "state", "kill"])
def test_hot_path_imports_nothing_heavy(verb: str) -> None:
    """What `pyrunc <verb>` imports, with the interpreter started as bin/pyrunc starts it."""
    modules = {"create": "pyrunc.ops.create", "start": "pyrunc.ops.start", "run": "pyrunc.ops.run",
               "delete": "pyrunc.ops.delete", "state": "pyrunc.container", "kill": "pyrunc.ops.kill"}
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import pyrunc.cli, {modules[verb]}; "
            "print(' '.join(sorted(sys.modules)))")
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                       check=True)
    loaded = set(p.stdout.split())
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


SHORT_VERBS = {"start": ["pyrunc.container.start"], "state": ["pyrunc.container"],
               "kill": ["pyrunc.ops.kill"],
               "delete": ["pyrunc.container.destroy", "pyrunc.linux.cgroups.teardown"]}


@pytest.mark.parametrize("verb", sorted(SHORT_VERBS))
def test_short_verbs_load_no_future_module(verb: str) -> None:
    """`from __future__ import annotations` is an import at run time too, of a module that builds
    ten feature objects (~0.25 ms of a short verb, issue 17): the modules of start, state, kill and
    delete write their annotations without it, names that only mypy knows in quotes."""
    code = (f"import sys; sys.path.append({str(REPO)!r}); import pyrunc; pyrunc.fast_imports(); "
            f"import pyrunc.cli, {', '.join(SHORT_VERBS[verb])}; print(' '.join(sys.modules))")
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                       check=True)
    loaded = set(p.stdout.split())
    assert set(SHORT_VERBS[verb]) <= loaded and "__future__" not in loaded


# The typed config (pyrunc.spec.types) leaves `Any` only at the JSON boundary: the parser's
# result before spec.load checks it, and the few free-form documents around it.
ANY_LINES_MAX = 30


def test_any_confined_to_the_json_boundary() -> None:
    import tokenize
    lines = []
    for path in sorted((REPO / "pyrunc").rglob("*.py")):
        with open(path, "rb") as f:
            toks = tokenize.tokenize(f.readline)
            rows = {t.start[0] for t in toks if t.type == tokenize.NAME and t.string == "Any"}
        text = path.read_text().splitlines()
        lines += [f"{path.relative_to(REPO)}:{n}: {text[n - 1].strip()}" for n in sorted(rows)]
    assert len(lines) <= ANY_LINES_MAX, f"{len(lines)} lines name Any:\n" + "\n".join(lines)
