"""pyrunc.records: the dataclass stand-in behaves as dataclasses does for what pyrunc uses."""

from __future__ import annotations

import pytest

from pyrunc.records import dataclass, field


@dataclass
class Plain:
    a: int
    b: str = "x"
    c: list[int] = field(default_factory=list)
    d: int = field(default=7)


@dataclass(frozen=True)
class Frozen:
    a: int
    b: tuple[int, ...] = ()


def test_defaults_factories_and_keywords() -> None:
    p = Plain(1)
    assert (p.a, p.b, p.c, p.d) == (1, "x", [], 7)
    q = Plain(2, "y", d=9)
    assert (q.a, q.b, q.c, q.d) == (2, "y", [], 9)
    assert Plain(1).c is not Plain(1).c  # a new list each time
    assert Plain(a=3, c=[1]).c == [1]


def test_eq_repr_and_hash() -> None:
    assert Plain(1) == Plain(1) and Plain(1) != Plain(2)
    assert repr(Plain(1)) == "Plain(a=1, b='x', c=[], d=7)"
    assert hash(Frozen(1, (2,))) == hash(Frozen(1, (2,)))
    with pytest.raises(TypeError):
        hash(Plain(1))


def test_frozen_refuses_assignment() -> None:
    f = Frozen(1)
    with pytest.raises(AttributeError):
        f.a = 2  # type: ignore[misc]


def test_argument_errors() -> None:
    with pytest.raises(TypeError, match="missing argument 'a'"):
        Plain()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected"):
        Plain(1, zz=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Plain(1, "b", [], 4, 5)  # type: ignore[call-arg]
