"""The protocol buffers wire format, for the few message types of containerd's task API.

Why not the `protobuf` package: importing it and the generated modules costs ~20 ms and ~15 MB in
a process whose resident size must stay near containerd's Go shim. The task API needs only proto3
scalars, strings, bytes, nested messages, repeated fields and one string map, so a message is
declared as a small table (pyrunc.shim.messages) and decoded into a plain dict keyed by field name;
fields left at their default are absent, as proto3 puts them on the wire. Unknown fields are skipped.
tests/unit/shim/test_wire.py checks every table both ways against classes protoc generates at test
time from the .proto files Debian ships with containerd.

A table is a tuple of fields `(number, name, kind, sub)`. Kinds:

    "s" string    "b" bytes    "u" uint32/uint64/enum    "i" int32/int64    "?" bool
    "m" message (sub: its table)    "M" map<string, string>
    "*s" "*b" "*m" repeated; "*u" repeated varints (written packed, read packed or not)
"""

from __future__ import annotations

from pyrunc._typing import MYPY

if MYPY:
    from collections.abc import Mapping

    Field = tuple[int, str, str, "Table | None"]
    Table = tuple[Field, ...]
    # A decoded message: str, bytes, int, bool, Msg, lists of those, or dict[str, str] (a map).
    # Read it through text(), num(), sub(), ... below, which narrow the values.
    Msg = dict[str, object]

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_MASK64 = (1 << 64) - 1


class DecodeError(ValueError):
    """The bytes are not a message of the expected type."""


def put_varint(out: bytearray, n: int) -> None:
    n &= _MASK64  # negative int64/int32 are ten bytes of two's complement
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def get_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise DecodeError("truncated varint")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, pos
        shift += 7


def _signed(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


def _put_len(out: bytearray, num: int, data: bytes) -> None:
    put_varint(out, num << 3 | _LEN)
    put_varint(out, len(data))
    out += data


def _put_one(out: bytearray, num: int, kind: str, sub: Table | None, v: object) -> None:
    if kind == "s" and isinstance(v, str):
        _put_len(out, num, v.encode())
    elif kind == "b" and isinstance(v, bytes | bytearray):
        _put_len(out, num, bytes(v))
    elif kind in ("u", "i", "?") and isinstance(v, int):
        put_varint(out, num << 3 | _VARINT)
        put_varint(out, v)
    elif kind == "m" and isinstance(v, dict):
        _put_len(out, num, encode(sub or (), v))
    else:
        raise ValueError(f"field {num}: {type(v).__name__} is not of kind {kind!r}")


def encode(table: Table, msg: Mapping[str, object]) -> bytes:
    out = bytearray()
    for num, name, kind, sub in table:
        v = msg.get(name)
        if v is None or (not v and kind != "m"):
            continue  # proto3: a default value is not written (an empty message is)
        if kind == "M" and isinstance(v, dict):
            for k, val in v.items():
                entry = bytearray()
                _put_len(entry, 1, str(k).encode())
                _put_len(entry, 2, str(val).encode())
                _put_len(out, num, bytes(entry))
        elif kind == "*u" and isinstance(v, list):
            packed = bytearray()
            for n in v:
                put_varint(packed, int(n))
            _put_len(out, num, bytes(packed))
        elif kind[0] == "*" and isinstance(v, list):
            for item in v:
                _put_one(out, num, kind[1], sub, item)
        else:
            _put_one(out, num, kind, sub, v)
    return bytes(out)


def _skip(buf: bytes, pos: int, wire: int) -> int:
    if wire == _VARINT:
        return get_varint(buf, pos)[1]
    if wire == _I64:
        return pos + 8
    if wire == _LEN:
        n, pos = get_varint(buf, pos)
        return pos + n
    if wire == _I32:
        return pos + 4
    raise DecodeError(f"unsupported wire type {wire}")


def _map_entry(data: bytes) -> tuple[str, str]:
    entry = decode((_KEY, _VALUE), data)
    return str(entry.get("key", "")), str(entry.get("value", ""))


_KEY: Field = (1, "key", "s", None)
_VALUE: Field = (2, "value", "s", None)


def _scalar(kind: str, raw: int | bytes, sub: Table | None) -> object:
    if isinstance(raw, bytes):
        if kind == "s":
            return raw.decode()
        if kind == "m":
            return decode(sub or (), raw)
        if kind == "b":
            return raw
        raise DecodeError(f"a length-delimited value for a field of kind {kind!r}")
    if kind == "?":
        return bool(raw)
    if kind == "i":
        return _signed(raw)
    if kind == "u":
        return raw
    raise DecodeError(f"a varint for a field of kind {kind!r}")


def decode(table: Table, buf: bytes) -> Msg:
    by_num = {f[0]: f for f in table}
    msg: Msg = {}
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = get_varint(buf, pos)
        num, wire = key >> 3, key & 7
        field = by_num.get(num)
        if field is None:
            pos = _skip(buf, pos, wire)
            continue
        _, name, kind, sub = field
        raw: int | bytes
        if wire == _VARINT:
            raw, pos = get_varint(buf, pos)
        elif wire == _LEN:
            n, pos = get_varint(buf, pos)
            if pos + n > end:
                raise DecodeError(f"field {name}: truncated")
            raw, pos = buf[pos:pos + n], pos + n
        else:
            pos = _skip(buf, pos, wire)
            continue
        if kind == "M" and isinstance(raw, bytes):
            k, v = _map_entry(raw)
            entries = msg.setdefault(name, {})
            if isinstance(entries, dict):
                entries[k] = v
        elif kind[0] == "*":
            items = msg.setdefault(name, [])
            if not isinstance(items, list):
                continue
            if kind == "*u" and isinstance(raw, bytes):  # packed
                p = 0
                while p < len(raw):
                    n, p = get_varint(raw, p)
                    items.append(n)
            else:
                items.append(_scalar(kind[1], raw, sub))
        else:
            msg[name] = _scalar(kind, raw, sub)
    return msg


# --- typed reads of a decoded message (absent fields read as proto3 defaults) ----------------------
def text(msg: Msg, name: str) -> str:
    v = msg.get(name)
    return v if isinstance(v, str) else ""


def num(msg: Msg, name: str) -> int:
    v = msg.get(name)
    return int(v) if isinstance(v, int) else 0


def flag(msg: Msg, name: str) -> bool:
    return bool(msg.get(name))


def raw(msg: Msg, name: str) -> bytes:
    v = msg.get(name)
    return v if isinstance(v, bytes) else b""


def sub(msg: Msg, name: str) -> Msg:
    v = msg.get(name)
    return v if isinstance(v, dict) else {}


def subs(msg: Msg, name: str) -> list[Msg]:
    v = msg.get(name)
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def texts(msg: Msg, name: str) -> list[str]:
    v = msg.get(name)
    return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []
