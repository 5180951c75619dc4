"""rootfs.parse_options and rootfs.plan: mount options split into kernel flags, without root."""

from __future__ import annotations

import pytest

from pyrunc.errors import SpecError
from pyrunc.linux import rootfs

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_NOATIME, MS_BIND, MS_REC = 0x20, 0x400, 0x1000, 0x4000
MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_UNBINDABLE = 1 << 18, 1 << 19, 1 << 20, 1 << 17
MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24
ATTR_RDONLY, ATTR_NOSUID, ATTR_NOEXEC, ATTR_NOATIME, ATTR__ATIME = 0x1, 0x2, 0x8, 0x10, 0x70


def test_flags():
    op = rootfs.parse_options(["nosuid", "noexec", "nodev", "ro", "strictatime"])
    assert op.flags == MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY | MS_STRICTATIME
    assert op.clear == 0 and op.data == "" and op.propagation == []


def test_later_option_wins():
    op = rootfs.parse_options(["ro", "rw", "noexec", "exec", "suid", "nosuid"])
    assert op.flags == MS_NOSUID
    assert op.clear == MS_RDONLY | MS_NOEXEC


def test_data_options_kept_in_order():
    op = rootfs.parse_options(["nosuid", "mode=755", "size=65536k", "newinstance", "gid=5"])
    assert op.flags == MS_NOSUID
    assert op.data == "mode=755,size=65536k,newinstance,gid=5"


@pytest.mark.parametrize("opt,prop", [
    ("private", MS_PRIVATE), ("rprivate", MS_PRIVATE | MS_REC), ("slave", MS_SLAVE),
    ("rslave", MS_SLAVE | MS_REC), ("shared", MS_SHARED), ("rshared", MS_SHARED | MS_REC),
    ("unbindable", MS_UNBINDABLE), ("runbindable", MS_UNBINDABLE | MS_REC),
])
def test_propagation_separate(opt, prop):
    op = rootfs.parse_options(["rbind", opt])
    assert op.flags == MS_BIND | MS_REC
    assert op.propagation == [prop]


def test_recursive_attrs():
    op = rootfs.parse_options(["rbind", "rro", "rnosuid", "rnoexec"])
    assert op.attr_set == ATTR_RDONLY | ATTR_NOSUID | ATTR_NOEXEC
    assert op.attr_clr == 0
    assert op.flags == MS_BIND | MS_REC
    op = rootfs.parse_options(["rbind", "rrw", "rnoatime"])
    assert op.attr_clr & ATTR_RDONLY
    assert op.attr_set == ATTR_NOATIME and op.attr_clr & ATTR__ATIME == ATTR__ATIME


def test_extensions_not_passed_to_kernel():
    op = rootfs.parse_options(["tmpcopyup", "mode=755"])
    assert op.extensions == {"tmpcopyup"} and op.data == "mode=755"


@pytest.mark.parametrize("bad", ["no such", "a,b", "x/y", ""])
def test_unknown_option(bad):
    with pytest.raises(SpecError, match=r"mounts\[3\].options: unknown mount option"):
        rootfs.parse_options([bad], "mounts[3].options")


def plan(mounts, bundle="/bundle"):
    return rootfs.plan({"mounts": mounts}, bundle)


def test_plan_bind_relative_source():
    [op] = plan([{"destination": "/data/", "type": "bind", "source": "data", "options": ["rbind", "ro"]}])
    assert op.source == "/bundle/data"
    assert op.destination == "/data"
    assert op.is_bind and op.flags == MS_BIND | MS_REC | MS_RDONLY


def test_plan_bind_without_type_and_type_bind_without_option():
    a, b = plan([{"destination": "/a", "source": "/host/a", "options": ["bind"]},
                 {"destination": "/b", "type": "bind", "source": "./b"}])
    assert (a.fstype, a.source, a.flags) == ("bind", "/host/a", MS_BIND)
    assert (b.fstype, b.source, b.flags) == ("bind", "/bundle/b", MS_BIND)


def test_plan_filesystems():
    proc, tmp = plan([{"destination": "/proc", "type": "proc", "source": "proc"},
                      {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}])
    assert (proc.fstype, proc.source, proc.flags, proc.data) == ("proc", "proc", 0, "")
    assert tmp.flags == MS_NOSUID | MS_STRICTATIME and tmp.data == "mode=755,size=65536k"
    # a non-bind source is never resolved against the bundle
    [op] = plan([{"destination": "/x", "type": "tmpfs", "source": "rel"}])
    assert op.source == "rel"


def test_plan_source_defaults_to_type():
    [op] = plan([{"destination": "/dev/mqueue", "type": "mqueue"}])
    assert op.source == "mqueue"


def test_plan_needs_type_unless_bind():
    with pytest.raises(SpecError, match=r"mounts\[0\].type"):
        plan([{"destination": "/x", "source": "/y"}])


def test_plan_names_bad_option():
    with pytest.raises(SpecError, match=r"mounts\[1\].options"):
        plan([{"destination": "/a", "type": "tmpfs"},
              {"destination": "/b", "type": "tmpfs", "options": ["bad opt"]}])


def test_dev_setup_unless_dev_is_bound():
    assert rootfs.needs_dev_setup(plan([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}]))
    assert not rootfs.needs_dev_setup(plan([{"destination": "/dev", "source": "/dev",
                                             "options": ["rbind"]}]))
