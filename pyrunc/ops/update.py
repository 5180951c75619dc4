"""`update`: change a live container's resources, as runc does.

Resources come from runc's flags (`--memory 512m`, `--cpu-quota -1`, ...) or from `-r FILE|-`
(a LinuxResources JSON: docker sends it on stdin with 0 for "unset", podman a file path). The new
values are merged into the container's current resources, written to its cgroups, and saved in the
state's config so later verbs (and the next update) see them.
"""

from __future__ import annotations

import re

from pyrunc._typing import MYPY, TextIO
from pyrunc.errors import CgroupError, InvalidState, SpecError
from pyrunc.linux.cgroups.manager import CgroupWriteError
from pyrunc.sys import oslite as os

if MYPY:
    from collections.abc import Callable, Mapping

    from pyrunc.linux.cgroups.manager import Manager
    from pyrunc.spec.types import JSONObject, Resources

_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?\Z", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}

_RDT_FLAGS = ("l3-cache-schema", "mem-bw-schema")


def ram_in_bytes(text: str) -> int:
    """docker's units.RAMInBytes: '512m', '1.5g', '1024', binary multiples; '-1' is unlimited."""
    if text.strip() == "-1":
        return -1
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"invalid size: {text!r}")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


# flag -> (section, key, parser); runc's update flags
_FLAGS: dict[str, tuple[str, str, Callable[[str], int | str]]] = {
    "memory": ("memory", "limit", ram_in_bytes),
    "memory-swap": ("memory", "swap", ram_in_bytes),
    "memory-reservation": ("memory", "reservation", ram_in_bytes),
    "kernel-memory": ("memory", "kernel", ram_in_bytes),
    "kernel-memory-tcp": ("memory", "kernelTCP", ram_in_bytes),
    "cpu-shares": ("cpu", "shares", int),
    "cpu-share": ("cpu", "shares", int),
    "cpu-quota": ("cpu", "quota", int),
    "cpu-period": ("cpu", "period", int),
    "cpu-rt-period": ("cpu", "realtimePeriod", int),
    "cpu-rt-runtime": ("cpu", "realtimeRuntime", int),
    "pids-limit": ("pids", "limit", int),
    "blkio-weight": ("blockIO", "weight", int),
    "cpu-idle": ("cpu", "idle", int),
    "cpuset-cpus": ("cpu", "cpus", str),
    "cpuset-mems": ("cpu", "mems", str),
}


def resources_from_flags(flags: dict[str, str]) -> JSONObject:
    """runc update's flags (names without `--`) -> a LinuxResources dict."""
    res: dict[str, JSONObject] = {}
    for flag, value in flags.items():
        flag = flag.lstrip("-")
        try:
            if flag in _FLAGS:
                section, key, parse = _FLAGS[flag]
                res.setdefault(section, {})[key] = parse(value)
            elif flag in _RDT_FLAGS:
                raise SpecError(f"--{flag}: Intel RDT is not "
                                + ("supported by pyrunc" if os.path.isdir("/sys/fs/resctrl/info")
                                   else "enabled on this host"))
            else:
                raise SpecError(f"unknown update flag --{flag}")
        except ValueError as exc:
            raise SpecError(f"--{flag}: invalid value {value!r}: {exc}") from exc
    out: JSONObject = dict(res)
    return out


def _drop_zeros(doc: JSONObject) -> JSONObject:
    """docker's update JSON uses 0 (and empty lists) for 'leave unchanged'."""
    kept = {k: _drop_zeros(v) if isinstance(v, dict) else v for k, v in doc.items()}
    return {k: v for k, v in kept.items() if v not in (0, None, [], {}) or v is False}


def load_resources(arg: str, stdin: TextIO) -> JSONObject:
    """`-r FILE` or `-r -` (stdin): a LinuxResources JSON."""
    import json

    try:
        if arg == "-":
            doc = json.loads(stdin.read())
        else:
            with open(arg) as f:
                doc = json.load(f)
    except OSError as exc:
        raise SpecError(f"reading resources from {arg}: {exc.strerror}") from exc
    except ValueError as exc:
        raise SpecError(f"decoding resources from {'stdin' if arg == '-' else arg}: {exc}") from exc
    if not isinstance(doc, dict):
        raise SpecError("resources: expected a JSON object")
    return _drop_zeros(doc)


def merge(current: Mapping[str, object], new: Mapping[str, object]) -> Resources:
    """The current resources with every value `new` sets replaced (sections merged key by key).

    `new` comes unchecked from flags or the user's JSON: this is update's JSON boundary, as
    spec.load is config.json's. Manager.set's plan checks every value as it renders it.
    """
    out = dict(current)
    for key, value in new.items():
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and key != "rdma":
            out[key] = {**old, **value}
        else:
            out[key] = value
    return out  # type: ignore[return-value]  # the boundary (see above): no cast at run time


def _without_devices(resources: Resources) -> Resources:
    out = resources.copy()
    out.pop("devices", None)
    return out


def _set_back(manager: Manager, resources: Resources) -> None:
    """After a refused value, put back what was there (runc does), so the cgroups and the saved
    state agree; if even that fails, say so, with runc's words."""
    from pyrunc import log

    try:
        manager.set(_without_devices(resources))
    except CgroupError as exc:
        log.warning(f"Setting back cgroup configs failed due to error: {exc}, your state.json "
                    "and actual configs might be inconsistent.")


def update(root: str, cid: str, resources: Mapping[str, object]) -> None:
    from pyrunc.container import Container

    c = Container.load(root, cid)
    with c.locked():
        if c.status() == "stopped":
            raise InvalidState("container not running")
        config = c.config  # a new {} when the state has none: keep it, as setdefault would
        c.data["config"] = config
        linux = config.setdefault("linux", {})
        current: Resources = linux.get("resources") or {}
        merged = merge(current, {k: v for k, v in resources.items() if k != "devices"})
        manager: Manager = c.cgroup()
        try:
            manager.set(_without_devices(merged))
        except CgroupError as exc:
            _set_back(manager, current)
            if isinstance(exc, CgroupWriteError):  # what dockerd shows: runc's words
                raise CgroupError(exc.runc_wording()) from exc
            raise
        # Persist where later verbs look: the config in state.json and the cgroup state.
        linux["resources"] = merged
        saved = manager.to_state()
        saved["resources"] = merged
        c.data["cgroup"] = saved
        c.save()
