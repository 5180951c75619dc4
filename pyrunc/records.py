"""`dataclass` and `field` without importing dataclasses (which pulls inspect and ast: ~10 ms).

Covers what pyrunc uses: fields in annotation order, defaults, `field(default=...,
default_factory=...)`, `frozen=True`, generated `__init__`, `__repr__`, `__eq__` (and `__hash__`
when frozen). mypy sees the real `dataclasses` (pyproject sets `always_true = ["MYPY"]`), so type
checking is exactly that of dataclasses.
"""

from __future__ import annotations

MYPY = False
if MYPY:
    from dataclasses import dataclass as dataclass
    from dataclasses import field as field
else:
    _MISSING = object()

    class _Field:
        __slots__ = ("default", "default_factory")

        def __init__(self, default: object, default_factory: object) -> None:
            self.default = default
            self.default_factory = default_factory

    def field(*, default: object = _MISSING, default_factory: object = _MISSING) -> object:
        return _Field(default, default_factory)

    def _build(cls: type, frozen: bool) -> type:
        names = [n for n, t in cls.__dict__.get("__annotations__", {}).items()
                 if not str(t).startswith("ClassVar")]
        params, body, env = [], [], {"_MISSING": _MISSING}
        for n in names:
            value = cls.__dict__.get(n, _MISSING)
            if isinstance(value, _Field) and value.default_factory is not _MISSING:
                env[f"_f_{n}"] = value.default_factory
                params.append(f"{n}=_MISSING")
                body.append(f"{n} = _f_{n}() if {n} is _MISSING else {n}")
            else:
                if isinstance(value, _Field):
                    value = value.default
                if value is _MISSING:
                    params.append(n)
                else:
                    env[f"_d_{n}"] = value
                    params.append(f"{n}=_d_{n}")
            body.append(f"_set(self, {n!r}, {n})")
            if isinstance(cls.__dict__.get(n), _Field):
                delattr(cls, n) if cls.__dict__[n].default is _MISSING else setattr(cls, n, cls.__dict__[n].default)
        env["_set"] = object.__setattr__
        src = f"def __init__(self, {', '.join(params)}):\n    " + "\n    ".join(body or ["pass"])
        exec(src, env)  # noqa: S102 — generated from the class's own field names
        cls.__init__ = env["__init__"]  # type: ignore[misc]
        cls.__repr__ = lambda self: f"{cls.__name__}(" + ", ".join(  # type: ignore[method-assign]
            f"{n}={getattr(self, n)!r}" for n in names) + ")"
        cls.__eq__ = lambda a, b: (type(a) is type(b) and all(  # type: ignore[method-assign]
            getattr(a, n) == getattr(b, n) for n in names)) if type(a) is type(b) else NotImplemented
        if frozen:
            def _frozen(self: object, name: str, value: object) -> None:
                raise AttributeError(f"cannot assign to field {name!r}")
            cls.__setattr__ = _frozen  # type: ignore[method-assign,assignment]
            cls.__hash__ = lambda self: hash(tuple(getattr(self, n) for n in names))  # type: ignore[method-assign]
        else:
            cls.__hash__ = None  # type: ignore[assignment]
        return cls

    def dataclass(cls: type | None = None, *, frozen: bool = False) -> object:
        if cls is None:
            return lambda c: _build(c, frozen)
        return _build(cls, frozen)
