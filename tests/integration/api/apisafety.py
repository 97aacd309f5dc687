"""Helpers shared by the API safety tests (imported as a plain module: tests/ has no packages)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.auth import users as users_service
from quantdesk.auth.models import AuthSession, User
from quantdesk.auth.roles import Role
from quantdesk.auth.security import encode_access_token
from quantdesk.observability.audit import Actor, AuditLog
from quantdesk.settings import Settings


class Minter:
    """Creates users and login sessions directly in the database and signs their tokens."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings

    async def user(self, role: Role, password: str, *, name: str | None = None) -> User:
        async with self.sessionmaker() as db:
            return await users_service.create_user(
                db,
                Actor(None, "test", None, None),
                username=name or f"{role.value}_{secrets.token_hex(5)}",
                password=password,
                role=role,
                bcrypt_rounds=4,
            )

    async def session(self, user_id: int) -> str:
        now = datetime.now(UTC)
        sid = secrets.token_hex(16)
        async with self.sessionmaker() as db:
            db.add(
                AuthSession(
                    id=sid, user_id=user_id, created_at=now, expires_at=now + timedelta(hours=1)
                )
            )
            await db.commit()
        return sid

    def sign(
        self,
        user_id: int,
        role: str,
        session_id: str,
        *,
        key: str | None = None,
        now: datetime | None = None,
        ttl: timedelta | None = None,
    ) -> str:
        s = self.settings
        token, _ = encode_access_token(
            user_id=user_id,
            role=role,
            session_id=session_id,
            key=key or s.jwt_key,
            algorithm=s.jwt_algorithm,
            issuer=s.jwt_issuer,
            ttl=ttl or timedelta(seconds=s.access_token_ttl_seconds),
            now=now,
        )
        return token

    async def token(self, user: User) -> str:
        """A fresh, valid access token on a new session of ``user``."""
        return self.sign(user.id, user.role, await self.session(user.id))

    async def set_active(self, user_id: int, active: bool) -> None:
        """Flip ``is_active`` WITHOUT revoking sessions, so the token's only defect is the flag."""
        async with self.sessionmaker() as db:
            await db.execute(update(User).where(User.id == user_id).values(is_active=active))
            await db.commit()

    async def counts(self) -> dict[str, int]:
        async with self.sessionmaker() as db:
            out: dict[str, Any] = {}
            for name, model in (("users", User), ("audit", AuditLog), ("sessions", AuthSession)):
                out[name] = (await db.execute(select(func.count()).select_from(model))).scalar_one()
            return out
