"""`-u user[:group]` resolved against the image's own /etc/passwd and /etc/group."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyctr.driver.paths import read_text_in
from pyctr.errors import ContainerError


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


def _entries(text: str | None, fields: int) -> list[list[str]]:
    out = []
    for line in (text or "").splitlines():
        parts = line.split(":")
        if len(parts) >= fields and not line.startswith("#"):
            out.append(parts)
    return out


def resolve(rootfs: Path, spec: str) -> User:
    passwd = _entries(read_text_in(rootfs, "/etc/passwd"), 7)
    groups = _entries(read_text_in(rootfs, "/etc/group"), 4)
    user_part, _, group_part = (spec or "0").partition(":")
    entry = next((p for p in passwd if p[0] == user_part or (user_part.isdigit() and p[2] == user_part)),
                 None)
    if entry is None and not user_part.isdigit():
        raise ContainerError(f"unable to find user {user_part}: no matching entries in passwd file")
    uid = int(user_part) if user_part.isdigit() else int(entry[2])  # type: ignore[index]
    gid = int(entry[3]) if entry else 0
    home = entry[5] if entry else "/"
    if group_part:
        gid = _group_id(groups, group_part)
    name = entry[0] if entry else None
    extra = tuple(int(g[2]) for g in groups
                  if name and name in g[3].split(",") and int(g[2]) != gid)
    return User(uid, gid, extra, home)


def _group_id(groups: list[list[str]], text: str) -> int:
    if text.isdigit():
        return int(text)
    for g in groups:
        if g[0] == text:
            return int(g[2])
    raise ContainerError(f"unable to find group {text}: no matching entries in group file")
