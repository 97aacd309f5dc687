"""The audit trail: an append-only record of every state change made by a person.

Rows are only ever inserted (this module has no update or delete), and the migration adds
triggers that make the database itself refuse UPDATE and DELETE on the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from quantdesk.db.base import Base
from quantdesk.db.types import UTCDateTime

# BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements there).
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    actor_username: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), default="success")
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it and from where; built once per request by the API layer."""

    user_id: int | None
    username: str | None
    ip: str | None
    request_id: str | None


SECRET_KEYS = frozenset({"password", "password_hash", "token", "refresh_token", "secret"})


def _scrub(changes: dict[str, Any] | None) -> dict[str, Any] | None:
    if changes is None:
        return None
    return {k: ("***" if k in SECRET_KEYS else v) for k, v in changes.items()}


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    target_type: str | None = None,
    target_id: str | int | None = None,
    changes: dict[str, Any] | None = None,
    outcome: str = "success",
    at: datetime | None = None,
) -> AuditLog:
    """Add an audit row to the caller's transaction: it commits or rolls back with the change."""
    row = AuditLog(
        at=at or datetime.now(UTC),
        actor_id=actor.user_id,
        actor_username=actor.username,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        ip=actor.ip,
        request_id=actor.request_id,
        outcome=outcome,
        changes=_scrub(changes),
    )
    session.add(row)
    return row
