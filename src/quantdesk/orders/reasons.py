"""Why an order is in its status: the reason of its last stored transition (``order_events``),
for :class:`~quantdesk.orders.schemas.OrderOut`. A page of orders reads it in the same
statement (a correlated subquery per row, on the events' ``order_id`` index), not one query per
order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ScalarSelect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from quantdesk.orders.models import OrderEventRow, OrderRow


def last_reason() -> ScalarSelect[Any]:
    """A column for ``select(OrderRow, last_reason())``: the row's last transition's reason."""
    event = aliased(OrderEventRow)
    return (
        select(event.reason)
        .where(event.order_id == OrderRow.id)
        .order_by(event.id.desc())
        .limit(1)
        .correlate(OrderRow)
        .scalar_subquery()
    )


async def last_reason_of(db: AsyncSession, order_id: str) -> str | None:
    """One order's last transition's reason (None: no stored transition)."""
    q = (
        select(OrderEventRow.reason)
        .where(OrderEventRow.order_id == order_id)
        .order_by(OrderEventRow.id.desc())
        .limit(1)
    )
    return (await db.execute(q)).scalar_one_or_none()
