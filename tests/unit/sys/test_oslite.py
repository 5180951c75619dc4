"""pyrunc.sys.oslite against the real os/posixpath: the same answers for the paths pyrunc meets."""

from __future__ import annotations

import os
import posixpath
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrunc.sys import oslite

REPO = Path(__file__).resolve().parents[3]

PATHS = ["", "/", "//", "a", "/a", "a/", "/a//b/", "a/b/../c", "/a/./b/.", "../x", "/..", "//a",
         "/run/pyrunc/id", "rootfs", "./rootfs/", "a/b/c/../../d"]
parts = st.lists(st.sampled_from(["a", "b", "..", ".", "", "long-name"]), max_size=6)
path_strategy = st.builds(lambda lead, p: lead + "/".join(p), st.sampled_from(["", "/", "//"]), parts)


def _same_as_posixpath(p: str) -> None:
    assert oslite.path.split(p) == posixpath.split(p)
    assert oslite.path.dirname(p) == posixpath.dirname(p)
    assert oslite.path.basename(p) == posixpath.basename(p)
    assert oslite.path.normpath(p) == posixpath.normpath(p)
    assert oslite.path.abspath(p) == posixpath.abspath(p)
    assert oslite.path.join(p, "x", "y/") == posixpath.join(p, "x", "y/")
    assert oslite.path.join("base", p) == posixpath.join("base", p)
    assert oslite.path.relpath("/" + p, "/a/b") == posixpath.relpath("/" + p, "/a/b")


@given(path_strategy)
def test_pure_functions_match_posixpath(p: str) -> None:
    _same_as_posixpath(p)


@pytest.mark.parametrize("p", PATHS)
def test_listed_paths_match_posixpath(p: str) -> None:
    _same_as_posixpath(p)


def test_filesystem_queries_and_realpath(tmp_path: Path) -> None:
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "file").write_text("x")
    (tmp_path / "abs").symlink_to(tmp_path / "dir")
    (tmp_path / "rel").symlink_to("dir/sub")
    (tmp_path / "up").symlink_to("dir/sub/../..")
    (tmp_path / "dangling").symlink_to("nowhere/x")
    (tmp_path / "loop").symlink_to("loop")
    names = ["dir", "dir/sub", "file", "abs", "rel", "up", "dangling", "missing", "abs/sub/..",
             "rel/../sub", "up/file", "dangling/more"]
    for name in names:
        p = str(tmp_path / name)
        assert oslite.path.exists(p) == os.path.exists(p), name
        assert oslite.path.lexists(p) == os.path.lexists(p), name
        assert oslite.path.isdir(p) == os.path.isdir(p), name
        assert oslite.path.islink(p) == os.path.islink(p), name
        assert oslite.path.realpath(p) == os.path.realpath(p), name
    with pytest.raises(OSError):
        oslite.path.realpath(str(tmp_path / "loop"))


def test_makedirs_and_walk(tmp_path: Path) -> None:
    top = str(tmp_path / "t")
    oslite.makedirs(top + "/a/b/c", 0o755)
    oslite.makedirs(top + "/a/b/c", exist_ok=True)
    with pytest.raises(FileExistsError):
        oslite.makedirs(top + "/a/b/c")
    Path(top, "a", "f").write_text("")
    (Path(top) / "link").symlink_to(top + "/a")  # not followed, as os.walk's default
    for topdown in (True, False):
        mine = [(d, sorted(ds), sorted(fs)) for d, ds, fs in oslite.walk(top, topdown=topdown)]
        real = [(d, sorted(ds), sorted(fs)) for d, ds, fs in os.walk(top, topdown=topdown)]
        assert mine == real


def test_environment_and_encoding() -> None:
    """The environment the process started with, as os.environ has it (without pytest's later
    changes, which oslite does not mirror: pyrunc only reads its environment)."""
    code = ("import os, sys; sys.path.insert(0, sys.argv[1]); from pyrunc.sys import oslite; "
            "print(all(oslite.getenv(k) == v for k, v in os.environ.items()) "
            "and oslite.getenv('X_\\udcff') == '\\udcfe' and oslite.getenv('NOT_SET') is None "
            "and oslite.getenv('NOT_SET', 'd') == 'd')")
    env = {**os.environ, "X_\udcff": "\udcfe"}
    out = subprocess.run([sys.executable, "-c", code, str(REPO)], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "True"
    assert oslite.fsencode("caf\udce9") == os.fsencode("caf\udce9")
