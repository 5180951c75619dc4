"""What an overlay of unpacked layers shows, worked out without mounting it, and the init layer
of a RUN step made from it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pyctr.image import snapshot

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown, trusted xattrs)")


def _layers(tmp_path: Path) -> list[Path]:
    low, mid, top = (tmp_path / n for n in ("low", "mid", "top"))
    for d in (low / "etc", low / "data", low / "proc", mid / "data", top):
        d.mkdir(parents=True)
    (low / "etc" / "hosts").write_text("x")
    (low / "data" / "old").write_text("x")
    (low / "gone").write_text("x")
    os.chmod(low / "etc", 0o750)
    os.setxattr(mid / "data", "trusted.overlay.opaque", b"y")  # hides low/data/old
    (mid / "data" / "new").write_text("x")
    os.mknod(top / "gone", stat.S_IFCHR, os.makedev(0, 0))  # a whiteout of low/gone
    os.symlink("/nowhere", top / "sys")
    return [low, mid, top]


@root_only
def test_lookup_follows_overlay_rules(tmp_path: Path) -> None:
    lowers = _layers(tmp_path)
    assert snapshot.lookup(lowers, "etc/hosts") is not None
    assert snapshot.lookup(lowers, "data/new") is not None
    assert snapshot.lookup(lowers, "data/old") is None  # under an opaque directory
    assert snapshot.lookup(lowers, "gone") is None  # whited out
    st = snapshot.lookup(lowers, "sys")
    assert st is not None and stat.S_ISLNK(st.st_mode)
    assert snapshot.lookup(lowers, "nothing/here") is None


@root_only
def test_init_layer_holds_only_what_the_image_lacks(tmp_path: Path) -> None:
    lowers = _layers(tmp_path)
    init = snapshot.make_init(lowers, tmp_path / "init")
    made = sorted(str(p.relative_to(init)) for p in init.rglob("*"))
    # /proc and /etc/hosts exist; /sys is a symlink the runtime resolves inside the root
    assert made == ["dev", "etc", "etc/hostname", "etc/resolv.conf"]
    st = os.stat(init / "etc")
    assert stat.S_IMODE(st.st_mode) == 0o750  # the image's /etc, as the overlay shows it
    assert st.st_mtime_ns == os.stat(lowers[0] / "etc").st_mtime_ns
