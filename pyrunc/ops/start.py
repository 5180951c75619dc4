"""`start`: release the waiting init and run the poststart hooks (pyrunc.container.start, which
`run` shares)."""

from __future__ import annotations

from pyrunc.container.start import start

__all__ = ["start"]
