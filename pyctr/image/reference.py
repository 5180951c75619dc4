"""Image references as docker users write them.

`busybox` means `docker.io/library/busybox:latest`; the first path component names a registry
only when it holds a `.` or a `:` or is `localhost`; `@sha256:...` pins a digest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyctr.errors import InvalidReference

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_HOST = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\.?)+(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$")


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`registry/repository`, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host serving the registry API (docker.io is served by registry-1.docker.io)."""
        return "registry-1.docker.io" if self.registry == DEFAULT_REGISTRY else self.registry

    @property
    def object(self) -> str:
        """What to ask `/v2/<name>/manifests/` for: the digest when pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    def familiar(self) -> str:
        """The short form docker prints (`busybox:latest`)."""
        repo = self.repository
        if self.registry == DEFAULT_REGISTRY:
            repo = repo.removeprefix("library/")
        else:
            repo = self.name
        return repo + (":" + self.tag if self.tag else "") + ("@" + self.digest if self.digest else "")


def _split_registry(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _HOST.match(first):
            raise InvalidReference(f"invalid registry host {first!r}")
        return first, rest
    return DEFAULT_REGISTRY, name


def parse(text: str) -> Reference:
    """Parse `[host[:port]/]path[:tag][@digest]`, filling docker's defaults."""
    if not text or text != text.strip():
        raise InvalidReference(f"invalid reference format: {text!r}")
    rest, _, digest = text.partition("@")
    if digest and not _DIGEST.match(digest):
        raise InvalidReference(f"invalid digest in {text!r}")
    registry, path = _split_registry(rest)
    tag: str | None = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReference(f"invalid tag in {text!r}")
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = "library/" + path
    if not path or not all(_COMPONENT.match(c) for c in path.split("/")):
        raise InvalidReference(f"invalid reference format: repository name must be lowercase: {text!r}")
    if len(registry) + 1 + len(path) > 255:
        raise InvalidReference(f"repository name too long: {text!r}")
    if tag is None and not digest:
        tag = DEFAULT_TAG
    return Reference(registry, path, tag, digest or None)
