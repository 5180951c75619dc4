"""Test images without a registry: a busybox rootfs packed as an OCI image by umoci and skopeo.

The image is `localhost/busybox:latest`, written twice: as an OCI archive (for `ctr images
import` and `podman load`) and as a docker archive (for `docker load`, which in 20.10 reads only
that format).
"""

from __future__ import annotations

import shutil
import subprocess  # noqa: TID251 (test helper, not the runtime's hot path)
from dataclasses import dataclass
from pathlib import Path

IMAGE = "localhost/busybox:latest"
TOOLS = ("umoci", "skopeo")


@dataclass(frozen=True)
class Images:
    oci_archive: Path
    docker_archive: Path


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


def _oci_layout(rootfs: Path, workdir: Path) -> str:
    """An OCI layout at workdir/oci holding one image, tag `latest`, whose only layer is rootfs."""
    layout, bundle = workdir / "oci", workdir / "bundle"
    ref = f"{layout}:latest"
    _run("umoci", "init", "--layout", str(layout))
    _run("umoci", "new", "--image", ref)
    _run("umoci", "unpack", "--image", ref, str(bundle))
    shutil.copytree(rootfs, bundle / "rootfs", symlinks=True, dirs_exist_ok=True)
    _run("umoci", "repack", "--image", ref, str(bundle))
    _run("umoci", "config", "--image", ref, "--config.cmd", "sh",
         "--config.env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    shutil.rmtree(bundle)
    return ref


def build_images(rootfs: Path, workdir: Path) -> Images:
    """Pack `rootfs` as IMAGE into two archives under `workdir`."""
    ref = _oci_layout(rootfs, workdir)
    images = Images(workdir / "busybox-oci.tar", workdir / "busybox-docker.tar")
    _run("skopeo", "copy", f"oci:{ref}", f"oci-archive:{images.oci_archive}:{IMAGE}")
    _run("skopeo", "copy", f"oci:{ref}", f"docker-archive:{images.docker_archive}:{IMAGE}")
    return images


def images_fixture(name: str, workdir: str) -> object:
    """A session fixture `name`: the busybox rootfs packed by build_images under a temp dir named
    after `workdir` (skipped without TOOLS or root)."""
    import pytest
    from daemons import need

    @pytest.fixture(scope="session", name=name)
    def images(busybox_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Images:
        need(*TOOLS)
        return build_images(busybox_rootfs, tmp_path_factory.mktemp(workdir))

    return images
