"""When pyrunc acts rootless and where its state goes: runc's rules (rootless_linux.go), for a
user other than root and for root of a user namespace, as rootless podman runs the runtime; and
the bind mount on / that asks for an idmapped rootfs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pyrunc.linux import rootless


def test_initial_map_is_one_identity_line() -> None:
    assert rootless.is_initial_map("         0          0 4294967295\n")
    assert not rootless.is_initial_map("         0       1001          1\n")
    # podman's pause process: the user's id, then its subordinate range
    assert not rootless.is_initial_map("0 1001 1\n1 100000 65536\n")
    assert not rootless.is_initial_map("0 0 4294967295\n1 1 1\n")
    assert not rootless.is_initial_map("")


@pytest.fixture
def as_root_in(monkeypatch: pytest.MonkeyPatch) -> Callable[[int, bool, str | None], None]:
    """Pretend to be uid `euid`, in a user namespace or not."""
    def setup(euid: int, userns: bool, user: str | None = None) -> None:
        monkeypatch.setattr(rootless.os, "geteuid", lambda: euid)
        monkeypatch.setattr(rootless, "_cached", [userns])
        monkeypatch.setattr(rootless.os, "getenv", lambda key, default=None:
                            user if key == "USER" else default)
    return setup


@pytest.mark.parametrize(("euid", "userns", "user", "rootless_auto", "xdg"), [
    (1001, False, "alice", True, True),   # a user other than root
    (0, False, "root", False, False),     # the real root
    (0, True, "alice", True, True),       # rootless podman's conmon and runtime
    (0, True, None, True, True),          # no USER: runc honours XDG_RUNTIME_DIR
    (0, True, "root", True, False),       # a root shell in a container keeps /run/pyrunc
])
def test_rootless_auto_and_state_dir(as_root_in: Callable[[int, bool, str | None], None], euid: int, userns: bool,
                                     user: str | None, rootless_auto: bool, xdg: bool) -> None:
    as_root_in(euid, userns, user)
    assert rootless.use_rootless("auto") is rootless_auto
    assert rootless.honor_xdg_runtime_dir() is xdg
    assert rootless.use_rootless("true") and not rootless.use_rootless("false")


def test_a_bind_mount_on_root_is_the_rootfs_mount() -> None:
    """A bind on / (crun's way of asking for an idmapped rootfs) is attached before the others."""
    from pyrunc.linux import rootfs
    from pyrunc.sys import linux as L

    assert rootfs.is_root_bind(rootfs.MountOp("/img", "/", "bind", L.MS_BIND | L.MS_REC))
    assert rootfs.is_root_bind(rootfs.MountOp("/img", "//", "bind", L.MS_BIND))
    assert not rootfs.is_root_bind(rootfs.MountOp("/img", "/mnt", "bind", L.MS_BIND))
    assert not rootfs.is_root_bind(rootfs.MountOp("tmpfs", "/", "tmpfs"))
