"""`create`: from a bundle to an init blocked before execve, or to nothing at all.

The verb is the container layer's create (pyrunc.container.create), which `run` shares.
"""

from __future__ import annotations

from pyrunc.container.create import CreateOptions, create

__all__ = ["CreateOptions", "create"]
