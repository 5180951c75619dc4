"""The container's session keyring: a new one per container, named "_ses.<id>", as runc makes it.

Without it every container keeps the session keyring of whoever ran the runtime (containerd,
dockerd, a login shell): a key one container adds there is found by the others and by the host
caller. So the init joins a new keyring of that name (KEYCTL_JOIN_SESSION_KEYRING) once its
namespaces exist, so that it is made in the container's user namespace (keyring names are looked
up per user namespace), and before any seccomp filter, which may refuse keyctl. A joined keyring
is searched for by name only where the caller may search it: the init then grants search to its
owner's uid (KEY_USR_SEARCH), or with a user namespace to others (KEY_OTH_SEARCH: an exec'd
process joins before its setuid, still the host's root, not the keyring's owner) — runc's bits —
so that the processes `exec` starts find it by name and join it too, before their uid changes.
`--no-new-keyring` keeps the caller's keyring, for the init and for exec alike.

A kernel without keyrings (ENOSYS) is no error: the separation is best-effort (keys are guarded
by their permissions first), as in runc; any other failure fails the step.
"""

from __future__ import annotations

from pyrunc.records import dataclass
from pyrunc.sys import linux

KEY_OTH_SEARCH = 0x08
KEY_USR_SEARCH = 0x80000
_ENOSYS = 38


@dataclass
class Plan:
    name: str  # the session keyring to join, "_ses.<container id>"
    mask: int = 0xFFFFFFFF  # perm = (perm & mask) | setbits: runc keeps every bit...
    setbits: int = 0  # ...and adds search; 0 for exec's processes (the init set them)


def plan(cid: str, userns: bool, exec_process: bool = False) -> Plan:
    if exec_process:
        return Plan("_ses." + cid)
    return Plan("_ses." + cid, setbits=KEY_OTH_SEARCH if userns else KEY_USR_SEARCH)


def new_perm(description: str, mask: int, setbits: int) -> int:
    """The permissions to set, from KEYCTL_DESCRIBE's "type;uid;gid;perm;description"."""
    fields = description.split(";", 4)
    if len(fields) < 5:
        raise ValueError(f"keyctl: unexpected key description {description!r}")
    return (int(fields[3], 16) & mask) | setbits


def apply(p: Plan) -> None:
    try:
        serial = linux.keyctl_join_session_keyring(p.name)
    except OSError as exc:
        if exc.errno == _ENOSYS:
            return  # no keyrings in this kernel
        raise
    if p.setbits:
        linux.keyctl_setperm(serial, new_perm(linux.keyctl_describe(serial), p.mask, p.setbits))
