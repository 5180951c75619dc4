"""`pyrunc validate`: every problem of a bundle's config.json, one precise line each.

Two passes. The JSON Schemas in spec/ (shipped as pyrunc/schemas/) catch shape and type errors;
pyrunc.spec.rules' table catches what a schema cannot say (the same table `create` refuses by). Unknown
capabilities are warnings: the spec says a runtime logs them and goes on.

jsonschema costs ~130 ms to import, so it is imported inside the functions that need it: this
module must never be imported on the create/start/run path, and stays cheap if it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from pyrunc._typing import MYPY, Mapping
from pyrunc.errors import SpecError
from pyrunc.linux.caps import CAPABILITIES
from pyrunc.spec import rules
from pyrunc.sys import oslite as os

if MYPY:
    from jsonschema.exceptions import ValidationError

    from pyrunc.spec.types import JSONObject


# --- schemas -------------------------------------------------------------------------------------

def schema_dir() -> Path:
    """pyrunc/schemas/ in a wheel, spec/ beside the package in a source checkout."""
    here = Path(__file__).resolve().parents[1]  # pyrunc/
    for candidate in (here / "schemas", here.parent / "spec"):
        if (candidate / "config-schema.json").is_file():
            return candidate
    raise SpecError(f"JSON schemas not found in {here / 'schemas'} nor {here.parent / 'spec'}")


@cache
def load_schema(name: str) -> JSONObject:
    """`name` is "config", "state" or "features"."""
    with open(schema_dir() / f"{name}-schema.json") as f:
        schema: JSONObject = json.load(f)
    return schema


def field_path(parts: Iterable[str | int]) -> str:
    """["process", "rlimits", 0, "type"] -> "process.rlimits[0].type"."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _message(error: ValidationError) -> str:
    subschemas = error.schema.get("anyOf") if error.validator == "anyOf" else None
    if subschemas and all(list(s) == ["required"] for s in subschemas):
        names = ", ".join(n for s in subschemas for n in s["required"])
        return f"at least one of {names} is required"
    if "propertyNames" in error.schema_path:
        return f"key {error.message}"
    return str(error.message)


def schema_errors(instance: object, name: str, root: str = "config.json") -> list[str]:
    """Violations of spec/<name>-schema.json, one `path: message` line each."""
    import jsonschema  # lazy: see the module docstring

    validator = jsonschema.Draft202012Validator(load_schema(name))
    lines = [f"{field_path(e.absolute_path) or root}: {_message(e)}"
             for e in validator.iter_errors(instance)]
    return sorted(lines)


# --- warnings: what the runtime logs and goes on with -----------------------------------------

def warnings(config: object) -> list[str]:
    """Capabilities this runtime does not know: the spec says log a warning, do not fail."""
    process = config.get("process") if isinstance(config, dict) else None
    return _check_capabilities(process) if isinstance(process, dict) else []


def _check_capabilities(process: Mapping[str, object]) -> list[str]:
    errors = []
    caps = process.get("capabilities")
    for kind, names in (caps.items() if isinstance(caps, dict) else ()):
        for i, name in enumerate(names if isinstance(names, list) else ()):
            if isinstance(name, str) and name not in CAPABILITIES:
                errors.append(f"process.capabilities.{kind}[{i}]: unknown capability {name!r}")
    return errors


# --- entry points -------------------------------------------------------------------------------

def validate_config(config: object, bundle: str) -> list[str]:
    """Every problem of a parsed config.json whose bundle is `bundle`; empty when valid."""
    errors = schema_errors(config, "config")
    if isinstance(config, dict):
        errors += rules.errors(config, bundle)
    return errors


def check_bundle(bundle: str) -> tuple[list[str], list[str]]:
    """(every problem, every warning) of `<bundle>/config.json`, one line each."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        return [f"{path}: {exc.strerror}"], []
    except UnicodeDecodeError as exc:
        return [f"{path}: not UTF-8: {exc.reason} at byte {exc.start}"], []
    try:
        config: object = json.loads(text)  # checked by the schema, then by the rules
    except json.JSONDecodeError as exc:
        return [f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"], []
    return validate_config(config, bundle), warnings(config)


def validate_bundle(bundle: str) -> list[str]:
    """Every problem of `<bundle>/config.json`, one line each; empty when valid."""
    return check_bundle(bundle)[0]
