from __future__ import annotations

import json

from pyrunc.ops import features as feat
from pyrunc.ops.validate import schema_errors


def test_features_validate_against_schema() -> None:
    assert schema_errors(feat.features(), "features") == []


def test_features_is_json_and_bounds_versions() -> None:
    out = json.loads(json.dumps(feat.features()))
    assert (out["ociVersionMin"], out["ociVersionMax"]) == ("1.0.0", "1.3.0")
    assert out["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer",
                            "poststart", "poststop"]


def test_linux_lists() -> None:
    linux = feat.features()["linux"]
    assert sorted(linux["namespaces"]) == sorted(
        ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"])
    assert len(linux["capabilities"]) == 41
    assert linux["capabilities"][21] == "CAP_SYS_ADMIN"
    assert linux["capabilities"][40] == "CAP_CHECKPOINT_RESTORE"
    assert linux["cgroup"]["systemd"] is False and linux["cgroup"]["systemdUser"] is False
    assert linux["mountExtensions"] == {"idmap": {"enabled": True}}  # mount_setattr: Linux >= 5.12
    assert "SCMP_ACT_NOTIFY" in linux["seccomp"]["actions"]
    assert "SCMP_CMP_MASKED_EQ" in linux["seccomp"]["operators"]
    assert "SCMP_ARCH_X86_64" in linux["seccomp"]["archs"]
    assert set(linux["seccomp"]["supportedFlags"]) <= set(linux["seccomp"]["knownFlags"])


def test_mount_options_cover_the_spec_table() -> None:
    options = set(feat.features()["mountOptions"])
    for name in ("bind", "rbind", "rprivate", "rshared", "rslave", "runbindable", "ro", "rro",
                 "nosymfollow", "rnosymfollow", "strictatime"):
        assert name in options
    assert {"idmap", "ridmap", "tmpcopyup"} <= options  # the runc extensions, all implemented
    assert len(options) == len(feat.MOUNT_OPTIONS)


def test_every_claimed_mount_option_is_understood_by_the_mount_plan() -> None:
    from pyrunc.linux import rootfs

    for name in feat.features()["mountOptions"]:
        op = rootfs.parse_options([name])
        assert not op.data, f"{name} would be passed to the kernel as data"


def test_supported_seccomp_flags_follow_the_kernel() -> None:
    assert feat.supported_seccomp_flags("4.14.0") == ["SECCOMP_FILTER_FLAG_TSYNC",
                                                      "SECCOMP_FILTER_FLAG_LOG"]
    assert len(feat.supported_seccomp_flags("6.1.0-18-amd64")) == 4
    assert feat.supported_seccomp_flags("3.10.0") == []
    assert feat.kernel_release("5.19-rc1") == (5, 19)


def test_lists_written_out_name_what_the_mechanisms_implement() -> None:
    from pyrunc.linux import procattrs, seccomp

    assert set(feat.SECCOMP_FLAGS) == set(seccomp.FLAGS)
    assert sorted(feat.MEMORY_POLICY_MODES) == sorted(procattrs.MPOL_MODES)
