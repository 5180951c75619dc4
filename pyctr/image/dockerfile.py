"""Dockerfiles: instructions, stages, and docker's word rules (quotes, escapes, `$VAR`).

dockerfile-parse (the parser other Python tools use) reads the file's structure: directives
(`# escape=`), comments, line continuations and the line each instruction starts on. What it does
not do as docker does is left to this module: its `$VAR` substitution knows no `${VAR:-word}`,
and it does not tell which instructions expand variables, split words or take `--flags`.
Those rules follow BuildKit's Dockerfile frontend:

- RUN, CMD, ENTRYPOINT, SHELL and HEALTHCHECK are never expanded: the shell does it (exec form:
  nobody does).
- ADD, COPY, EXPOSE and VOLUME expand and split into words; a value from a variable outside
  quotes is split too.
- ENV and LABEL take `key=value` words (or the old `ENV key value...`), each side expanded.
- FROM, WORKDIR, USER, STOPSIGNAL and ARG's default expand as one word.
- `\\` escapes the next character outside quotes; inside double quotes only `"`, `$` and `\\`.
  Single quotes are literal.

Nothing here touches the filesystem: `parse` turns text into `Stage`s of `Instruction`s, the
builder (pyctr.ops.build) interprets them.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from pyctr.errors import BuildError

KNOWN = frozenset({
    "FROM", "RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "EXPOSE",
    "VOLUME", "LABEL", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER", "ONBUILD"})
# The flags each instruction accepts (BuildKit's); any other is an error naming the line.
FLAGS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "COPY": frozenset({"from", "chown", "chmod"}),
    "ADD": frozenset({"chown", "chmod"}),
    "HEALTHCHECK": frozenset({"interval", "timeout", "start-period", "start-interval",
                              "retries"}),
}
_FLAG = re.compile(r"^--([a-z][a-z-]*)(?:=(.*))?$")
ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}

Env = Mapping[str, str]
T = TypeVar("T")


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword, where it starts, its `--flags` and the text after them."""

    file: str
    line: int
    keyword: str
    flags: dict[str, str]
    value: str
    text: str  # as written, continuations joined: what `Step n/m :` shows

    def error(self, message: str) -> BuildError:
        return BuildError(f"{self.file}:{self.line}: {self.keyword}: {message}")

    def exec_form(self) -> list[str] | None:
        """The JSON array of the exec form, or None for the shell form."""
        return json_array(self.value)


@dataclass
class Stage:
    index: int
    name: str | None
    base: str  # as written, expanded later with the global ARGs
    origin: Instruction
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    global_args: list[Instruction]
    stages: list[Stage]


# --- structure -------------------------------------------------------------------------------


def parse(text: str, file: str = "Dockerfile") -> Dockerfile:
    """Instructions grouped in stages; ARGs before the first FROM are global."""
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), env_replace=False)
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    for item in parser.structure:
        keyword = str(item["instruction"])
        if keyword == "COMMENT":
            continue
        ins = _instruction(file, int(item["startline"]) + 1, keyword, str(item["value"]),
                           str(item["content"]))
        if keyword == "FROM":
            stages.append(_stage(ins, len(stages), stages))
        elif not stages:
            if keyword != "ARG":
                raise ins.error("no FROM before it (only ARG may come first)")
            global_args.append(ins)
        else:
            stages[-1].instructions.append(ins)
    if not stages:
        raise BuildError(f"{file}: no FROM instruction")
    return Dockerfile(global_args, stages)


def _instruction(file: str, line: int, keyword: str, value: str, content: str) -> Instruction:
    text = " ".join(content.replace("\\\n", " ").split())
    probe = Instruction(file, line, keyword, {}, value.strip(), text)
    if keyword not in KNOWN:
        raise probe.error("unknown instruction")
    if keyword == "ONBUILD":
        raise probe.error("not supported by pyctr build")
    if value.lstrip().startswith("<<"):
        raise probe.error("heredocs are not supported by pyctr build")
    flags, rest = split_flags(probe, FLAGS.get(keyword, frozenset()))
    if not rest and keyword not in ("RUN", "CMD", "ENTRYPOINT"):
        raise probe.error("needs an argument")
    return Instruction(file, line, keyword, flags, rest, text)


def split_flags(ins: Instruction, allowed: frozenset[str]) -> tuple[dict[str, str], str]:
    """Leading `--name=value` words; RUN's BuildKit-only flags (--mount...) are refused here."""
    flags: dict[str, str] = {}
    rest = ins.value
    while rest.startswith("--"):
        word, _, tail = rest.partition(" ")
        m = _FLAG.match(word)
        if not m or m.group(1) not in allowed:
            raise ins.error(f"unknown flag {word.split('=')[0]}")
        if m.group(2) is None:
            raise ins.error(f"flag --{m.group(1)} needs a value (--{m.group(1)}=...)")
        flags[m.group(1)] = m.group(2)
        rest = tail.lstrip()
    return flags, rest


def _stage(ins: Instruction, index: int, earlier: list[Stage]) -> Stage:
    words = ins.value.split()
    name = None
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not re.match(r"^[a-z][a-z0-9_.-]*$", name):
            raise ins.error(f"invalid stage name {words[2]!r}")
        if any(s.name == name for s in earlier):
            raise ins.error(f"duplicate stage name {name!r}")
    elif len(words) != 1:
        raise ins.error("want FROM IMAGE [AS NAME]")
    return Stage(index, name, words[0], ins)


