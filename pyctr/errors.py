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


class BuildError(PyctrError):
    """A Dockerfile that does not parse, or a build step that failed: names the file and line."""


class ContainerError(PyctrError):
    """A container operation that is invalid in the container's state, or failed in the runtime."""


class NetworkError(ContainerError):
    """A network that cannot be made, joined or removed: a bad subnet, a port in use, netlink or
    iptables refusing."""


class EngineError(ContainerError):
    """The engine (pyctr or the runtime) failed before the command could run: docker's 125."""

    exit_code = 125


class CannotExecute(EngineError):
    """The command exists but cannot be executed (permission denied, bad format): 126."""

    exit_code = 126


class CommandNotFound(EngineError):
    """The command does not exist in the container: 127."""

    exit_code = 127


def start_failure(message: str) -> EngineError:
    """The error for a runtime's refusal to start a process, classified as docker does (by
    the runtime's wording: runc, crun and pyrunc all report the execve's errno)."""
    text = message.lower()
    if "executable file not found" in text or "no such file or directory" in text:
        return CommandNotFound(message)
    if "permission denied" in text or "exec format error" in text:
        return CannotExecute(message)
    return EngineError(message)
