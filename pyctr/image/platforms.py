"""Platforms (`os/arch[/variant]`) and choosing one manifest from an index."""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass
from typing import Any

from pyctr.errors import NotFound, PyctrError

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
         "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
# The variant an architecture has when an index entry names none.
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7", "amd64": "v1"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def parse_platform(text: str) -> Platform:
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise PyctrError(f"invalid platform {text!r} (want os/arch[/variant])")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def host_platform() -> Platform:
    machine = _platform.machine()
    arch = _ARCH.get(machine, machine)
    variant = {"armv7l": "v7", "armv6l": "v6"}.get(machine)
    return Platform("linux", arch, variant)


def _variant(p: dict[str, Any]) -> str | None:
    return p.get("variant") or _DEFAULT_VARIANT.get(p.get("architecture", ""))


def select(index: dict[str, Any], want: Platform) -> dict[str, Any]:
    """The index entry for `want`; an exact variant beats an entry without one."""
    best: tuple[int, dict[str, Any]] | None = None
    for desc in index.get("manifests", []):
        p = desc.get("platform") or {}
        if p.get("os") != want.os or p.get("architecture") != want.architecture:
            continue
        score = 1
        if want.variant is not None:
            if _variant(p) != (want.variant or _DEFAULT_VARIANT.get(want.architecture)):
                continue
            score = 2 if p.get("variant") == want.variant else 1
        if best is None or score > best[0]:
            best = (score, desc)
    if best is None:
        have = ", ".join(str(Platform(d.get("platform", {}).get("os", "?"),
                                      d.get("platform", {}).get("architecture", "?"),
                                      d.get("platform", {}).get("variant")))
                         for d in index.get("manifests", []))
        raise NotFound(f"no manifest for platform {want} (index has: {have})")
    return best[1]
