"""The bus's glob matcher follows Redis PSUBSCRIBE rules, so both buses agree on patterns."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantdesk.bus.base import compile_glob, glob_escape


@pytest.mark.parametrize(
    ("pattern", "channel", "matches"),
    [
        ("quotes:*", "quotes:NSE:INFY", True),
        ("quotes:*", "quotes:", True),
        ("quotes:*", "orders", False),
        ("quotes:NSE:*", "quotes:BSE:INFY", False),
        ("h?llo", "hello", True),
        ("h?llo", "hllo", False),
        ("h[ae]llo", "hallo", True),
        ("h[ae]llo", "hillo", False),
        ("h[^e]llo", "hallo", True),
        ("h[^e]llo", "hello", False),
        ("h[a-c]llo", "hbllo", True),
        ("h[c-a]llo", "hbllo", True),  # Redis swaps reversed ranges
        ("h\\*llo", "h*llo", True),
        ("h\\*llo", "hello", False),
        ("h[\\]]llo", "h]llo", True),
        ("[]", "", False),
        ("a[bc", "ab", True),  # an unclosed class runs to the end, as in Redis
        ("a.b", "axb", False),  # regex metacharacters are literal
        ("line*", "line\nbreak", True),
    ],
)
def test_glob_follows_redis_matching_rules(pattern: str, channel: str, matches: bool) -> None:
    assert bool(compile_glob(pattern).fullmatch(channel)) is matches


_plain = st.text(alphabet="ab:*?", max_size=8)


@given(pattern=_plain, channel=st.text(alphabet="ab:", max_size=8))
def test_glob_agrees_with_fnmatch_on_star_and_question_mark(pattern: str, channel: str) -> None:
    assert bool(compile_glob(pattern).fullmatch(channel)) == fnmatch.fnmatchcase(channel, pattern)


@given(text=st.text(max_size=20))
def test_escaped_text_matches_only_itself(text: str) -> None:
    regex = compile_glob(glob_escape(text))
    assert regex.fullmatch(text)
    assert not regex.fullmatch(text + "x")
