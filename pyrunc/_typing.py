"""Type names without importing typing at run time (typing costs ~5 ms of every start).

mypy sees the real ones (pyproject: `always_true = ["MYPY"]`); at run time they are `object`,
which is all a `from __future__ import annotations` module ever needs of them.
"""

MYPY = False
if MYPY:
    from collections.abc import Callable as Callable
    from collections.abc import Iterator as Iterator
    from collections.abc import Mapping as Mapping
    from typing import Any as Any
    from typing import TextIO as TextIO
else:
    Any = TextIO = Callable = Iterator = Mapping = object
