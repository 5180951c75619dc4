"""spec/*.json against the runtime-spec's own good and bad examples (schema/test/<kind>/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyrunc.ops.validate import load_schema, schema_dir, schema_errors

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO.parent / "shared" / "reference" / "runtime-spec" / "schema" / "test"
KINDS = ("config", "state", "features")


def _examples(verdict: str) -> list[tuple[str, Path]]:
    if not EXAMPLES.is_dir():
        return []
    return [(kind, path) for kind in KINDS
            for path in sorted((EXAMPLES / kind / verdict).glob("*.json"))]


def _ids(cases: list[tuple[str, Path]]) -> list[str]:
    return [f"{kind}/{path.name}" for kind, path in cases]


needs_reference = pytest.mark.skipif(
    not EXAMPLES.is_dir(), reason=f"runtime-spec examples not found at {EXAMPLES}")

GOOD, BAD = _examples("good"), _examples("bad")


def test_schemas_are_valid_draft_2020_12() -> None:
    import jsonschema

    for kind in KINDS:
        jsonschema.Draft202012Validator.check_schema(load_schema(kind))


def test_schema_dir_holds_the_checkout_schemas() -> None:
    for kind in KINDS:
        name = f"{kind}-schema.json"
        assert (schema_dir() / name).read_bytes() == (REPO / "spec" / name).read_bytes()


@needs_reference
def test_reference_examples_found() -> None:
    assert len(GOOD) >= 10 and len(BAD) >= 5


@needs_reference
@pytest.mark.parametrize(("kind", "path"), GOOD, ids=_ids(GOOD))
def test_good_example_validates(kind: str, path: Path) -> None:
    assert schema_errors(json.loads(path.read_text()), kind) == []


@needs_reference
@pytest.mark.parametrize(("kind", "path"), BAD, ids=_ids(BAD))
def test_bad_example_fails(kind: str, path: Path) -> None:
    try:
        instance = json.loads(path.read_text())
    except json.JSONDecodeError:
        return  # invalid-json.json: rejected before any schema applies
    assert schema_errors(instance, kind) != []


@pytest.mark.parametrize(("doc", "where"), [
    ({"root": {"path": "r"}}, "config.json: 'ociVersion' is a required property"),
    ({"ociVersion": "1.3"}, "ociVersion: '1.3' does not match"),
    ({"ociVersion": "1.3.0", "linux": {"namespaces": [{"type": "net"}]}},
     "linux.namespaces[0].type: 'net' is not one of"),
    ({"ociVersion": "1.3.0", "linux": {"devices": [{"type": "c", "path": "/dev/x"}]}},
     "linux.devices[0]: 'major' is a required property"),
    ({"ociVersion": "1.3.0", "linux": {"resources": {"rdma": {"mlx": {}}}}},
     'linux.resources.rdma.mlx: at least one of hcaHandles, hcaObjects is required'),
    ({"ociVersion": "1.3.0", "linux": {"resources": {"memory": {"limit": 2 ** 63}}}},
     "linux.resources.memory.limit: 9223372036854775808 is greater than the maximum"),
    ({"ociVersion": "1.3.0", "linux": {"intelRdt": {"memBwSchema": "L3:0=7"}}},
     "linux.intelRdt.memBwSchema: 'L3:0=7' does not match"),
    ({"ociVersion": "1.3.0", "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                                                   "listenerMetadata": "m"}}},
     "linux.seccomp: 'listenerPath' is a dependency of 'listenerMetadata'"),
    ({"ociVersion": "1.3.0", "mounts": [{"destination": "/a", "uidMappings": []}]},
     "mounts[0]: 'gidMappings' is a dependency of 'uidMappings'"),
    ({"ociVersion": "1.3.0", "process": {"cwd": "/", "scheduler": {"policy": "SCHED_FOO"}}},
     "process.scheduler.policy: 'SCHED_FOO' is not one of"),
    ({"ociVersion": "1.3.0", "linux": {"sysctl": {"net.ipv4.ip_forward": 1}}},
     'linux.sysctl["net.ipv4.ip_forward"]: 1 is not of type \'string\''),
])
def test_config_schema_names_the_field(doc: dict[str, object], where: str) -> None:
    errors = schema_errors(doc, "config")
    assert any(e.startswith(where) for e in errors), errors


def test_state_needs_pid_when_running() -> None:
    state = {"ociVersion": "1.3.0", "id": "c1", "status": "running", "bundle": "/b"}
    assert schema_errors(state, "state", root="state") == ["state: 'pid' is a required property"]
    assert schema_errors({**state, "status": "stopped"}, "state") == []
    assert schema_errors({**state, "pid": 1, "bundle": "rel"}, "state") != []


def test_features_values_may_be_null() -> None:
    doc = {"ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0", "hooks": None,
           "linux": {"seccomp": None, "cgroup": {"v1": None}}}
    assert schema_errors(doc, "features") == []
    assert schema_errors({**doc, "linux": {"namespaces": ["bogus"]}}, "features") != []
