"""The one error hierarchy of pyrunc.

Library code raises these with context (`raise MountError(...) from exc`); only the CLI turns them
into a message on stderr, a JSON line in `--log` and exit status 1. Messages follow runc's wording
where clients match on it (`container not running`, `... does not exist`).

The short verbs (`start`, `state`, `kill`, `delete`) do not load this module unless something
fails: creating a class costs ~70k instructions, these 17 cost 1.3M, more than half of a `state`
above the bare interpreter. Their modules import an error where they raise or inspect it.
"""

from __future__ import annotations


class PyruncError(Exception):
    """Base of every error pyrunc reports to its caller."""


class SpecError(PyruncError):
    """config.json (or a process JSON, or a resources JSON) is malformed or asks for the impossible."""


class UsageError(PyruncError):
    """A command line the CLI's parser refuses (an unknown flag, a missing argument)."""


class InvalidIdError(PyruncError):
    """A container id outside `[A-Za-z0-9_+.-]`, empty, or `.`/`..`."""


class ContainerNotFound(PyruncError):
    def __init__(self, cid: str) -> None:
        super().__init__(f"container {cid} does not exist")
        self.cid = cid


class ContainerExists(PyruncError):
    def __init__(self, cid: str) -> None:
        super().__init__(f"container with id exists: {cid}")
        self.cid = cid


class InvalidState(PyruncError):
    """A lifecycle move the state table forbids (start a running container, delete a live one)."""


class StateError(PyruncError):
    """The state store is unreadable or unwritable (garbage state.json, full filesystem)."""


class NamespaceError(PyruncError):
    pass


class MountError(PyruncError):
    pass


class CgroupError(PyruncError):
    pass


class HookError(PyruncError):
    pass


class CapabilityError(PyruncError):
    pass


class SeccompError(PyruncError):
    pass


class LsmError(PyruncError):
    pass


class ConsoleError(PyruncError):
    pass


class InitError(PyruncError):
    """The container init failed at a named step; carried back to the parent over the sync socket."""

    def __init__(self, step: str, message: str, what: str = "container init") -> None:
        super().__init__(f"{what} failed at step {step}: {message}")
        self.step = step
        self.message = message
