"""Remove what a killed or buggy conformance test leaves on the host: cgroups, mounts, temp bundles.

Other engineers run containers on the same host at the same time, so only what appeared during the
test *and* looks like the suite's own is touched: cgroup dirs named like runtime-tools' container
ids (UUIDs) or its `cgrouptest`/`testdir` paths, mounts under the suite or its `ocitest*` bundles.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SUITE_CGROUP_NAMES = {"cgrouptest", "testdir"}
_BUNDLE_PREFIX = "ocitest"


def cgroup_dirs(root: Path = CGROUP_ROOT, depth: int = 4) -> set[str]:
    found: set[str] = set()
    for top, dirs, _ in os.walk(root):
        if top.count("/") - str(root).count("/") >= depth:
            dirs.clear()
        found.update(os.path.join(top, d) for d in dirs)
    return found


def mount_points() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4].replace("\\040", " ") for line in f}


def temp_bundles() -> set[str]:
    tmp = tempfile.gettempdir()
    return {os.path.join(tmp, n) for n in os.listdir(tmp) if n.startswith(_BUNDLE_PREFIX)}


def is_suite_cgroup(path: str) -> bool:
    parts = set(path.split("/"))
    return bool(parts & _SUITE_CGROUP_NAMES) or bool(_UUID.match(os.path.basename(path)))


@dataclass
class Snapshot:
    """What existed before a test; `clean(suite)` removes the suite's leftovers since then."""

    cgroups: set[str] = field(default_factory=cgroup_dirs)
    mounts: set[str] = field(default_factory=mount_points)
    bundles: set[str] = field(default_factory=temp_bundles)

    def clean(self, suite: Path) -> list[str]:
        """Remove leftovers; returns a description of each one removed."""
        done: list[str] = []
        new_bundles = temp_bundles() - self.bundles
        under = (str(suite.resolve()), *new_bundles)
        for m in sorted(mount_points() - self.mounts, key=len, reverse=True):
            if m.startswith(under) or f"/{_BUNDLE_PREFIX}" in m:
                subprocess.run(["umount", "-l", m], capture_output=True)
                done.append(f"mount {m}")
        for b in new_bundles:
            shutil.rmtree(b, ignore_errors=True)
            done.append(f"bundle {b}")
        for d in sorted(cgroup_dirs() - self.cgroups, key=len, reverse=True):
            if is_suite_cgroup(d):
                try:
                    os.rmdir(d)
                    done.append(f"cgroup {d}")
                except OSError:
                    done.append(f"cgroup {d} (busy, left)")
        return done
