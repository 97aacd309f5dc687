"""User management: create, list, change role or status, reset password."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import anyio
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from quantdesk.auth.models import User
from quantdesk.auth.roles import Role
from quantdesk.auth.security import PasswordPolicyError, check_password_policy, hash_password
from quantdesk.auth.service import revoke_user_sessions
from quantdesk.errors import Conflict, NotFound, ValidationFailed
from quantdesk.observability import audit


async def _hash(password: str, username: str, rounds: int) -> str:
    try:
        check_password_policy(password, username)
    except PasswordPolicyError as exc:
        raise ValidationFailed(str(exc), code="PASSWORD_POLICY") from exc
    return await anyio.to_thread.run_sync(hash_password, password, rounds)


async def create_user(
    db: AsyncSession,
    actor: audit.Actor,
    *,
    username: str,
    password: str,
    role: Role,
    bcrypt_rounds: int,
) -> User:
    username = username.strip().lower()
    pw_hash = await _hash(password, username, bcrypt_rounds)
    now = datetime.now(UTC)
    user = User(
        username=username,
        password_hash=pw_hash,
        role=role.value,
        is_active=True,
        created_at=now,
        updated_at=now,
        password_changed_at=now,
    )
    db.add(user)
    try:
        await db.flush()
    except IntegrityError as exc:
        await db.rollback()
        raise Conflict(f"User {username!r} already exists.", code="USER_EXISTS") from exc
    audit.record(
        db,
        actor,
        "user.create",
        target_type="user",
        target_id=user.id,
        changes={"username": username, "role": role.value},
    )
    await db.commit()
    return user


async def list_users(
    db: AsyncSession, *, limit: int = 100, offset: int = 0
) -> tuple[Sequence[User], int]:
    total = (await db.execute(select(func.count()).select_from(User))).scalar_one()
    rows = (await db.execute(select(User).order_by(User.id).limit(limit).offset(offset))).scalars()
    return rows.all(), total


async def get_user(db: AsyncSession, user_id: int) -> User:
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} not found.", code="USER_NOT_FOUND")
    return user


async def update_user(
    db: AsyncSession,
    actor: audit.Actor,
    user_id: int,
    *,
    role: Role | None = None,
    is_active: bool | None = None,
    password: str | None = None,
    bcrypt_rounds: int,
) -> User:
    user = await get_user(db, user_id)
    if actor.user_id == user.id and (is_active is False or (role and role != Role.ADMIN)):
        # An admin locking themselves out could leave the platform without one.
        raise Conflict("You cannot disable or demote your own account.", code="USER_SELF_LOCKOUT")
    changes: dict[str, object] = {}
    if role is not None and role.value != user.role:
        changes["role"] = {"from": user.role, "to": role.value}
        user.role = role.value
    if is_active is not None and is_active != user.is_active:
        changes["is_active"] = {"from": user.is_active, "to": is_active}
        user.is_active = is_active
    now = datetime.now(UTC)
    if password is not None:
        user.password_hash = await _hash(password, user.username, bcrypt_rounds)
        user.password_changed_at = now
        changes["password"] = "changed"
    if not changes:
        return user
    user.updated_at = now
    if ("is_active" in changes and not user.is_active) or "password" in changes:
        await revoke_user_sessions(db, user.id, "user_updated")
    audit.record(db, actor, "user.update", target_type="user", target_id=user.id, changes=changes)
    await db.commit()
    return user


async def count_users(db: AsyncSession) -> int:
    return (await db.execute(select(func.count()).select_from(User))).scalar_one()
