"""`delete [--force]`: kill what is left, remove cgroups, mounts and state, run poststop
(pyrunc.container.destroy, which `run` and a failed `start` share)."""

from __future__ import annotations

from pyrunc.container.destroy import delete

__all__ = ["delete"]
