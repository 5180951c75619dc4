"""The side-by-side table both runners print: one row per test, one column per runtime."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Outcome:
    """One test against one runtime."""

    status: str  # "ok", "FAIL", "TIMEOUT", "ERROR" or "skip"
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    detail: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return self.status in ("ok", "skip")

    def cell(self) -> str:
        return f"{self.status} {self.passed}/{self.failed}/{self.skipped}"


Results = dict[str, dict[str, Outcome]]  # test -> runtime -> outcome


def totals(results: Results, runtime: str) -> tuple[int, int, int, int, int]:
    """passed, failed, skipped cases, clean tests and tests, for one runtime."""
    outs = [row[runtime] for row in results.values() if runtime in row]
    return (sum(o.passed for o in outs), sum(o.failed for o in outs),
            sum(o.skipped for o in outs), sum(o.clean for o in outs), len(outs))


def summary_line(results: Results, runtime: str) -> str:
    p, f, s, clean, n = totals(results, runtime)
    return f"{runtime}: {p} passed, {f} failed, {s} skipped ({clean} of {n} tests clean)"


def table(results: Results, runtimes: list[str]) -> str:
    """The table, a totals row, then the per-runtime summary lines."""
    header = ["test", *runtimes]
    rows = [[test, *(row[r].cell() if r in row else "-" for r in runtimes)]
            for test, row in results.items()]
    total_cells = []
    for r in runtimes:
        p, f, s, clean, n = totals(results, r)
        total_cells.append(f"{clean}/{n} {p}/{f}/{s}")
    rows.append(["TOTAL (clean, p/f/s)", *total_cells])
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    lines.append("")
    lines += [summary_line(results, r) for r in runtimes]
    return "\n".join(line.rstrip() for line in lines)


def failure_details(results: Results, runtimes: list[str], limit: int = 5) -> str:
    """Per failing test and runtime, the first `limit` failure descriptions."""
    out: list[str] = []
    for test, row in results.items():
        for r in runtimes:
            o = row.get(r)
            if o is None or o.clean:
                continue
            out.append(f"{test} [{r}] {o.status}:")
            out += [f"    {d}" for d in o.detail[:limit]]
            if len(o.detail) > limit:
                out.append(f"    ... and {len(o.detail) - limit} more")
    return "\n".join(out)


def as_json(results: Results) -> dict[str, dict[str, dict[str, object]]]:
    return {test: {r: {"status": o.status, "passed": o.passed, "failed": o.failed,
                       "skipped": o.skipped, "seconds": round(o.seconds, 3), "detail": o.detail}
                   for r, o in row.items()}
            for test, row in results.items()}
