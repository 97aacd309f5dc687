"""Use cases of authentication: login, refresh rotation with reuse detection, logout, and
resolving the user behind an access token. A refresh presented by cookie is also checked
against its session's CSRF token before anything changes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from quantdesk.auth.models import AuthSession, RefreshToken, User
from quantdesk.auth.roles import Role
from quantdesk.auth.schemas import TokenPair
from quantdesk.auth.security import (
    AccessClaims,
    csrf_token,
    csrf_token_matches,
    encode_access_token,
    hash_password,
    hash_token,
    new_refresh_token,
    verify_password,
)
from quantdesk.auth.throttle import LoginThrottle
from quantdesk.errors import AppError, Forbidden, NotAuthenticated, TooManyRequests
from quantdesk.observability import audit
from quantdesk.settings import Settings

# Verified against when the username is unknown, so both paths cost one bcrypt check and
# response time does not reveal which usernames exist.
_DUMMY_HASH = hash_password("not-a-real-password-0", rounds=4)


@dataclass(frozen=True, slots=True)
class AuthContext:
    settings: Settings
    throttle: LoginThrottle


@dataclass(frozen=True, slots=True)
class Issued:
    """A login's or refresh's result: the tokens, and what the cookie form sets besides."""

    access_token: str
    refresh_token: str
    expires_in: int
    csrf_token: str
    refresh_expires_at: datetime
    issued_at: datetime

    def body(self, *, with_refresh_token: bool = True) -> TokenPair:
        return TokenPair(
            access_token=self.access_token,
            refresh_token=self.refresh_token if with_refresh_token else None,
            expires_in=self.expires_in,
        )


def _now() -> datetime:
    return datetime.now(UTC)


async def login(
    db: AsyncSession,
    ctx: AuthContext,
    actor: audit.Actor,
    username: str,
    password: str,
    user_agent: str | None = None,
) -> Issued:
    s = ctx.settings
    name = username.strip().lower()
    user_key, ip_key = f"user:{name}", f"ip:{actor.ip or '-'}"
    wait = await ctx.throttle.retry_after(
        [(user_key, s.login_max_failures_per_user), (ip_key, s.login_max_failures_per_ip)]
    )
    if wait:
        audit.record(db, actor, "auth.login", changes={"username": name}, outcome="throttled")
        await db.commit()
        raise TooManyRequests(
            "Too many failed logins; try again later.",
            code="AUTH_THROTTLED",
            details={"retry_after_seconds": wait},
            headers={"Retry-After": str(wait)},
        )

    user = (await db.execute(select(User).where(User.username == name))).scalar_one_or_none()
    ok = await anyio.to_thread.run_sync(
        verify_password, password, user.password_hash if user else _DUMMY_HASH
    )
    if user is None or not ok:
        await ctx.throttle.fail([user_key, ip_key])
        audit.record(db, actor, "auth.login", changes={"username": name}, outcome="failed")
        await db.commit()
        raise NotAuthenticated("Invalid username or password.", code="AUTH_INVALID_CREDENTIALS")
    if not user.is_active:
        audit.record(
            db, actor, "auth.login", target_type="user", target_id=user.id, outcome="disabled"
        )
        await db.commit()
        raise NotAuthenticated("This account is disabled.", code="AUTH_USER_DISABLED")

    await ctx.throttle.reset(user_key)
    now = _now()
    sess = AuthSession(
        id=secrets.token_hex(16),
        user_id=user.id,
        created_at=now,
        expires_at=now + timedelta(seconds=s.refresh_token_ttl_seconds),
        ip=actor.ip,
        user_agent=(user_agent or "")[:256] or None,
    )
    db.add(sess)
    issued = _issue(db, s, user, sess, now)
    actor = audit.Actor(user.id, user.username, actor.ip, actor.request_id)
    audit.record(db, actor, "auth.login", target_type="user", target_id=user.id)
    await db.commit()
    return issued


def _issue(db: AsyncSession, s: Settings, user: User, sess: AuthSession, now: datetime) -> Issued:
    raw = new_refresh_token()
    expires_at = min(now + timedelta(seconds=s.refresh_token_ttl_seconds), sess.expires_at)
    db.add(
        RefreshToken(
            token_hash=hash_token(raw),
            session_id=sess.id,
            created_at=now,
            expires_at=expires_at,
        )
    )
    access, _ = encode_access_token(
        user_id=user.id,
        role=user.role,
        session_id=sess.id,
        key=s.jwt_key,
        algorithm=s.jwt_algorithm,
        issuer=s.jwt_issuer,
        ttl=timedelta(seconds=s.access_token_ttl_seconds),
        now=now,
    )
    return Issued(
        access_token=access,
        refresh_token=raw,
        expires_in=s.access_token_ttl_seconds,
        csrf_token=csrf_token(sess.id, s.jwt_key),
        refresh_expires_at=expires_at,
        issued_at=now,
    )


def _invalid_refresh() -> NotAuthenticated:
    return NotAuthenticated("Refresh token is invalid or expired.", code="AUTH_INVALID_REFRESH")


async def refresh(
    db: AsyncSession,
    ctx: AuthContext,
    actor: audit.Actor,
    raw_token: str,
    csrf: str | None = None,
) -> Issued:
    """Spend ``raw_token`` for a new pair of the same session. ``csrf``: the CSRF token that
    came with a refresh by cookie (None for the body form); it must be the session's, checked
    before the token is spent, so a refused request changes nothing."""
    now = _now()
    row = (
        await db.execute(
            select(RefreshToken, AuthSession, User)
            .join(AuthSession, RefreshToken.session_id == AuthSession.id)
            .join(User, AuthSession.user_id == User.id)
            .where(RefreshToken.token_hash == hash_token(raw_token))
        )
    ).one_or_none()
    if row is None:
        raise _invalid_refresh()
    token, sess, user = row
    if csrf is not None and not csrf_token_matches(sess.id, ctx.settings.jwt_key, csrf):
        raise Forbidden("The CSRF token is not this session's.", code="AUTH_CSRF_INVALID")
    if sess.revoked_at is not None or sess.expires_at <= now or not user.is_active:
        raise _invalid_refresh()
    if token.expires_at <= now:
        raise _invalid_refresh()
    # Claim the token atomically: of two concurrent refreshes with it, exactly one wins and
    # the other counts as reuse.
    claimed = await db.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        await _revoke_session(db, sess.id, "refresh_reuse", now)
        who = audit.Actor(user.id, user.username, actor.ip, actor.request_id)
        audit.record(
            db,
            who,
            "auth.refresh_reuse",
            target_type="session",
            target_id=sess.id,
            outcome="revoked",
        )
        await db.commit()
        raise NotAuthenticated(
            "Refresh token was already used; the session has been revoked.",
            code="AUTH_REFRESH_REUSED",
        )
    issued = _issue(db, ctx.settings, user, sess, now)
    await db.commit()
    return issued


async def _revoke_session(db: AsyncSession, session_id: str, reason: str, now: datetime) -> None:
    await db.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


async def revoke_user_sessions(db: AsyncSession, user_id: int, reason: str) -> None:
    await db.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=_now(), revoked_reason=reason)
    )


async def logout(db: AsyncSession, actor: audit.Actor, claims: AccessClaims) -> None:
    await _revoke_session(db, claims.session_id, "logout", _now())
    audit.record(db, actor, "auth.logout", target_type="session", target_id=claims.session_id)
    await db.commit()


async def resolve_user(db: AsyncSession, claims: AccessClaims) -> User:
    """The live user behind a valid access token. Role and status come from the database, so
    disabling a user or changing a role applies to tokens already issued."""
    row = (
        await db.execute(
            select(User, AuthSession.revoked_at, AuthSession.expires_at)
            .join(AuthSession, AuthSession.user_id == User.id)
            .where(User.id == claims.user_id, AuthSession.id == claims.session_id)
        )
    ).one_or_none()
    if row is None:
        raise NotAuthenticated("Access token is invalid.", code="AUTH_INVALID_TOKEN")
    user, revoked_at, expires_at = row
    if revoked_at is not None or expires_at <= _now():
        raise NotAuthenticated("Session has ended; log in again.", code="AUTH_SESSION_REVOKED")
    if not user.is_active:
        raise NotAuthenticated("This account is disabled.", code="AUTH_USER_DISABLED")
    if user.role not in {r.value for r in Role}:  # defensive: corrupt row
        raise AppError("Unknown role.", code="AUTH_BAD_ROLE", status_code=403)
    return user
