"""The paper broker: fills live orders against the quotes on the bus with the shared fill model.

One engine per process (DESIGN: exactly one engine per broker account, so fills are never
doubled). It keeps the live orders per symbol in memory: loaded from the database at start,
then kept current by the OMS's order events on ``user:*:orders``. Each quote on ``quotes:*``
runs :func:`quantdesk.core.fills.match` over that symbol's orders and applies what it proposes
through the OMS (trigger, fills, an IOC's cancel). Paper trade ids are ``paper:<order>:<filled
before>``, so a fill replayed after a restart is a no-op (the OMS keys trades by them).

Market protection: a fill beyond the worst-case price the order's hold was computed at (a
market order chasing a runaway price) cancels the rest of the order instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.bus.base import EventBus, Subscription
from quantdesk.core.fills import FillModel, match, volume_delta
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.core.market import QUOTES_CHANNEL_PREFIX, Quote
from quantdesk.core.orders import Order, Side
from quantdesk.errors import AppError
from quantdesk.market.quotes import QuoteCache
from quantdesk.orders.models import OrderRow
from quantdesk.orders.service import Oms, to_core
from quantdesk.settings import Settings

log = structlog.get_logger("quantdesk.paper")

ORDER_EVENTS = "user:*:orders"


@dataclass
class Resting:
    order: Order
    accepted_at: datetime
    hold_price: Decimal | None


def fill_model(settings: Settings) -> FillModel:
    return FillModel(
        slippage_ticks=settings.paper_slippage_ticks,
        random_slippage_ticks=settings.paper_random_slippage_ticks,
        max_volume_share=settings.paper_max_volume_share,
        latency=timedelta(milliseconds=settings.paper_latency_ms),
    )


def paper_trade_id(order: Order) -> str:
    return f"paper:{order.id}:{order.filled_quantity}"


class PaperBroker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        oms: Oms,
        *,
        model: FillModel | None = None,
        seed: int = 0,
    ) -> None:
        self.sessions = sessions
        self.oms = oms
        self.model = model or FillModel(max_volume_share=None)
        self.rng = random.Random(seed)
        self.book: dict[str, dict[str, Resting]] = {}
        self.specs: dict[str, InstrumentSpec] = {}
        self.last: dict[str, Quote] = {}
        self.fills = 0
        self.retry_seconds = 5.0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._subscription: AbstractAsyncContextManager[Subscription] | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, bus: EventBus) -> None:
        """Subscribe, then load the book in the background (so no order placed in between is
        missed, and an unreachable database delays the engine instead of failing the start)."""
        self._subscription = bus.subscribe(patterns=[QUOTES_CHANNEL_PREFIX + "*", ORDER_EVENTS])
        sub = await self._subscription.__aenter__()
        self._task = asyncio.create_task(self._run(sub), name="paper-broker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._subscription is not None:
            await self._subscription.__aexit__(None, None, None)
            self._subscription = None

    async def _run(self, sub: Subscription) -> None:
        while True:
            try:
                await self.reload()
                break
            except Exception as exc:  # the database is down: messages queue meanwhile
                log.warning("paper_broker_load_failed", error=repr(exc))
                await asyncio.sleep(self.retry_seconds)
        log.info("paper_broker_started", orders=sum(len(b) for b in self.book.values()))
        async for channel, message in sub:
            try:
                await self.handle(channel, message)
            except Exception as exc:  # one bad message must not stop the engine
                log.error("paper_broker_message_failed", channel=channel, error=repr(exc))

    async def handle(self, channel: str, message: dict[str, Any]) -> None:
        if channel.startswith(QUOTES_CHANNEL_PREFIX):
            await self.on_quote(Quote.from_json(message))
        elif message.get("type") == "order" and isinstance(message.get("id"), str):
            await self.refresh(message["id"])

    # --- the book -----------------------------------------------------------------------------

    async def reload(self) -> None:
        async with self._lock, self.sessions() as db:
            rows = await self.oms.open_orders(db)
            self.book = {}
            for row in rows:
                await self._rest(db, row)

    async def refresh(self, order_id: str) -> None:
        """Bring one order up to date from the database (placed, modified, ended)."""
        async with self._lock, self.sessions() as db:
            self._drop(order_id)
            try:
                row = await self.oms.get(db, order_id, None)
            except AppError:
                return
            if to_core(row).is_live:
                await self._rest(db, row)

    async def _rest(self, db: AsyncSession, row: OrderRow) -> None:
        if row.symbol not in self.specs:
            try:
                self.specs[row.symbol] = await self.oms.spec(db, row.symbol)
            except AppError:
                log.warning("paper_order_without_instrument", order_id=row.id, symbol=row.symbol)
                return
        self.book.setdefault(row.symbol, {})[row.id] = Resting(
            to_core(row), row.created_at, row.hold_price
        )

    def _drop(self, order_id: str) -> None:
        for orders in self.book.values():
            orders.pop(order_id, None)

    # --- matching -----------------------------------------------------------------------------

    async def on_quote(self, quote: Quote) -> int:
        """Match the symbol's live orders against ``quote``; the number of fills applied."""
        async with self._lock:
            previous = self.last.get(quote.symbol)
            self.last[quote.symbol] = quote
            orders = self.book.get(quote.symbol)
            if not orders:
                return 0
            traded = volume_delta(previous, quote)
            applied = 0
            for resting in list(orders.values()):
                try:
                    applied += await self._match(resting, quote, traded)
                except Exception as exc:  # logged; the order leaves the book until reloaded
                    log.error("paper_fill_failed", order_id=resting.order.id, error=repr(exc))
                    orders.pop(resting.order.id, None)
                if not resting.order.is_live:
                    orders.pop(resting.order.id, None)
            self.fills += applied
            return applied

    async def _match(self, resting: Resting, quote: Quote, traded: int) -> int:
        order = resting.order
        spec = self.specs[order.symbol]
        m = match(
            order,
            quote,
            spec,
            accepted_at=resting.accepted_at,
            traded_volume=traded,
            model=self.model,
            rng=self.rng,
        )
        applied = 0
        if m.triggered:
            async with self.sessions() as db:
                resting.order = await self.oms.trigger(db, order.id, quote.ts)
        for proposed in m.fills:
            if not self._protected(resting, proposed.price):
                await self._cancel(resting, "market protection: price beyond the held worst case")
                return applied
            async with self.sessions() as db:
                result = await self.oms.apply_fill(
                    db,
                    order.id,
                    proposed.quantity,
                    proposed.price,
                    paper_trade_id(resting.order),
                    quote.ts,
                )
            resting.order = result.order
            applied += int(result.applied)
        if m.cancel_remainder and resting.order.is_live:
            await self._cancel(resting, "IOC: unfilled remainder cancelled")
        return applied

    @staticmethod
    def _protected(resting: Resting, price: Decimal) -> bool:
        cap = resting.hold_price
        if cap is None:
            return True
        return price <= cap if resting.order.side is Side.BUY else price >= cap

    async def _cancel(self, resting: Resting, reason: str) -> None:
        async with self.sessions() as db:
            row = await self.oms.cancel(
                db, resting.order.id, owner_id=None, actor=None, reason=reason
            )
        resting.order = dataclasses.replace(resting.order, status=to_core(row).status)


async def start_paper_broker(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    bus: EventBus,
    quotes: QuoteCache | None,
) -> PaperBroker:
    """The process's paper engine, subscribed to the bus and loaded with the live orders."""
    oms = Oms(settings, quotes=quotes, bus=bus)
    broker = PaperBroker(sessions, oms, model=fill_model(settings), seed=settings.paper_seed)
    await broker.start(bus)
    return broker
