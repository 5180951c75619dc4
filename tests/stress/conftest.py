"""Fixtures of the reliability tests (helpers live in reliability.py) and the end-of-run report.

Tests marked `stress` are the long forms (`make stress`); the unmarked ones are the bounded forms
that `make test` runs. The `stress` marker itself is registered in tests/conftest.py.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from reliability import REPORT, Figures, scrub


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    return REPORT.setdefault(request.node.name, Figures())


@pytest.fixture
def stress(request: pytest.FixtureRequest) -> bool:
    """True in the long form of a test (marked `stress`)."""
    return request.node.get_closest_marker("stress") is not None


@pytest.fixture
def prefix() -> str:
    return f"rl-{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def rt(runtime: Any, prefix: str) -> Iterator[Any]:
    """A runtime with a private root; at the end, everything of `prefix` is removed by force."""
    yield runtime
    scrub(runtime, prefix)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORT:
        return
    tr = terminalreporter
    tr.section("pyrunc reliability report")
    for name, f in REPORT.items():
        parts = []
        if f.containers:
            parts.append(f"containers={f.containers}")
        if f.operations:
            rate = f.operations / f.seconds if f.seconds else 0.0
            parts.append(f"ops={f.operations} in {f.seconds:.1f}s ({rate:.1f} ops/s)")
        if f.faults:
            parts.append(f"faults injected={f.faults}")
        if f.fuzz_cases:
            outcomes = ", ".join(f"{k}={v}" for k, v in sorted(f.fuzz_outcomes.items()))
            parts.append(f"fuzz cases={f.fuzz_cases} ({outcomes})")
        parts.append(f"failures={len(f.failures)}")
        parts.append(f"leaks={len(f.leaks)}")
        if f.leaks:
            kinds = Counter(m.group(1) for x in f.leaks
                            if (m := re.search(r"(state dir|cgroup|mount|process|fd) ", x)))
            parts.append("leaks by kind: " + ", ".join(f"{k}={v}" for k, v in kinds.items()))
        tr.write_line(f"{name}: " + "; ".join(parts))
        for line in (f.failures[:10] + f.leaks[:10] + f.notes):
            tr.write_line(f"    {line}")


