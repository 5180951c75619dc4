"""What the shim's tests share: a private containerd whose PATH finds containerd-shim-pyrunc-v2,
for `--runtime io.containerd.pyrunc.v2` (a module of its own name: `from conftest import` would
pick whichever conftest came first).

Reuses the client tests' daemons.py and images.py (tests/integration/clients). The shim found is the
one beside $PYRUNC when there is one (the installed launcher), else the source tree's bin/.
Teardown kills what is left (containerd, the shim daemon: its command line names containerd's
socket under the temp dir) and removes the shim's state for the test namespace.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients"))

from daemons import Containerd, need, started  # noqa: E402, F401 (need: for conftest.py)
from images import Images, images_fixture  # noqa: E402, F401 (for conftest.py)

REPO = Path(__file__).resolve().parents[3]
SHIM = "containerd-shim-pyrunc-v2"
RUNTIME = "io.containerd.pyrunc.v2"
SHIM_STATE = Path("/run/containerd/pyrunc")


def shim_dir() -> Path:
    pyrunc = os.environ.get("PYRUNC")
    if pyrunc and (Path(pyrunc).parent / SHIM).exists():
        return Path(pyrunc).parent
    return REPO / "bin"


class ShimContainerd(Containerd):
    """containerd with our shim first on its PATH (containerd finds shims on PATH)."""

    # PYRUNC_SHIM_IDLE: a short linger, so a test session leaves no shim behind for long
    idle = "20"

    def environ(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{shim_dir()}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                "PYRUNC_SHIM_IDLE": self.idle}

    def restart(self) -> None:
        """Stop containerd alone (its shims and tasks go on running), then start it again."""
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(30)
        self.start()

    def run_flags(self) -> list[str]:
        return ["--runtime", RUNTIME, *self.fifo_dir()]

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(SHIM_STATE / self.namespace, ignore_errors=True)
        for leftover in (SHIM_STATE, Path("/run/containerd/s"), Path("/run/containerd")):
            try:
                leftover.rmdir()
            except OSError:
                pass


@contextlib.contextmanager
def start_shim_containerd(images: Images, top: Path, idle: str = ShimContainerd.idle
                          ) -> Iterator[ShimContainerd]:
    """A ShimContainerd in `top` (namespace shim-...) with the busybox image, stopped at the end."""
    daemon = ShimContainerd(top)
    daemon.namespace = "shim-" + daemon.namespace
    daemon.idle = idle
    with started(daemon, lambda d: d.ctr("images", "import", str(images.oci_archive),
                                         timeout=120)):
        yield daemon
