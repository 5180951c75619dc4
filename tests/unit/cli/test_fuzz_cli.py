"""Hostile input to the pure parts, no privileges: signal names, container ids, the argv parser.

Each function either returns a sane value or raises pyrunc's own error (which the CLI prints as one
line); anything else would reach the user as a traceback.
"""

from __future__ import annotations

import os
import signal

from hypothesis import given, settings
from hypothesis import strategies as st

from pyrunc import cli
from pyrunc.container import state
from pyrunc.errors import PyruncError
from pyrunc.ops.kill import parse_signal

N = int(os.environ.get("PYRUNC_FUZZ_N", "300"))
FUZZ = settings(max_examples=N, deadline=None, database=None)
argv_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"),
                    max_size=40)


@FUZZ
@given(st.one_of(argv_text, st.from_regex(r"(SIG)?(RTMIN|RTMAX)[+-][0-9]{1,4}", fullmatch=True),
                 st.integers(-10, 200).map(str), st.sampled_from(["²", "٣", "１", "0x9", "+9"])))
def test_parse_signal_returns_a_signal_or_a_clean_error(text: str) -> None:
    try:
        n = parse_signal(text)
    except PyruncError:
        return
    assert 0 < n < signal.NSIG, f"{text!r} parsed to {n}"


@FUZZ
@given(argv_text)
def test_check_id_accepts_only_plain_names(cid: str) -> None:
    try:
        state.check_id(cid)
    except PyruncError:
        return
    assert "/" not in cid and cid not in (".", "..") and cid.isascii() and cid


@FUZZ
@given(st.lists(st.one_of(argv_text, st.sampled_from(
    ["--all", "-a", "--force", "--bundle", "-b", "--pid-file=", "--", "-", "--root", "=x"])),
    max_size=6))
def test_parse_takes_any_argv(argv: list[str]) -> None:
    for flags, stop in cli.COMMANDS.values():
        try:
            out = cli.parse(argv, flags, stop)
        except PyruncError:
            continue
        assert all(isinstance(a, str) for a in out.args)
