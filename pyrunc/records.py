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

    def _defaults(cls: type, names: list[str]) -> tuple[dict[str, object], dict[str, object]]:
        """(plain defaults, default factories) of the fields; the class keeps plain defaults."""
        defaults: dict[str, object] = {}
        factories: dict[str, object] = {}
        for n in names:
            value = cls.__dict__.get(n, _MISSING)
            if isinstance(value, _Field):
                if value.default_factory is not _MISSING:
                    factories[n] = value.default_factory
                    delattr(cls, n)
                    continue
                value = value.default
                if value is _MISSING:
                    delattr(cls, n)
                else:
                    setattr(cls, n, value)
            if value is not _MISSING:
                defaults[n] = value
        return defaults, factories

    def _make_init(cls: type, names: list[str]) -> object:
        defaults, factories = _defaults(cls, names)
        _set = object.__setattr__

        # A generic __init__ (no exec of generated source: that costs ~0.3 ms a class).
        def __init__(self: object, *args: object, **kw: object) -> None:
            if len(args) > len(names):
                raise TypeError(f"{cls.__name__}() takes {len(names)} arguments")
            for name, value in zip(names, args, strict=False):
                _set(self, name, value)
            for name in names[len(args):]:
                if name in kw:
                    _set(self, name, kw.pop(name))
                elif name in factories:
                    _set(self, name, factories[name]())  # type: ignore[operator]
                elif name in defaults:
                    _set(self, name, defaults[name])
                else:
                    raise TypeError(f"{cls.__name__}() missing argument {name!r}")
            if kw:
                raise TypeError(f"{cls.__name__}() got unexpected arguments {sorted(kw)}")

        return __init__

    def _build(cls: type, frozen: bool) -> type:
        names = [n for n, t in cls.__dict__.get("__annotations__", {}).items()
                 if not str(t).startswith("ClassVar")]
        cls.__init__ = _make_init(cls, names)  # type: ignore[misc]
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
