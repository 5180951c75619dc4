"""caps.plan: names to masks, validation, the host's bounding set. No privileges needed."""

from __future__ import annotations

import pytest

from pyrunc.errors import CapabilityError
from pyrunc.linux import caps

ALL = (1 << 41) - 1
NO_SYS_RESOURCE = ALL & ~(1 << caps.CAPABILITIES["CAP_SYS_RESOURCE"])


def test_table_matches_the_kernel_numbers() -> None:
    assert caps.CAPABILITIES["CAP_CHOWN"] == 0
    assert caps.CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert caps.CAPABILITIES["CAP_AUDIT_READ"] == 37
    assert caps.CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert sorted(caps.CAPABILITIES.values()) == list(range(41))


def test_table_covers_the_running_kernel() -> None:
    assert caps.last_cap() <= max(caps.CAPABILITIES.values())


def test_runc_default_sets() -> None:
    three = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    p = caps.plan({"bounding": three, "effective": three, "permitted": three,
                   "inheritable": three, "ambient": three}, available=ALL)
    want = 1 << 29 | 1 << 5 | 1 << 10
    assert (p.bounding, p.effective, p.permitted, p.inheritable, p.ambient) == (want,) * 5
    assert p.touch and p.warnings == ()


def test_missing_sets_are_empty() -> None:
    p = caps.plan({"bounding": ["CAP_KILL"]}, available=ALL)
    assert (p.bounding, p.effective, p.permitted, p.inheritable, p.ambient) == (32, 0, 0, 0, 0)


def test_no_capabilities_leaves_them_alone() -> None:
    assert caps.plan(None).touch is False


def test_unknown_capability_is_refused() -> None:
    with pytest.raises(CapabilityError, match=r'unknown capability "CAP_TEST"'):
        caps.plan({"bounding": ["CAP_KILL", "CAP_TEST"]}, available=ALL)


@pytest.mark.parametrize("bad", [["chown"], ["CAP_chown"], [5], "CAP_KILL"])
def test_malformed_names(bad: object) -> None:
    with pytest.raises(CapabilityError, match="process.capabilities.effective"):
        caps.plan({"effective": bad}, available=ALL)


def test_unavailable_capability_is_dropped_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    p = caps.plan({"bounding": ["CAP_SYS_RESOURCE", "CAP_KILL"],
                   "permitted": ["CAP_SYS_RESOURCE"]}, available=NO_SYS_RESOURCE)
    assert p.bounding == 1 << 5 and p.permitted == 0
    assert any("CAP_SYS_RESOURCE" in w for w in p.warnings)
    assert "CAP_SYS_RESOURCE" in capsys.readouterr().err


def test_ambient_needs_permitted_and_inheritable() -> None:
    p = caps.plan({"bounding": ["CAP_KILL", "CAP_CHOWN"], "permitted": ["CAP_KILL", "CAP_CHOWN"],
                   "inheritable": ["CAP_CHOWN"], "ambient": ["CAP_KILL", "CAP_CHOWN"]},
                  available=ALL)
    assert p.ambient == 1 << 0
    assert any("CAP_KILL" in w for w in p.warnings)


def test_effective_outside_permitted_is_refused() -> None:
    with pytest.raises(CapabilityError, match="effective: CAP_KILL not in the permitted set"):
        caps.plan({"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]}, available=ALL)


def test_inheritable_outside_bounding_is_refused() -> None:
    with pytest.raises(CapabilityError, match="inheritable: CAP_CHOWN not in the bounding set"):
        caps.plan({"inheritable": ["CAP_CHOWN"]}, available=ALL)


def test_host_bounding_reads_our_own_status() -> None:
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("CapBnd:"))
    assert caps.host_bounding() == int(line.split()[1], 16)


def test_names_round_trip() -> None:
    assert caps.names(1 << 21 | 1 << 40) == ["CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"]
