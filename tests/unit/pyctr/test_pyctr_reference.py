"""Image references as docker users write them."""

from __future__ import annotations

import pytest

from pyctr.errors import InvalidReference
from pyctr.image.reference import parse

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(("text", "registry", "repo", "tag", "digest"), [
    ("busybox", "docker.io", "library/busybox", "latest", None),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
    ("user/app", "docker.io", "user/app", "latest", None),
    ("localhost/app", "localhost", "app", "latest", None),
    ("localhost:5000/user/app:tag", "localhost:5000", "user/app", "tag", None),
    ("quay.io/org/sub/app:v1.2-rc_3", "quay.io", "org/sub/app", "v1.2-rc_3", None),
    (f"busybox@{DIGEST}", "docker.io", "library/busybox", None, DIGEST),
    (f"127.0.0.1:5000/app:t@{DIGEST}", "127.0.0.1:5000", "app", "t", DIGEST),
    ("my-host:80/a__b/c.d", "my-host:80", "a__b/c.d", "latest", None),
])
def test_parse(text: str, registry: str, repo: str, tag: str | None, digest: str | None) -> None:
    ref = parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repo, tag, digest)


def test_string_forms() -> None:
    ref = parse("busybox")
    assert str(ref) == "docker.io/library/busybox:latest"
    assert ref.familiar() == "busybox:latest"
    assert ref.api_host == "registry-1.docker.io"
    assert parse("localhost:5000/a/b:c").familiar() == "localhost:5000/a/b:c"
    assert parse(f"busybox@{DIGEST}").object == DIGEST
    assert parse("a/b:c").object == "c"


@pytest.mark.parametrize("text", [
    "", "Busybox", "busybox:", "busybox@sha256:", ":tag", "a//b", "a/../b", "busybox:bad tag",
    "-leading", "host:5000/", " busybox", "a" * 300,
])
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse(text)
