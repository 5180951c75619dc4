"""Fixtures of the shim's tests: the busybox image and a private containerd (shim_fixtures.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from shim_fixtures import Images, ShimContainerd, images_fixture, need, start_shim_containerd

shim_images = images_fixture("shim_images", "shim-images")


@pytest.fixture(scope="session")
def shim_containerd(shim_images: Images, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[ShimContainerd]:
    need("containerd", "ctr")
    with start_shim_containerd(shim_images, tmp_path_factory.mktemp("shim-containerd")) as daemon:
        yield daemon
