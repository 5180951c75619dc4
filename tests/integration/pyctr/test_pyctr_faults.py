"""Issue 15: network and disk faults give one clear error, in seconds, and leave the store as it
was: a registry that accepts and never answers, a store that fills up (ENOSPC, on a small tmpfs
in a private mount namespace), a truncated or corrupt archive given to `load`.
"""

from __future__ import annotations

import json
import shutil
import subprocess  # noqa: TID251 - tests drive the real command line
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyctr_fixtures import REPO, build_oci_layout, open_store_dir

pytestmark = pytest.mark.requires("root", "busybox", "cmd:unshare")
PYCTR = [sys.executable, "-m", "pyctr"]
ENV = {"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


@pytest.fixture
def base() -> Iterator[Path]:
    path = open_store_dir("p15-faults")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An oci-archive of the busybox test image, index.json first and the big layer last."""
    layout = tmp_path_factory.mktemp("p15-layout") / "oci"
    build_oci_layout(layout)
    blobs = sorted((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    path = layout.parent / "image.tar"
    with tarfile.open(path, "w") as tar:
        for name in ("oci-layout", "index.json"):
            tar.add(layout / name, name)
        for blob in blobs:
            tar.add(blob, f"blobs/sha256/{blob.name}")
    return path


def _store_state(root: Path) -> tuple[list[str], list[object]]:
    blobs = sorted(p.name for p in (root / "blobs" / "sha256").iterdir())
    return blobs, json.loads((root / "index.json").read_text())["manifests"]


def _pyctr(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYCTR, "--root", str(root), *args], capture_output=True, text=True,
                          env=ENV, timeout=120)


def _one_error_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyctr: "), err
    assert all(w in lines[0] for w in words), err


# --- a registry that accepts and never answers ---------------------------------------------

_HANG = textwrap.dedent("""
    import json, socket, subprocess, sys, time
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # the kernel accepts; nobody ever reads or answers
    host = "127.0.0.1:%d" % listener.getsockname()[1]
    start = time.monotonic()
    p = subprocess.run(sys.argv[1:] + ["pull", host + "/test/busybox:v1"],
                       capture_output=True, text=True, timeout=100)
    print(json.dumps({"rc": p.returncode, "err": p.stderr, "secs": time.monotonic() - start}))
""")


@pytest.mark.requires("cmd:ip")
@pytest.mark.parametrize("timeouts", [["--read-timeout", "0.5", "--retries", "2"],
                                      ["--read-timeout", "1", "--retries", "0"]])
def test_registry_that_never_answers(base: Path, timeouts: list[str]) -> None:
    # In a private network namespace: the listener and pyctr share only its loopback.
    p = subprocess.run(["unshare", "-n", sys.executable, "-c", _HANG, *PYCTR, "--root",
                        str(base / "root"), *timeouts], capture_output=True, text=True, env=ENV,
                       timeout=120, check=True)
    result = json.loads(p.stdout)
    assert result["rc"] == 1
    _one_error_line(result["err"], "read timeout", "127.0.0.1")
    assert result["secs"] < 10
    assert _store_state(base / "root") == ([], [])


def test_timeouts_have_sane_defaults_and_are_settable() -> None:
    from pyctr.cli.cli_args import parser
    from pyctr.image.registry import Registry

    a = parser().parse_args(["pull", "x"])
    assert (a.connect_timeout, a.read_timeout, a.retries) == (10, 30, 3)
    r = Registry("h")
    assert (r.connect_timeout, r.read_timeout, r.retries) == (10, 30, 3)
    a = parser().parse_args(["--connect-timeout", "2", "--read-timeout", "5", "pull", "x"])
    assert (a.connect_timeout, a.read_timeout) == (2, 5)


# --- load: a store that fills up, a truncated or corrupt archive ---------------------------


def test_load_into_a_full_store(base: Path, archive: Path) -> None:
    root = base / "root"
    _pyctr(root, "images")  # the empty store, as it was before the failed load
    before = _store_state(root)
    # The store on a 1 MiB tmpfs, in a private mount namespace: it vanishes with the namespace.
    script = (f"mount -t tmpfs -o size=1m,mode=0700 p15-full {root} && "
              f"{' '.join(PYCTR)} --root {root} images >/dev/null && "
              f"{{ {' '.join(PYCTR)} --root {root} load -i {archive}; echo rc=$?; }} && "
              f"ls -A {root}/blobs/sha256 && cat {root}/index.json")
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, env=ENV, timeout=120)
    out, _, index = p.stdout.partition("{")
    assert out.startswith("rc=1\n"), p.stdout + p.stderr
    _one_error_line(p.stderr, str(archive), "No space left on device")
    assert out == "rc=1\n"  # no blob (nor a temp file of one) left behind
    assert json.loads("{" + index)["manifests"] == []
    assert _store_state(root) == before  # the real store under the tmpfs was never touched


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_load_of_a_damaged_archive(base: Path, archive: Path, damage: str) -> None:
    data = archive.read_bytes()
    bad = base / f"{damage}.tar"
    if damage == "truncate":
        bad.write_bytes(data[: int(len(data) * 0.7)])
    else:
        middle = len(data) * 3 // 4
        bad.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64])
                        + data[middle + 64:])
    root = base / "root"
    _pyctr(root, "images")
    before = _store_state(root)
    p = _pyctr(root, "load", "-i", str(bad))
    assert p.returncode == 1
    _one_error_line(p.stderr, str(bad))
    assert _store_state(root) == before
    ok = _pyctr(root, "load", "-i", str(archive))
    assert ok.returncode == 0, ok.stderr
    assert len(_store_state(root)[1]) == 1
