"""The paper account a deployment trades through: the OMS (and the paper broker's book).

Orders carry the deployment in their ``client_order_id`` (``dep-<id>-<n>``): that is the tag
by which the UI, the API and the runner find a deployment's orders and fills.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.core.orders import OrderStatus, OrderType, Product, Side, TimeInForce
from quantdesk.errors import AppError
from quantdesk.observability.audit import Actor
from quantdesk.orders.models import OrderRow, PositionRow, TradeRow
from quantdesk.orders.service import Oms, PlaceRequest
from quantdesk.strategy.context import FillEvent, OrderUpdate
from quantdesk.wallet import service as wallet_service

from .live import Intent, Snapshot

__all__ = ["OmsAccount", "deployment_prefix"]

_LIVE = (OrderStatus.NEW.value, OrderStatus.OPEN.value, OrderStatus.PARTIALLY_FILLED.value)


def deployment_prefix(deployment_id: str) -> str:
    return f"dep-{deployment_id[:16]}-"


class OmsAccount:
    """One user's account, as one deployment sees and trades it."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        oms: Oms,
        *,
        user_id: int,
        deployment_id: str,
        paper: Any = None,
    ) -> None:
        self.sessions = sessions
        self.oms = oms
        self.user_id = user_id
        self.prefix = deployment_prefix(deployment_id)
        self.paper = paper
        self.actor = Actor(user_id, f"deployment:{deployment_id}", None, None)
        self.seen_trades: set[str] | None = None
        self.statuses: dict[str, str] = {}
        self.refusals: list[str] = []  # codes of orders the OMS refused (risk, funds, ...)

    def _mine(self) -> Any:
        return OrderRow.client_order_id.startswith(self.prefix, autoescape=True)

    async def snapshot(self) -> Snapshot:
        async with self.sessions() as db:
            wallets = await wallet_service.wallet(db, self.user_id)
            cash = wallets["INR"].total if "INR" in wallets else Decimal(0)
            positions: dict[str, int] = {}
            for row in (
                await db.execute(select(PositionRow).where(PositionRow.user_id == self.user_id))
            ).scalars():
                positions[row.symbol] = positions.get(row.symbol, 0) + row.quantity
            orders = list(
                (
                    await db.execute(
                        select(OrderRow)
                        .where(OrderRow.user_id == self.user_id, self._mine())
                        .order_by(OrderRow.created_at, OrderRow.id)
                    )
                ).scalars()
            )
            trades = list(
                (
                    await db.execute(
                        select(TradeRow, OrderRow.client_order_id)
                        .join(OrderRow, OrderRow.id == TradeRow.order_id)
                        .where(TradeRow.user_id == self.user_id, self._mine())
                        .order_by(TradeRow.at, TradeRow.id)
                    )
                ).all()
            )
        first = self.seen_trades is None
        seen = self.seen_trades if self.seen_trades is not None else set()
        fills = [
            FillEvent(
                order_id=coid,
                symbol=t.symbol,
                side=t.side,
                quantity=t.quantity,
                price=t.price,
                fees=t.fees,
                time=t.at,
            )
            for t, coid in trades
            if t.id not in seen
        ]
        seen.update(t.id for t, _ in trades)
        self.seen_trades = seen
        updates = []
        for o in orders:
            if self.statuses.get(o.client_order_id) != o.status and o.status not in _LIVE:
                updates.append(_update(o, "", o.updated_at))
            self.statuses[o.client_order_id] = o.status
        if first:  # a (re)start: what happened before is history, not news
            fills, updates = [], []
        open_orders = [_update(o, "open", o.updated_at) for o in orders if o.status in _LIVE]
        return Snapshot(cash, positions, open_orders, fills, updates)

    async def send(self, intents: Sequence[Intent]) -> list[OrderUpdate]:
        refused: list[OrderUpdate] = []
        for intent in intents:
            try:
                if intent.cancel:
                    await self._cancel(intent.client_order_id)
                else:
                    await self._place(intent)
            except AppError as exc:
                self.refusals.append(exc.code)
                if not intent.cancel:
                    refused.append(
                        OrderUpdate(
                            order_id=intent.client_order_id,
                            symbol=intent.symbol,
                            side=intent.side,
                            order_type=intent.order_type,
                            product=intent.product,
                            quantity=intent.quantity,
                            filled_quantity=0,
                            status=OrderStatus.REJECTED.value,
                            reason=f"{exc.code}: {exc}",
                            time=self.oms.clock(),
                            tag=intent.tag,
                        )
                    )
        return refused

    async def _place(self, intent: Intent) -> None:
        request = PlaceRequest(
            intent.symbol,
            Side(intent.side),
            OrderType(intent.order_type),
            intent.quantity,
            Product(intent.product),
            TimeInForce(intent.time_in_force),
            limit_price=None if intent.limit_price is None else str(intent.limit_price),
            stop_price=None if intent.stop_price is None else str(intent.stop_price),
            client_order_id=intent.client_order_id,
        )
        async with self.sessions() as db:
            placed = await self.oms.place(db, self.user_id, request, actor=self.actor)
        self.statuses[intent.client_order_id] = placed.order.status
        if self.paper is not None:
            # In the book before the market moves on (on a replay, the next bar's open).
            await self.paper.refresh(placed.order.id)

    async def _cancel(self, client_order_id: str) -> None:
        async with self.sessions() as db:
            row = (
                await db.execute(
                    select(OrderRow).where(
                        OrderRow.user_id == self.user_id,
                        OrderRow.client_order_id == client_order_id,
                    )
                )
            ).scalar_one_or_none()
            if row is None or row.status not in _LIVE:
                return
            await self.oms.cancel(
                db, row.id, owner_id=self.user_id, actor=self.actor, reason="cancelled by strategy"
            )
        if self.paper is not None:
            await self.paper.refresh(row.id)


def _update(o: OrderRow, reason: str, at: Any) -> OrderUpdate:
    return OrderUpdate(
        order_id=o.client_order_id,
        symbol=o.symbol,
        side=o.side,
        order_type=o.order_type,
        product=o.product,
        quantity=o.quantity,
        filled_quantity=o.filled_quantity,
        status=o.status,
        reason=reason,
        time=at,
    )
