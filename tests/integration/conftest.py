"""Fixtures shared by the integration tests (the shared helpers themselves live in testlib)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from testlib import cgroup_mounts, remove_cgroup_tree


@pytest.fixture
def parent() -> Iterator[str]:
    """A private parent cgroup name for a test's containers; the tree is removed at the end."""
    name = "pyrunc-test-cg-" + uuid.uuid4().hex[:8]
    yield name
    for mount in cgroup_mounts():
        remove_cgroup_tree(os.path.join(mount, name))
