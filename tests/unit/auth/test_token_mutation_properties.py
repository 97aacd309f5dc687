"""Property: no byte-level change to a signed access token gets a different identity in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.auth.security import (
    AccessClaims,
    TokenError,
    decode_access_token,
    encode_access_token,
)

KEY = "unit-test-signing-key-" + "k" * 32
ISSUER = "quantdesk"
NOW = datetime.now(UTC)


def _token() -> tuple[str, AccessClaims]:
    token, _ = encode_access_token(
        user_id=42,
        role="admin",
        session_id="a" * 32,
        key=KEY,
        algorithm="HS256",
        issuer=ISSUER,
        ttl=timedelta(hours=1),
        now=NOW,
    )
    return token, decode_access_token(token, key=KEY, algorithm="HS256", issuer=ISSUER)


TOKEN, CLAIMS = _token()
RAW = TOKEN.encode()


@st.composite
def mutations(draw: st.DrawFn) -> bytes:
    data = bytearray(RAW)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["replace", "flip", "insert", "delete", "truncate"]))
        if not data:
            kind = "insert"
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "replace":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data.insert(pos, draw(st.integers(0, 255)))
        elif kind == "delete":
            del data[pos]
        elif kind == "truncate":
            del data[pos:]
    return bytes(data)


def _decode(raw: bytes) -> AccessClaims:
    return decode_access_token(raw.decode("latin-1"), key=KEY, algorithm="HS256", issuer=ISSUER)


@settings(max_examples=500)
@given(mutations())
def test_a_mutated_token_is_rejected_or_decodes_to_the_same_claims(mutated: bytes) -> None:
    try:
        claims = _decode(mutated)
    except TokenError:
        return
    # Only a no-op survives: the same bytes, or base64url's unused low bits of the last
    # character of a segment (which decode to the same bytes).
    assert claims == CLAIMS, (mutated, claims)


@pytest.mark.parametrize("segment", [0, 1, 2])
def test_every_single_character_change_in_a_segment_is_rejected_or_a_no_op(segment: int) -> None:
    parts = TOKEN.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, original in enumerate(parts[segment]):
        for c in alphabet:
            if c == original:
                continue
            changed = list(parts)
            changed[segment] = parts[segment][:i] + c + parts[segment][i + 1 :]
            try:
                claims = _decode(".".join(changed).encode())
            except TokenError:
                continue
            assert claims == CLAIMS
            # Accepted changes can only be in the last character (its padding bits).
            assert i == len(parts[segment]) - 1, (segment, i, c)


def test_the_unmutated_token_decodes() -> None:
    assert CLAIMS.user_id == 42
    assert CLAIMS.role == "admin"
