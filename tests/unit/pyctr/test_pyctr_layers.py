"""Safe layer unpacking: no escapes through `..`, absolute names, symlinks or hardlinks;
whiteouts turned into overlayfs whiteouts; the writable layer turned back into a tarball."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pyctr.errors import LayerError
from pyctr.image import layers

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, trusted xattrs)")


def _tar(*entries: tuple[str, str, str]) -> io.BytesIO:
    """(name, kind, data-or-linkname) with kind file|dir|sym|link."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "dir" else 0o644
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind in ("sym", "link"):
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = data
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data.encode()))
    buf.seek(0)
    return buf


def test_regular_tree(tmp_path: Path) -> None:
    dest = tmp_path / "fs"
    dest.mkdir()
    layers.extract(_tar(("./a", "dir", ""), ("./a/f", "file", "hi"), ("a/l", "sym", "f"),
                        ("a/h", "link", "a/f"), ("/abs", "file", "x")), dest)
    assert (dest / "a" / "f").read_text() == "hi"
    assert os.readlink(dest / "a" / "l") == "f"
    assert (dest / "a" / "h").stat().st_ino == (dest / "a" / "f").stat().st_ino
    assert (dest / "abs").read_text() == "x"  # absolute names land inside


@pytest.mark.parametrize("entries", [
    [("../evil", "file", "x")],
    [("a/../../evil", "file", "x")],
    [("link", "sym", "/"), ("link/evil", "file", "x")],
    [("link", "sym", ".."), ("link/evil", "file", "x")],
    [("hl", "link", "../outside")],
])
def test_escapes_are_refused(tmp_path: Path, entries: list[tuple[str, str, str]]) -> None:
    dest = tmp_path / "fs"
    dest.mkdir()
    (tmp_path / "outside").write_text("host file")
    with pytest.raises(LayerError):
        layers.extract(_tar(*entries), dest)
    assert not (tmp_path / "evil").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fs", "outside"]


def test_symlink_replaced_by_file_is_not_followed(tmp_path: Path) -> None:
    dest = tmp_path / "fs"
    dest.mkdir()
    target = tmp_path / "victim"
    target.write_text("keep")
    layers.extract(_tar(("f", "sym", str(target)), ("f", "file", "new")), dest)
    assert target.read_text() == "keep"
    assert (dest / "f").read_text() == "new" and not (dest / "f").is_symlink()


def test_chain_ids() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    import hashlib
    assert layers.chain_ids([a, b]) == [a, "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()]


@root_only
def test_whiteouts_become_overlay_whiteouts(tmp_path: Path) -> None:
    dest = tmp_path / "fs"
    dest.mkdir()
    layers.extract(_tar(("d", "dir", ""), ("d/.wh..wh..opq", "file", ""), (".wh.gone", "file", "")),
                   dest)
    st = os.lstat(dest / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(dest / "d", "trusted.overlay.opaque") == b"y"
    assert not (dest / "d" / ".wh..wh..opq").exists()


@root_only
def test_diff_roundtrip(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    (upper / "d" / "f").write_text("data")
    os.mknod(upper / "deleted", stat.S_IFCHR, os.makedev(0, 0))
    os.setxattr(upper / "d", "trusted.overlay.opaque", b"y")
    buf = io.BytesIO()
    layers.write_diff(upper, buf)
    buf.seek(0)
    names = tarfile.open(fileobj=buf).getnames()
    assert names == ["d", "d/.wh..wh..opq", "d/f", ".wh.deleted"]
