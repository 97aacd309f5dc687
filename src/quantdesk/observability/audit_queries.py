"""Reading the audit trail: filters and keyset pagination (newest first)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from quantdesk.observability.audit import AuditLog
from quantdesk.timeutil import require_aware


class AuditEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor_id: int | None
    actor_username: str | None
    action: str
    target_type: str | None
    target_id: str | None
    ip: str | None
    request_id: str | None
    outcome: str
    changes: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: int | None


async def search(
    db: AsyncSession,
    *,
    actor_id: int | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: int | None = None,
    limit: int = 50,
) -> AuditPage:
    q = select(AuditLog)
    if actor_id is not None:
        q = q.where(AuditLog.actor_id == actor_id)
    if action:
        if action.endswith("."):
            q = q.where(AuditLog.action.startswith(action, autoescape=True))
        else:
            q = q.where(AuditLog.action == action)
    if target_type:
        q = q.where(AuditLog.target_type == target_type)
    if target_id:
        q = q.where(AuditLog.target_id == target_id)
    if (s := require_aware(since, "since")) is not None:
        q = q.where(AuditLog.at >= s)
    if (u := require_aware(until, "until")) is not None:
        q = q.where(AuditLog.at < u)
    if cursor is not None:
        q = q.where(AuditLog.id < cursor)
    rows = (await db.execute(q.order_by(AuditLog.id.desc()).limit(limit + 1))).scalars().all()
    items = [AuditEntry.model_validate(r) for r in rows[:limit]]
    next_cursor = items[-1].id if len(rows) > limit else None
    return AuditPage(items=items, next_cursor=next_cursor)
