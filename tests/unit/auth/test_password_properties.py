"""Properties of the password policy and the bcrypt hash/verify round trip (rounds 4)."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quantdesk.auth import security
from quantdesk.auth.security import (
    MAX_PASSWORD_BYTES,
    MIN_PASSWORD_LENGTH,
    PasswordPolicyError,
    check_password_policy,
    hash_password,
    verify_password,
)

ROUNDS = 4
texts = st.text(st.characters(codec="utf-8"), min_size=0, max_size=80)


def policy_ok(password: str, username: str | None = None) -> bool:
    try:
        check_password_policy(password, username)
    except PasswordPolicyError:
        return False
    return True


acceptable = texts.filter(policy_ok)


@settings(max_examples=300)
@given(texts | acceptable, st.none() | st.text(min_size=1, max_size=12))
def test_policy_accepts_exactly_what_its_rules_describe(
    password: str, username: str | None
) -> None:
    expected = (
        len(password) >= MIN_PASSWORD_LENGTH
        and len(password.encode()) <= MAX_PASSWORD_BYTES
        and len(set(password)) >= 4
        and password.lower() not in security._COMMON
        and not (username and username.lower() in password.lower())
    )
    assert policy_ok(password, username) == expected


@settings(max_examples=40, deadline=None)
@given(acceptable)
def test_a_hash_verifies_its_own_password(password: str) -> None:
    assert verify_password(password, hash_password(password, ROUNDS))


@settings(max_examples=60, deadline=None)
@given(acceptable, texts)
def test_a_hash_rejects_any_other_password_the_policy_allows(p: str, q: str) -> None:
    assume(q != p and len(q.encode()) <= MAX_PASSWORD_BYTES)
    assert not verify_password(q, hash_password(p, ROUNDS))


@settings(max_examples=40, deadline=None)
@given(acceptable, st.data())
def test_a_hash_rejects_a_near_miss(p: str, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(p) - 1))
    q = p[:i] + data.draw(st.characters(codec="utf-8").filter(lambda c: c != p[i])) + p[i + 1 :]
    assert not verify_password(q, hash_password(p, ROUNDS))


def test_a_hash_rejects_the_password_with_extra_bytes_after_byte_72() -> None:
    p = "Aa1-" + "x" * (MAX_PASSWORD_BYTES - 4)
    assert len(p.encode()) == MAX_PASSWORD_BYTES and policy_ok(p)
    assert not verify_password(p + "anything", hash_password(p, ROUNDS))


def test_a_malformed_hash_never_verifies() -> None:
    assert not verify_password("correct-horse-battery-9", "not-a-bcrypt-hash")
