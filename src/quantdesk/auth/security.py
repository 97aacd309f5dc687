"""Password hashing (bcrypt), the password policy, JWT access tokens and CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import jwt

MIN_PASSWORD_LENGTH = 10
# bcrypt only reads the first 72 bytes; longer passwords would be silently truncated.
MAX_PASSWORD_BYTES = 72
_COMMON = frozenset(
    {
        "password",
        "password1",
        "password123",
        "1234567890",
        "12345678910",
        "qwertyuiop",
        "letmein123",
        "iloveyou12",
        "adminadmin",
        "changeme123",
        "welcome123",
        "quantdesk123",
    }
)


class PasswordPolicyError(ValueError):
    """The password breaks the policy; the message says which rule."""


def check_password_policy(password: str, username: str | None = None) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordPolicyError(f"Password must be at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise PasswordPolicyError(f"Password must be at most {MAX_PASSWORD_BYTES} bytes.")
    if len(set(password)) < 4:
        raise PasswordPolicyError("Password must use at least 4 different characters.")
    if password.lower() in _COMMON:
        raise PasswordPolicyError("Password is too common.")
    if username and username.lower() in password.lower():
        raise PasswordPolicyError("Password must not contain the username.")


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    raw = password.encode()
    # bcrypt reads 72 bytes; anything longer can never be a password we set, and must not
    # match by its first 72 bytes. Still pay for one check, so timing tells nothing.
    too_long = len(raw) > MAX_PASSWORD_BYTES
    try:
        ok = bcrypt.checkpw(raw[:MAX_PASSWORD_BYTES], password_hash.encode())
    except ValueError:
        return False
    return ok and not too_long


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # A refresh token is 256 random bits: a fast hash is enough, no salt needed.
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(session_id: str, key: str) -> str:
    """The CSRF token of a session: an HMAC of its id, so it needs no storage, outlives refresh
    rotation, and a cookie planted by a sibling site cannot carry a valid one."""
    mac = hmac.new(key.encode(), f"csrf:{session_id}".encode(), hashlib.sha256)
    return mac.hexdigest()


def csrf_token_matches(session_id: str, key: str, presented: str) -> bool:
    # Bytes: compare_digest refuses non-ASCII str, and a header may carry any latin-1.
    return hmac.compare_digest(csrf_token(session_id, key).encode(), presented.encode())


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    role: str
    session_id: str
    expires_at: datetime


class TokenError(Exception):
    """The token is missing, malformed, tampered with, of the wrong kind, or expired."""


def encode_access_token(
    *,
    user_id: int,
    role: str,
    session_id: str,
    key: str,
    algorithm: str,
    issuer: str,
    ttl: timedelta,
    now: datetime | None = None,
) -> tuple[str, datetime]:
    now = now or datetime.now(UTC)
    exp = now + ttl
    payload: dict[str, Any] = {
        "sub": str(user_id),
        "role": role,
        "sid": session_id,
        "typ": "access",
        "iss": issuer,
        "iat": int(now.timestamp()),
        "exp": int(exp.timestamp()),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(payload, key, algorithm=algorithm), exp


def decode_access_token(token: str, *, key: str, algorithm: str, issuer: str) -> AccessClaims:
    try:
        # The algorithm list is fixed by us, never read from the token: `alg=none` and
        # algorithm-confusion tokens fail here.
        payload = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            issuer=issuer,
            options={"require": ["exp", "iat", "sub", "sid", "typ", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("Access token has expired.") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("Access token is invalid.") from exc
    if payload.get("typ") != "access":
        raise TokenError("Not an access token.")
    try:
        user_id = int(payload["sub"])
    except (TypeError, ValueError) as exc:
        raise TokenError("Access token is invalid.") from exc
    return AccessClaims(
        user_id=user_id,
        role=str(payload.get("role", "")),
        session_id=str(payload["sid"]),
        expires_at=datetime.fromtimestamp(payload["exp"], UTC),
    )
