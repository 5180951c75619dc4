"""Dockerfile parsing, docker's word rules, .dockerignore patterns and COPY sources (no root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyctr.errors import BuildError
from pyctr.image import buildcontext, dockerfile
from pyctr.image.buildcontext import Ignore

ENV = {"A": "a", "SP": "x y", "EMPTY": ""}


def test_stages_flags_and_lines() -> None:
    df = dockerfile.parse(
        "# escape=\\\nARG V=1\nFROM base:$V AS Build\n# a comment\nRUN echo a \\\n  && echo b\n"
        "COPY --from=build --chown=1:2 a b /c/\nFROM scratch\nCMD [\"x\"]\n")
    assert [a.value for a in df.global_args] == ["V=1"]
    build, final = df.stages
    assert (build.name, build.base, build.origin.line) == ("build", "base:$V", 3)
    run, copy = build.instructions
    assert (run.line, run.keyword, run.exec_form()) == (5, "RUN", None)
    assert run.text == "RUN echo a && echo b"
    assert copy.flags == {"from": "build", "chown": "1:2"} and copy.value == "a b /c/"
    assert (final.name, final.instructions[0].exec_form()) == (None, ["x"])


@pytest.mark.parametrize(("text", "line", "message"), [
    ("RUN true\n", 1, "no FROM"),
    ("FROM a\nBOGUS x\n", 2, "unknown instruction"),
    ("FROM a\nCOPY --nope=1 a b\n", 2, "unknown flag --nope"),
    ("FROM a\nRUN --mount=type=cache,target=/x make\n", 2, "unknown flag --mount"),
    ("FROM a\n\nCOPY --chown a b\n", 3, "needs a value"),
    ("FROM a AS x\nFROM b AS x\n", 2, "duplicate stage"),
    ("FROM a\nONBUILD RUN x\n", 2, "not supported"),
    ("FROM a\nRUN <<EOF\nx\nEOF\n", 2, "heredocs"),
])
def test_errors_name_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(BuildError) as err:
        dockerfile.parse(text, "Dockerfile.test")
    assert str(err.value).startswith(f"Dockerfile.test:{line}: ") and message in str(err.value)


@pytest.mark.parametrize(("text", "want"), [
    ("$A ${A}b", ["a", "ab"]),
    ("'$A' \"$A\" \\$A", ["$A", "a", "$A"]),
    ("$SP \"$SP\"", ["x", "y", "x y"]),  # unquoted values split, quoted ones do not
    ("${NOPE:-d} ${EMPTY:-d} ${EMPTY-d} ${A:+set} ${NOPE:+set}x", ["d", "d", "set", "x"]),
    ("a\\ b \"c\\\"d\"", ["a b", 'c"d']),
])
def test_words(text: str, want: list[str]) -> None:
    assert dockerfile.words(text, ENV) == want


def test_word_keeps_blanks_and_refuses_bad_input() -> None:
    assert dockerfile.word("/srv/$A  dir", ENV) == "/srv/a  dir"
    for bad in ("'open", '"open', "${A", "${NOPE:?must be set}"):
        with pytest.raises(ValueError):
            dockerfile.word(bad, ENV)


def test_key_values() -> None:
    assert dockerfile.key_values('A=1 B="two words" C=$A D=${A}x', {"A": "old"}) == [
        ("A", "1"), ("B", "two words"), ("C", "old"), ("D", "oldx")]  # values from before
    assert dockerfile.key_values("NAME some words here", {}) == [("NAME", "some words here")]
    assert dockerfile.key_values('"my key"=v', {}) == [("my key", "v")]
    with pytest.raises(ValueError):
        dockerfile.key_values("A=1 B", {})


def test_durations() -> None:
    assert dockerfile.duration_ns("30s") == 30_000_000_000
    assert dockerfile.duration_ns("1m30s") == 90_000_000_000
    assert dockerfile.duration_ns("1.5ms") == 1_500_000
    for bad in ("", "5", "5x", "s"):
        with pytest.raises(ValueError):
            dockerfile.duration_ns(bad)


def test_dockerignore() -> None:
    ignore = Ignore(["# c", "", "*.log", "build/", "**/*.tmp", "docs", "!docs/keep.md",
                     "/abs/x", "[ab].txt"])
    assert ignore.excluded("x.log") and not ignore.excluded("sub/x.log")
    assert ignore.excluded("build/out/bin")  # a parent matches
    assert ignore.excluded("a/b/c.tmp") and ignore.excluded("c.tmp")
    assert ignore.excluded("docs/other.md") and not ignore.excluded("docs/keep.md")
    assert ignore.may_reinclude_under("docs")
    assert ignore.excluded("abs/x") and ignore.excluded("a.txt") and not ignore.excluded("c.txt")


def test_sources_globs_symlinks_and_ignore(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("a.txt", "b.txt", "c.md", "d/one", "d/sub/two", "d/x.tmp"):
        (tmp_path / name).write_text(name)
    (tmp_path / "link").symlink_to("/d")  # followed, inside the context
    (tmp_path / "escape").symlink_to("/etc")
    (tmp_path / "d" / "rel").symlink_to("../a.txt")
    ignore = Ignore(["b.txt", "**/*.tmp"])
    found = buildcontext.resolve_sources(tmp_path, "*.txt", ignore)
    assert [(n, p.name) for n, p in found] == [("a.txt", "a.txt")]
    [(name, path)] = buildcontext.resolve_sources(tmp_path, "link", ignore)
    assert path == tmp_path / "d" and name == "link"
    assert buildcontext.resolve_sources(tmp_path, "escape", ignore) == []  # no <context>/etc
    entries = list(buildcontext.walk(tmp_path, tmp_path / "d", "", ignore))
    assert [e.arcname for e in entries] == ["one", "rel", "sub", "sub/two"]
    digest = buildcontext.digest(entries)
    (tmp_path / "d" / "sub" / "two").write_text("changed")
    assert buildcontext.digest(entries) != digest
    assert buildcontext.resolve_sources(tmp_path, "nothing*", ignore) == []
