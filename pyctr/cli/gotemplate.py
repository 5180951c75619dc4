"""`--format`: the subset of Go's text/template that docker's users write for inspect.

    {{.State.Status}}  {{ .Config.Image }}  {{json .}}  {{json .State}}  literal text

Fields are looked up by key in the inspect document; a missing one prints `<no value>`, as Go
does for a map. Values print as Go prints them: booleans `true`/`false`, maps and lists through
`json`. Anything else (range, if, pipelines, functions other than json) is refused by name
rather than printed wrong.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pyctr.errors import PyctrError

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)
_FIELD = re.compile(r"^\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?$")


class TemplateError(PyctrError):
    """A --format template outside the supported subset."""


def render(template: str, doc: Any) -> str:
    out = []
    pos = 0
    for m in _ACTION.finditer(template):
        out.append(template[pos:m.start()])
        out.append(_action(m.group(1), doc))
        pos = m.end()
    out.append(template[pos:])
    return "".join(out)


def _action(text: str, doc: Any) -> str:
    words = text.split()
    if len(words) == 2 and words[0] == "json" and _FIELD.match(words[1]):
        return json.dumps(_lookup(words[1], doc))
    if len(words) == 1 and _FIELD.match(words[0]):
        return _show(_lookup(words[0], doc))
    raise TemplateError(f"template: unsupported action {{{{{text}}}}} "
                        "(supported: {{.Field.Path}}, {{json .Field}})")


def _lookup(path: str, doc: Any) -> Any:
    value = doc
    for key in [k for k in path.split(".") if k]:
        if not isinstance(value, dict):
            raise TemplateError(f"template: can't evaluate field {key} in {path}")
        value = value.get(key, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<no value>"})()


def _show(value: Any) -> str:
    if value is _MISSING or value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
