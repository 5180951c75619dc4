"""TAP as runtime-tools' validation programs print it, and the quirks a fair count must handle.

- Only column-0 `ok` / `not ok` lines are results; `# SKIP` (and `# TODO`) directives count as
  skipped. Indented lines belong to YAML diagnostic blocks (`  ---` ... `  ...`).
- Some programs (hooks, prestart, poststart, poststop, the `*_fail` ones) never print a result:
  they report a violation only as a YAML block with an `error` key, then the plan `1..0`, or print
  nothing on success. `state` prints such a block between two cases when the state is invalid.
  Such a free-standing block counts as one failure.
- A block after a result line is that result's diagnostic and never counts: its `error` is often
  the error the case expected (`ok 1 - create MUST generate an error if the ID is not provided`).
  Spec-error descriptions run on to a column-0 `Refer to: <url>` line before the block.
- tap-go writes blocks as JSON (YAML only when built with its `yaml` tag, which the suite's
  Makefile does not set), so the key is quoted: `{"error": "exit status 1", "stderr": "..."}`.
  Both forms are read; only a top-level key counts, and a `stderr` beside it is shown too.
- `linux_cgroups_cpus` prints two plans: plans are summed. A plan larger than the results seen
  adds the missing ones as failures (the program died half way).
- A non-zero exit status, or a time-out, adds one failure.
"""

from __future__ import annotations

import json
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
        # tap-go writes `ok 7 # SKIP <reason>` with no description
        return "skip", m.group(3) or m.group(4).strip()[4:].strip()
    return ("pass" if ok else "fail"), m.group(3)


# A top-level `error` key in YAML (`error: x`) or JSON (`"error": "x",`) form.
_ERROR_KEY = re.compile(r"""^(["']?)error\1\s*:\s*(.*?),?\s*$""")


def _first_line(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _json_error(data: dict[str, object]) -> str | None:
    if "error" not in data:
        return None
    error = _first_line(data["error"]) or "error"
    stderr = _first_line(data.get("stderr", ""))
    return f"{error} (stderr: {stderr})" if stderr else error


def _block_error(block: list[str]) -> str | None:
    """The value of the top-level `error` key of a diagnostic block, or None."""
    try:
        data = json.loads("\n".join(block))
    except ValueError:
        data = None
    if isinstance(data, dict):
        return _json_error(data)
    # YAML, or JSON cut short: keys at the smallest indent that is not a brace line
    keys = [line for line in block if line.strip() and line.strip() not in ("{", "}", "},")]
    if not keys:
        return None
    indent = min(len(line) - len(line.lstrip()) for line in keys)
    for line in keys:
        if line[:indent].strip() == "" and (m := _ERROR_KEY.match(line[indent:])):
            return _first_line(m.group(2).strip("'\"")) or "error"
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
    attached = False  # a block here is the diagnostic of the last result line
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "---" and line[:1].isspace():
            body, i = _read_yaml(lines, i)
            error = _block_error(body)
            if error is not None and not attached:
                result.add("fail", f"error: {error}")
            attached = False
            continue
        if m := _RESULT.match(line):
            status, description = _result(m)
            result.add(status, description)
            attached = True
        elif m := _PLAN.match(line):
            result.planned += max(0, int(m.group(2)) - int(m.group(1)) + 1)
            attached = False
        elif line.startswith("TAP version"):
            attached = False
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
