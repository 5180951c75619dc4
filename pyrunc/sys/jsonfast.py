"""JSON for the hot path without the json package, which pulls re and enum (~5 ms a call).

The parsing and string escaping are CPython's own C accelerators (`_json`), the same code
`json.loads`/`json.dumps` run; only the small Python wrappers are ours. Errors are raised as
`json.JSONDecodeError` (the json package is imported on that path only).
"""

import _json

from pyrunc import MYPY

if MYPY:
    from typing import Any  # loads' result: the parser's, unchecked (the JSON boundary)

_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]
_WS = " \t\n\r"


def _error(msg: str, doc: str, pos: int) -> Exception:
    from json import JSONDecodeError

    return JSONDecodeError(msg, doc, pos)


def loads(data: str | bytes) -> "Any":
    s = data.decode() if isinstance(data, bytes) else data
    idx = len(s) - len(s.lstrip(_WS))
    try:
        obj, end = _scan(s, idx)
    except StopIteration as err:
        raise _error("Expecting value", s, err.value) from None
    except SystemError:
        # The C scanner raises json.decoder.JSONDecodeError only once json.decoder is loaded:
        # let the json package parse it again and raise the precise error.
        import json

        return json.loads(s)
    except RecursionError:
        raise _error("nested too deeply", s, idx) from None
    rest = s[end:]
    if rest.strip(_WS):
        raise _error("Extra data", s, end + len(rest) - len(rest.lstrip(_WS)))
    return obj


def _default(o: object) -> object:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


_encode = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None, ":", ",",
                             False, False, True)
_encode_spaced = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None, ": ",
                                    ", ", False, False, True)


def dumps(obj: object, indent: int | None = None, compact: bool = True) -> str:
    """compact=True: no spaces (state files, messages); compact=False: json.dumps's default."""
    if indent is not None:
        return _pretty(obj, indent, 0)
    return "".join((_encode if compact else _encode_spaced)(obj, 0))


def _pretty(obj: object, indent: int, level: int) -> str:
    pad, inner = " " * (indent * level), " " * (indent * (level + 1))
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{_json.encode_basestring_ascii(str(k))}: {_pretty(v, indent, level + 1)}"
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj:
        return "[\n" + ",\n".join(inner + _pretty(v, indent, level + 1) for v in obj) + "\n" + pad + "]"
    return "".join(_encode(obj, 0))
