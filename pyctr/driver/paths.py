"""Resolving paths inside a container's rootfs as the container would see them.

A symlink in an image is relative to the image's root, never the host's: `secure_join` walks
the path component by component and resolves each symlink against `root`, clamping `..` at it
(the same idea as filepath-securejoin).
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_LINKS = 40


def secure_join(root: Path, path: str) -> Path:
    todo = [p for p in path.split("/") if p not in ("", ".")]
    todo.reverse()
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop()
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = root.joinpath(*done, part)
        if candidate.is_symlink():
            links += 1
            if links > MAX_LINKS:
                raise OSError(40, f"too many symlinks resolving {path!r}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            todo.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
            continue
        done.append(part)
    return root.joinpath(*done)


def read_text_in(root: Path, path: str) -> str | None:
    try:
        return secure_join(root, path).read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
