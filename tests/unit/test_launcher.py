"""bin/pyrunc and pyrunc.fast_imports: pyrunc's modules come from their .pyc when it is fresh,
from the stock machinery otherwise, and read the same either way."""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import sys
sys.path.append(sys.argv[1])
import pyrunc
pyrunc.fast_imports()
import pyrunc.container.state as m
import pyrunc.sys as pkg
print(type(m.__loader__).__name__, m.__file__, m.__cached__, m.__spec__.origin, m.STATE_FILE)
print(type(pkg.__loader__).__name__, pkg.__file__, pkg.__path__, pkg.__package__)
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package with fresh .pyc files (the repo's own are left alone)."""
    shutil.copytree(REPO / "pyrunc", tmp_path / "pyrunc",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tmp_path / "pyrunc")], check=True)
    return tmp_path


def probe(tree: Path) -> list[list[str]]:
    p = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, str(tree)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [line.split() for line in p.stdout.splitlines()]


def test_modules_load_from_their_pyc_with_the_stock_attributes(tree: Path) -> None:
    mod, pkg = probe(tree)
    src = tree / "pyrunc" / "container" / "state.py"
    pyc = tree / "pyrunc" / "container" / "__pycache__" / f"state.{sys.implementation.cache_tag}.pyc"
    assert mod == ["PycLoader", str(src), str(pyc), str(src), "state.json"]
    assert pkg[0] == "PycLoader" and pkg[1] == str(tree / "pyrunc" / "sys" / "__init__.py")
    assert pkg[2] == f"['{tree / 'pyrunc' / 'sys'}']" and pkg[3] == "pyrunc.sys"


def test_a_changed_source_is_loaded_from_source(tree: Path) -> None:
    src = tree / "pyrunc" / "container" / "state.py"
    src.write_text(src.read_text().replace('STATE_FILE = "state.json"', 'STATE_FILE = "changed"'))
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # a new mtime, surely
    mod, _ = probe(tree)
    assert mod[0] == "SourceFileLoader" and mod[4] == "changed"
    mod, _ = probe(tree)  # the stock loader wrote the .pyc again: the fast path takes it
    assert mod[0] == "PycLoader" and mod[4] == "changed"


def test_a_missing_pyc_falls_back_to_the_stock_loader(tree: Path) -> None:
    shutil.rmtree(tree / "pyrunc" / "container" / "__pycache__")
    mod, pkg = probe(tree)
    assert mod[0] == "SourceFileLoader" and mod[4] == "state.json"
    assert pkg[0] == "PycLoader"


def test_a_corrupt_pyc_header_falls_back(tree: Path) -> None:
    pyc = tree / "pyrunc" / "container" / "__pycache__" / f"state.{sys.implementation.cache_tag}.pyc"
    pyc.write_bytes(b"\0\0\0\0" + pyc.read_bytes()[4:])
    mod, _ = probe(tree)
    assert mod[0] == "SourceFileLoader" and mod[4] == "state.json"


def test_the_launcher_runs_through_a_chain_of_symlinks(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "pyrunc").symlink_to(REPO / "bin" / "pyrunc")
    (tmp_path / "b" / "pyrunc").symlink_to("../a/pyrunc")
    p = subprocess.run([str(tmp_path / "b" / "pyrunc"), "--version"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("pyrunc version ")


def test_stdlib_extensions_are_found_by_name_without_listing_lib_dynload() -> None:
    """_json (every verb parses state.json) comes from lib-dynload's file of its name, the file
    the stock finder picks, and the path finder never lists that directory; names that are
    built in or pure Python still go to the stock finders."""
    code = """
import sys
from _frozen_importlib import _load
from _frozen_importlib_external import spec_from_file_location
pyrunc = _load(spec_from_file_location("pyrunc", sys.argv[1] + "/pyrunc/__init__.py"))  # as bin/pyrunc
pyrunc.fast_imports()
import _json, fcntl, posixpath
dynload = next(d for d in sys.path if d.endswith("/lib-dynload"))
print(type(_json.__spec__.loader).__name__, _json.__file__, dynload in sys.path_importer_cache)
print(fcntl.__spec__.origin if fcntl.__spec__.origin != "built-in" else "built-in",
      posixpath.__spec__.origin)
"""
    stock = subprocess.run([sys.executable, "-I", "-S", "-c", "import _json; print(_json.__file__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(REPO)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    ext, other = p.stdout.splitlines()
    assert ext.split() == ["ExtensionFileLoader", stock, "False"]
    assert other.split()[0] == "built-in" and other.split()[1] in ("frozen", posixpath.__file__)

