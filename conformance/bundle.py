"""Busybox bundles with the defaults `runc spec` writes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

BUSYBOX = "/usr/bin/busybox"

def default_config(args: list[str]) -> dict[str, Any]:
    """`runc spec`'s config.json (pyrunc's generator writes the same, field for field) with
    `args` as the process, no terminal, and runc 1.1's ociVersion, which every runtime takes."""
    from pyrunc.spec.specgen import default_spec

    config = default_spec()
    config["ociVersion"] = "1.0.2-dev"
    config["process"]["args"] = list(args)
    config["process"]["terminal"] = False
    return config


def make_rootfs(rootfs: Path) -> None:
    """A busybox-static root: /bin/busybox, one symlink per applet, passwd and group files."""
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True)
    for name in applets.stdout.split():
        link = rootfs / "bin" / name
        if not link.is_symlink() and not link.exists():
            link.symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (rootfs / "tmp").chmod(0o1777)


def write_bundle(path: Path, rootfs_src: Path, config: dict[str, Any]) -> Path:
    """A bundle at `path` with a copy of `rootfs_src` and `config`; returns `path`."""
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "rootfs").exists():
        shutil.copytree(rootfs_src, path / "rootfs", symlinks=True)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    return path