# --- words -----------------------------------------------------------------------------------


def json_array(value: str) -> list[str] | None:
    if not value.startswith("["):
        return None
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    if isinstance(doc, list) and all(isinstance(w, str) for w in doc):
        return doc
    return None


class _Lexer:
    """Docker's shell-like word processing of one instruction value."""

    def __init__(self, text: str, env: Env, escape: str = "\\") -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.words: list[str] = []
        self.word: list[str] = []
        self.in_word = False

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _take(self) -> str:
        ch = self._peek()
        self.pos += 1
        return ch

    def _add(self, s: str) -> None:
        self.word.append(s)
        self.in_word = True

    def _end_word(self) -> None:
        if self.in_word:
            self.words.append("".join(self.word))
        self.word, self.in_word = [], False

    def _add_split(self, value: str, split: bool) -> None:
        if not split:
            self._add(value)
            return
        for ch in value:
            if ch.isspace():
                self._end_word()
            else:
                self._add(ch)

    def run(self, split: bool) -> list[str]:
        while self.pos < len(self.text):
            ch = self._take()
            if ch.isspace() and split:
                self._end_word()
            elif ch == self.escape:
                nxt = self._take()
                self._add(nxt if nxt else ch)
            elif ch == "'":
                self._single()
            elif ch == '"':
                self._double()
            elif ch == "$":
                self._add_split(self._dollar(), split)
            else:
                self._add(ch)
        self._end_word()
        return self.words

    def _single(self) -> None:
        self.in_word = True
        end = self.text.find("'", self.pos)
        if end < 0:
            raise ValueError("unterminated single quote")
        self.word.append(self.text[self.pos:end])
        self.pos = end + 1

    def _double(self) -> None:
        self.in_word = True
        while True:
            ch = self._take()
            if not ch:
                raise ValueError("unterminated double quote")
            if ch == '"':
                return
            if ch == self.escape and self._peek() in ('"', "$", self.escape):
                self.word.append(self._take())
            elif ch == "$":
                self.word.append(self._dollar())
            else:
                self.word.append(ch)

    def _dollar(self) -> str:
        ch = self._peek()
        if ch == "{":
            self.pos += 1
            return self._braced()
        m = re.match(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]", self.text[self.pos:])
        if not m:
            return "$"
        self.pos += m.end()
        return self.env.get(m.group(0), "")

    def _braced(self) -> str:
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(:?[-+?])?", self.text[self.pos:])
        if not m:
            raise ValueError("bad substitution")
        self.pos += m.end()
        name, op = m.group(1), m.group(2)
        word = ""
        if op:
            word = self._until_brace()
        elif self._take() != "}":
            raise ValueError(f"missing '}}' in ${{{name}")
        value = self.env.get(name)
        set_ = value is not None and (value != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return value if set_ and value is not None else word
        if op in (":+", "+"):
            return word if set_ else ""
        if op in (":?", "?") and not set_:
            raise ValueError(f"{name}: {word or 'is not set'}")
        return value or ""

    def _until_brace(self) -> str:
        inner = _Lexer(self.text, self.env, self.escape)
        inner.pos = self.pos
        depth = 0
        out: list[str] = []
        while True:
            ch = inner._take()
            if not ch:
                raise ValueError("missing '}'")
            if ch == "}" and depth == 0:
                break
            if ch == "$":
                out.append(inner._dollar())
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            out.append(ch)
        self.pos = inner.pos
        return "".join(out)


def words(text: str, env: Env) -> list[str]:
    """Expand and split (ADD, COPY, EXPOSE, VOLUME)."""
    return _Lexer(text, env).run(split=True)


def word(text: str, env: Env) -> str:
    """Expand as one word, removing quotes and escapes (FROM, WORKDIR, USER, ...)."""
    return "".join(_Lexer(text, env).run(split=False))


def raw_words(text: str) -> list[str]:
    """Split on blanks outside quotes, keeping quotes and escapes for the second pass."""
    out: list[str] = []
    cur: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quote != "'" and i + 1 < len(text):
            cur += [ch, text[i + 1]]
            i += 2
            continue
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch.isspace():
            if cur:
                out.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    if quote:
        raise ValueError("unterminated quote")
    if cur:
        out.append("".join(cur))
    return out


def key_values(text: str, env: Env, old_form: bool = True) -> list[tuple[str, str]]:
    """`k=v k2="v 2"` (each side expanded against `env` as it was before the instruction), or
    the old `ENV key value words` when the first word has no `=`."""
    raw = raw_words(text)
    if not raw:
        return []
    if "=" not in raw[0]:
        if not old_form:
            raise ValueError(f"want key=value, got {raw[0]!r}")
        key, _, value = text.strip().partition(" ")
        return [(word(key, env), word(value.strip(), env))]
    pairs = []
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"want key=value, got {item!r}")
        pairs.append((word(key, env), word(value, env)))
    return pairs


def expand_or_fail(ins: Instruction, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except ValueError as exc:
        raise ins.error(str(exc)) from exc


def duration_ns(text: str) -> int:
    """A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds."""
    if text == "0":
        return 0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}")
    return int(total)
