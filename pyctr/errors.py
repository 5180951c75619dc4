"""The error hierarchy of pyctr.

Library code raises these with context; only `pyctr.cli` prints them and picks exit codes.
"""

from __future__ import annotations


class PyctrError(Exception):
    """Base of every error pyctr reports to its user."""


class InvalidReference(PyctrError):
    """An image reference that does not parse (`Name[:tag][@digest]`)."""


class RegistryError(PyctrError):
    """The registry answered with an error, or could not be reached."""


class AuthError(RegistryError):
    """The registry refused our credentials or token."""


class NotFound(PyctrError):
    """An image, blob, manifest or container that does not exist."""


class DigestMismatch(PyctrError):
    """Content whose digest or size differs from its descriptor."""


class UnsupportedMedia(PyctrError):
    """A manifest or layer type pyctr refuses (schema1, unknown compression)."""


class LayerError(PyctrError):
    """A layer tarball that tries to escape its directory or cannot be unpacked."""


class ContainerError(PyctrError):
    """A container operation that is invalid in the container's state, or failed in the runtime."""
