from __future__ import annotations

import json
import os
import shutil
import subprocess  # noqa: TID251 (tests may spawn; the ban guards pyrunc's hot path)
from pathlib import Path

import pytest

from pyrunc.errors import SpecError
from pyrunc.ops.validate import schema_errors
from pyrunc.spec.specgen import default_spec, dumps, write_spec

RUNC = shutil.which("runc") or ("/usr/sbin/runc" if os.path.exists("/usr/sbin/runc") else None)


def _runc_spec(tmp_path: Path, *args: str) -> str:
    assert RUNC
    subprocess.run([RUNC, "spec", *args], cwd=tmp_path, check=True, capture_output=True)
    return (tmp_path / "config.json").read_text()


@pytest.mark.skipif(RUNC is None, reason="needs runc to compare with")
@pytest.mark.parametrize("rootless", [False, True])
def test_same_as_runc_spec_but_version(tmp_path: Path, rootless: bool) -> None:
    theirs = _runc_spec(tmp_path, *(["--rootless"] if rootless else []))
    ours = dumps(default_spec(rootless))
    theirs_doc = json.loads(theirs)
    assert json.loads(ours)["ociVersion"] == "1.3.0"
    theirs_doc["ociVersion"] = "1.3.0"
    assert json.loads(ours) == theirs_doc
    # Byte for byte once the version is swapped: tab indents, same key order, no final newline.
    assert ours == theirs.replace(json.dumps(json.loads(theirs)["ociVersion"]), '"1.3.0"', 1)


def test_rootless_maps_the_caller() -> None:
    linux = default_spec(rootless=True)["linux"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert {"type": "user"} in linux["namespaces"] and {"type": "network"} not in linux["namespaces"]
    assert "resources" not in linux


def test_default_specs_are_schema_valid() -> None:
    assert schema_errors(default_spec(), "config") == []
    assert schema_errors(default_spec(rootless=True), "config") == []


def test_write_spec_writes_tabs(tmp_path: Path) -> None:
    write_spec(str(tmp_path), rootless=False)
    text = (tmp_path / "config.json").read_text()
    assert text.startswith('{\n\t"ociVersion": "1.3.0",') and not text.endswith("\n")
    assert json.loads(text) == default_spec()


def test_write_spec_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("mine")
    with pytest.raises(SpecError, match="^File config.json exists. Remove it first$"):
        write_spec(str(tmp_path), rootless=True)
    assert (tmp_path / "config.json").read_text() == "mine"


def test_write_spec_missing_bundle(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="No such file or directory"):
        write_spec(str(tmp_path / "nope"), rootless=False)
