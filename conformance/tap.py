"""TAP as runtime-tools' validation programs print it, and the quirks a fair count must handle.

- Only column-0 `ok` / `not ok` lines are results; `# SKIP` (and `# TODO`) directives count as
  skipped. Indented lines belong to YAML diagnostic blocks (`  ---` ... `  ...`).
- Some programs (hooks, prestart, poststart, poststop, the `*_fail` ones) never print a result:
  they report a violation only as a YAML block with an `error` key, or print nothing on success.
  Such a block counts as one failure unless it is the diagnostic of a `not ok` line just before it.
- `linux_cgroups_cpus` prints two plans: plans are summed. A plan larger than the results seen
  adds the missing ones as failures (the program died half way).
- A non-zero exit status, or a time-out, adds one failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_RESULT = re.compile(r"^(not ok|ok)\b\s*(\d+)?\s*(?:-\s*)?([^#]*?)\s*(?:#\s*(.*))?$")
_PLAN = re.compile(r"^(\d+)\.\.(\d+)\b")


@dataclass
class Case:
    status: str  # "pass", "fail" or "skip"
    description: str


@dataclass
class TapResult:
    """The counts of one program's run; `cases` lists results and the failures added for it."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    planned: int = 0
    cases: list[Case] = field(default_factory=list)

    def add(self, status: str, description: str) -> None:
        self.cases.append(Case(status, description))
        if status == "pass":
            self.passed += 1
        elif status == "skip":
            self.skipped += 1
        else:
            self.failed += 1

    @property
    def seen(self) -> int:
        return self.passed + self.failed + self.skipped


def _result(m: re.Match[str]) -> tuple[str, str]:
    ok = m.group(1) == "ok"
    directive = (m.group(4) or "").strip().lower()
    if directive.startswith(("skip", "todo")):
        return "skip", m.group(3)
    return ("pass" if ok else "fail"), m.group(3)


def _yaml_error(block: list[str]) -> str | None:
    """The value of the top-level `error` key of a YAML block, or None."""
    if not block:
        return None
    indent = min(len(line) - len(line.lstrip()) for line in block if line.strip())
    for line in block:
        if line[:indent].strip() == "" and line[indent:].startswith("error:"):
            return line[indent + len("error:"):].strip().strip("'\"") or "error"
    return None


def _read_yaml(lines: list[str], start: int) -> tuple[list[str], int]:
    """The body of the YAML block opening at lines[start] (`  ---`) and the index after it."""
    body: list[str] = []
    i = start + 1
    while i < len(lines) and lines[i].strip() != "...":
        if lines[i] and not lines[i][0].isspace():
            return body, i  # unterminated block: a column-0 line ends it
        body.append(lines[i])
        i += 1
    return body, i + 1


def parse(text: str) -> TapResult:
    """Count a TAP stream (before the exit status and plan checks: see `finish`)."""
    result = TapResult()
    lines = text.splitlines()
    last = ""  # the status of the result line a YAML block would be the diagnostic of
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "---" and line[:1].isspace():
            body, i = _read_yaml(lines, i)
            error = _yaml_error(body)
            if error is not None and last != "fail":
                result.add("fail", f"error: {error}")
            last = ""
            continue
        if m := _RESULT.match(line):
            last, description = _result(m)
            result.add(last, description)
        elif m := _PLAN.match(line):
            result.planned += max(0, int(m.group(2)) - int(m.group(1)) + 1)
            last = ""
        elif line.strip():
            last = ""
        i += 1
    return result


def finish(result: TapResult, returncode: int | None, timed_out: bool = False) -> TapResult:
    """Apply the plan, exit status and time-out rules; an empty clean run counts as one pass."""
    for n in range(result.seen, result.planned):
        result.add("fail", f"planned test {n + 1} never ran")
    if timed_out:
        result.add("fail", "timed out")
    elif returncode:
        result.add("fail", f"exit status {returncode}")
    if not result.cases:
        result.add("pass", "no output, exit status 0")
    return result
