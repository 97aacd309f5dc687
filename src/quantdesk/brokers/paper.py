"""The paper broker: fills live orders against the quotes on the bus with the shared fill model.

One engine per process (DESIGN: exactly one engine per broker account, so fills are never
doubled). It keeps the live orders per symbol in memory: loaded from the database at start,
then kept current by the OMS's order events on ``user:*:orders``. Each quote on ``quotes:*``
runs :func:`quantdesk.core.fills.match` over that symbol's orders and applies what it proposes
through the OMS (trigger, fills, an IOC's cancel). Paper trade ids are ``paper:<order>:<filled
before>``, so a fill replayed after a restart is a no-op (the OMS keys trades by them).

Market protection: a fill beyond the worst-case price the order's hold was computed at (a
market order chasing a runaway price) cancels the rest of the order instead, and so does a fill
the account cannot pay for (an MIS order placed to close a position that other orders closed
first, now opening one without the margin held).

Session deadlines (``QUANTDESK_PAPER_SESSION=calendar``; the always-open session has none), checked
every ``QUANTDESK_PAPER_SWEEP_SECONDS`` by :meth:`PaperBroker.sweep`: a DAY order expires once its
session has closed, and from ``QUANTDESK_MIS_SQUARE_OFF_MINUTES`` before the close each open MIS
position has its live MIS orders cancelled and is closed by a market order (client order id
``squareoff:<date>:<symbol>:<attempt>``).

The book is also re-synced with the database's live orders every
``QUANTDESK_PAPER_SWEEP_SECONDS`` (:meth:`PaperBroker.resync`), whatever the session.

Reconciliation at start: the book is the database's live orders; an IOC order found live lost
its one chance to match while the engine was down and is cancelled, and a DAY order whose
session closed meanwhile expires. Nothing else can be stuck: every broker event was applied in
one transaction, so an order is either live in the book or terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.alerts.model import Alert, AlertKind, AlertSink, Severity
from quantdesk.brokers.paper_book import Plan, Resting, resting_from_event, same_terms
from quantdesk.bus.base import EventBus, Subscription
from quantdesk.core.fills import FillModel, match, volume_delta
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.core.market import QUOTES_CHANNEL_PREFIX, Quote
from quantdesk.core.orders import (
    LIVE_STATUSES,
    Order,
    OrderStatus,
    OrderType,
    Product,
    Side,
    TimeInForce,
)
from quantdesk.errors import AppError
from quantdesk.market.calendars import CalendarRangeError, exchange_of, get_calendar
from quantdesk.market.quotes import QuoteCache
from quantdesk.observability.audit import Actor
from quantdesk.orders.fills import FillRequest
from quantdesk.orders.models import OrderRow, PositionRow
from quantdesk.orders.service import Oms, PlaceRequest, to_core
from quantdesk.settings import PaperSession, Settings
from quantdesk.wallet.service import InsufficientFunds

log = structlog.get_logger("quantdesk.paper")

ORDER_EVENTS = "user:*:orders"
ENDED_MEMORY = 100_000  # ended order ids remembered, so a late event cannot re-book one
ORDER_EVENTS_QUEUE = 1_000_000  # order events must not be dropped (see PaperBroker.start)
ORDER_EVENTS_BATCH = 10_000  # order events booked under one hold of the lock, at most
QUOTES_BATCH = 10_000  # symbols whose queued quotes are coalesced at once, at most
SQUARE_OFF_PREFIX = "squareoff:"
SQUARE_OFF_ATTEMPTS = 3
SYSTEM = Actor(None, "system:paper-engine", None, None)


@dataclass
class SweepReport:
    """What one :meth:`PaperBroker.sweep` (or the start's reconciliation) did."""

    expired: int = 0
    cancelled: int = 0
    squared_off: int = 0


def fill_model(settings: Settings) -> FillModel:
    return settings.paper_fill_model()


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
        self.alerts: AlertSink | None = None  # set by the app: failures are alerted
        self._lock = asyncio.Lock()
        self._ended: OrderedDict[str, None] = OrderedDict()  # recently ended orders' ids
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._subscriptions: list[AbstractAsyncContextManager[Subscription]] = []

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, bus: EventBus) -> None:
        """Subscribe, then load the book in the background (so no order placed in between is
        missed, and an unreachable database delays the engine instead of failing the start).

        Quotes and order events have separate subscriptions: a busy engine skips stale quotes
        (it matches on the newest queued quote of each symbol, and the bus drops a slow
        subscriber's oldest messages), but order events have a queue large enough not to be
        dropped, and the periodic :meth:`resync` with the database's live orders repairs the
        book if one ever is."""
        quotes = bus.subscribe(patterns=[QUOTES_CHANNEL_PREFIX + "*"])
        orders = bus.subscribe(patterns=[ORDER_EVENTS], queue_size=ORDER_EVENTS_QUEUE)
        self._subscriptions = [quotes, orders]
        subs = [await s.__aenter__() for s in self._subscriptions]
        self._task = asyncio.create_task(self._run(*subs), name="paper-broker")

    async def stop(self) -> None:
        for task in (self._sweeper, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._sweeper = None
        for sub in self._subscriptions:
            await sub.__aexit__(None, None, None)
        self._subscriptions = []

    async def _run(self, quotes: Subscription, orders: Subscription) -> None:
        while True:
            try:
                await self.reload()
                break
            except Exception as exc:  # the database is down: messages queue meanwhile
                log.warning("paper_broker_load_failed", error=repr(exc))
                await asyncio.sleep(self.retry_seconds)
        try:
            report = await self.reconcile()
        except Exception as exc:  # logged; the sweeps retry the deadlines
            log.error("paper_broker_reconcile_failed", error=repr(exc))
            report = SweepReport()
        log.info(
            "paper_broker_started",
            orders=sum(len(b) for b in self.book.values()),
            expired=report.expired,
            cancelled=report.cancelled,
            squared_off=report.squared_off,
        )
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="paper-sweeper")
        await asyncio.gather(self._consume_quotes(quotes), self._consume_orders(orders))

    async def _consume_quotes(self, sub: Subscription) -> None:
        """Quotes, each time the newest of each symbol queued: an engine that fell behind
        matches on the market as it is now, not on prices seconds old (an order accepted after
        a stale quote's time could not fill on it anyway). The skipped quotes' volume still
        counts: the volume delta runs from the last quote matched to the newest."""
        async for channel, message in sub:
            newest = {channel: message}
            while len(newest) < QUOTES_BATCH and (more := sub.get_nowait()) is not None:
                newest.pop(more[0], None)  # re-inserted last: symbols keep their arrival order
                newest[more[0]] = more[1]
            for symbol_channel, quote in newest.items():
                try:
                    await self.handle(symbol_channel, quote)
                except Exception as exc:  # one bad message must not stop the engine
                    log.error("paper_broker_message_failed", channel=channel, error=repr(exc))
                    kind, title = AlertKind.SYSTEM_ERROR, "Paper engine: a bus message failed"
                    self._alert(kind, title, exc, "quotes")

    async def _consume_orders(self, sub: Subscription) -> None:
        """Order events, each time with every one queued behind it (:meth:`on_order_events`)."""
        async for channel, message in sub:
            batch = [(channel, message)]
            while len(batch) < ORDER_EVENTS_BATCH and (more := sub.get_nowait()) is not None:
                batch.append(more)
            events = [
                m for _, m in batch if m.get("type") == "order" and isinstance(m.get("id"), str)
            ]
            try:
                await self.on_order_events(events)
            except Exception as exc:  # one bad message must not stop the engine
                log.error("paper_broker_message_failed", channel=channel, error=repr(exc))
                self._alert(
                    AlertKind.SYSTEM_ERROR, "Paper engine: a bus message failed", exc, "user"
                )

    async def handle(self, channel: str, message: dict[str, Any]) -> None:
        if channel.startswith(QUOTES_CHANNEL_PREFIX):
            await self.on_quote(Quote.from_json(message))
        elif message.get("type") == "order" and isinstance(message.get("id"), str):
            await self.on_order_event(message)

    async def on_order_event(self, message: dict[str, Any]) -> None:
        await self.on_order_events([message])

    async def on_order_events(self, messages: list[dict[str, Any]]) -> None:
        """Keep the book current from order events without reading the database where an
        event says all: an ended order leaves the book; a new, unfilled live order is booked
        from the event itself; the engine's own fills are already in the book. Anything else
        (a modification, an event the book cannot place) is read fresh (:meth:`refresh`).
        All of them under one hold of the engine's lock: a burst of orders is booked at once,
        not one event per quote."""
        to_read: dict[str, None] = {}
        async with self._lock:
            for message in messages:
                if (order_id := self._book_event(message)) is not None:
                    to_read[order_id] = None
        for order_id in to_read:
            await self.refresh(order_id)

    def _book_event(self, message: dict[str, Any]) -> str | None:
        """Apply one order event to the book; the order's id if it must be read instead."""
        order_id: str = message["id"]
        try:
            status = OrderStatus(message["status"])
        except (KeyError, ValueError):
            return order_id
        if status not in LIVE_STATUSES:
            self._drop(order_id)
            self._ended[order_id] = None
            while len(self._ended) > ENDED_MEMORY:
                self._ended.popitem(last=False)
            return None
        if order_id in self._ended:
            return None  # a late event of an order that has ended since
        current = self._find(order_id)
        if current is not None:
            # Same terms: the engine's own fill, or an event older than the book.
            return None if same_terms(current.order, message) else order_id
        return None if self._book_from_event(message) else order_id

    def _find(self, order_id: str) -> Resting | None:
        for orders in self.book.values():
            if (resting := orders.get(order_id)) is not None:
                return resting
        return None

    def _book_from_event(self, m: dict[str, Any]) -> bool:
        """Book a new order from its event (True) if the event carries all the book needs
        (:func:`.paper_book.resting_from_event`) and the instrument's spec is known."""
        resting = resting_from_event(m) if m.get("symbol") in self.specs else None
        if resting is None:
            return False
        self.book.setdefault(resting.order.symbol, {})[resting.order.id] = resting
        return True

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

    # --- reconciliation and session deadlines ------------------------------------------------

    async def reconcile(self, now: datetime | None = None) -> SweepReport:
        """At start, after :meth:`reload`: cancel IOC orders left live (their moment passed
        while the engine was down), then apply the session deadlines (:meth:`sweep`)."""
        now = now or self.oms.clock()
        report = SweepReport()
        async with self._lock:
            for orders in list(self.book.values()):
                for resting in list(orders.values()):
                    if resting.order.time_in_force is not TimeInForce.IOC:
                        continue
                    orders.pop(resting.order.id, None)
                    try:
                        await self._cancel(resting, "IOC: not matched before the engine restarted")
                    except AppError as exc:  # ended meanwhile: nothing to reconcile
                        log.warning(
                            "paper_reconcile_skipped", order_id=resting.order.id, error=exc.code
                        )
                        continue
                    report.cancelled += 1
        swept = await self.sweep(now)
        report.expired, report.squared_off = swept.expired, swept.squared_off
        report.cancelled += swept.cancelled
        return report

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.oms.settings.paper_sweep_seconds)
            try:
                await self.resync()
                await self.sweep()
            except Exception as exc:  # the database is down: try again next time
                log.error("paper_sweep_failed", error=repr(exc))

    async def resync(self) -> int:
        """Make the book the database's live orders: add any live order the engine did not
        hear about (an event lost with a dropped bus message or a Redis reconnect), drop any
        that ended; how many were added."""
        async with self._lock, self.sessions() as db:
            live = {row.id: row for row in await self.oms.open_orders(db)}
            known = {oid for orders in self.book.values() for oid in orders}
            missing = [live[oid] for oid in live.keys() - known]
            for row in missing:
                await self._rest(db, row)
            for oid in known - live.keys():
                self._drop(oid)
        if missing:
            log.info("paper_book_resynced", added=len(missing))
        return len(missing)

    async def sweep(self, now: datetime | None = None) -> SweepReport:
        """Expire DAY orders whose session has closed; square off MIS positions from the
        square-off time to the close. Only on the exchange calendar's sessions."""
        now = now or self.oms.clock()
        report = SweepReport()
        if self.oms.settings.paper_session is PaperSession.ALWAYS:
            return report
        async with self._lock:
            for symbol, orders in list(self.book.items()):
                last_close = _previous_close(symbol, now)
                if last_close is None:
                    continue
                for resting in list(orders.values()):
                    day_order = resting.order.time_in_force is TimeInForce.DAY
                    if day_order and resting.accepted_at < last_close:
                        async with self.sessions() as db:
                            await self.oms.expire(
                                db, resting.order.id, now, "DAY order: the session closed"
                            )
                        orders.pop(resting.order.id, None)
                        report.expired += 1
        async with self.sessions() as db:
            positions = await self.oms.open_intraday_positions(db)
        for position in positions:
            cutoff = self.oms.square_off_at(position.symbol, now)
            close = None if cutoff is None else _session_close(position.symbol, now)
            if cutoff is None or close is None or not cutoff <= now < close:
                continue
            try:
                report.squared_off += await self._square_off(position, now)
            except AppError as exc:  # logged; the next sweep tries again
                log.error(
                    "paper_square_off_failed",
                    user_id=position.user_id,
                    symbol=position.symbol,
                    error=exc.code,
                )
                self._alert(
                    AlertKind.ORDER_FAILED,
                    "MIS square-off failed",
                    exc,
                    position.symbol,
                    position.user_id,
                    Severity.CRITICAL,
                )
        if report.expired or report.squared_off:
            log.info("paper_sweep", expired=report.expired, squared_off=report.squared_off)
        return report

    async def _square_off(self, position: PositionRow, now: datetime) -> int:
        """Cancel the position's live MIS orders and close it at market; 0 while an earlier
        square-off order is still working or after the last attempt."""
        async with self.sessions() as db:
            live = await self.oms.live_orders_of(db, position.user_id, position.symbol, Product.MIS)
            day = get_calendar(exchange_of(position.symbol)).local_date(now)
            prefix = f"{SQUARE_OFF_PREFIX}{day.isoformat()}:{position.symbol}:"
            if any(o.client_order_id.startswith(prefix) for o in live):
                return 0
            attempt = await self.oms.count_client_ids(db, position.user_id, prefix)
        if attempt >= SQUARE_OFF_ATTEMPTS:
            return 0
        for order in live:
            async with self.sessions() as db:
                await self.oms.cancel(
                    db, order.id, owner_id=None, actor=SYSTEM, reason="MIS square-off"
                )
            self._drop(order.id)
        request = PlaceRequest(
            position.symbol,
            Side.SELL if position.quantity > 0 else Side.BUY,
            OrderType.MARKET,
            abs(position.quantity),
            Product.MIS,
            TimeInForce.DAY,
            client_order_id=f"{prefix}{attempt}",
        )
        async with self.sessions() as db:
            placed = await self.oms.place(db, position.user_id, request, actor=SYSTEM, system=True)
        await self.refresh(placed.order.id)
        log.info(
            "paper_square_off",
            user_id=position.user_id,
            symbol=position.symbol,
            quantity=position.quantity,
            order_id=placed.order.id,
        )
        return 1

    # --- matching -----------------------------------------------------------------------------

    async def on_quote(self, quote: Quote) -> int:
        """Match the symbol's live orders against ``quote``; the number of fills applied.

        Every fill the quote produces is applied in ONE transaction (:meth:`Oms.apply_fills`);
        if that batch fails (a fill the account cannot pay for, an order that ended
        meanwhile), it is rolled back and the fills are applied one by one, each with its own
        outcome."""
        async with self._lock:
            previous = self.last.get(quote.symbol)
            self.last[quote.symbol] = quote
            orders = self.book.get(quote.symbol)
            if not orders:
                return 0
            traded = volume_delta(previous, quote)
            plans: list[Plan] = []
            for resting in list(orders.values()):
                try:
                    plans.append(await self._plan(resting, quote, traded))
                except Exception as exc:  # logged; the order leaves the book until reloaded
                    self._failed(orders, resting, exc)
            applied = await self._apply_batch(plans)
            for plan in plans:
                try:
                    if not plan.batched:
                        applied += await self._apply_each(plan)
                    if plan.cancel is not None and plan.resting.order.is_live:
                        await self._cancel(plan.resting, plan.cancel)
                except Exception as exc:
                    self._failed(orders, plan.resting, exc)
            for resting in list(orders.values()):
                if not resting.order.is_live:
                    orders.pop(resting.order.id, None)
            self.fills += applied
            return applied

    async def _plan(self, resting: Resting, quote: Quote, traded: int) -> Plan:
        """What ``quote`` does to one order: its trigger (applied now), the fills to apply and
        why the rest is cancelled (market protection, an IOC's remainder)."""
        order = resting.order
        m = match(
            order,
            quote,
            self.specs[order.symbol],
            accepted_at=resting.accepted_at,
            traded_volume=traded,
            model=self.model,
            rng=self.rng,
        )
        if m.triggered:
            async with self.sessions() as db:
                resting.order = await self.oms.trigger(db, order.id, quote.ts)
        plan = Plan(resting)
        filled = resting.order.filled_quantity
        for proposed in m.fills:
            if not self._protected(resting, proposed.price):
                plan.cancel = "market protection: price beyond the held worst case"
                return plan
            trade_id = f"paper:{order.id}:{filled}"
            plan.fills.append(
                FillRequest(order.id, proposed.quantity, proposed.price, trade_id, quote.ts)
            )
            filled += proposed.quantity
        if m.cancel_remainder:
            plan.cancel = "IOC: unfilled remainder cancelled"
        return plan

    async def _apply_batch(self, plans: list[Plan]) -> int:
        """All the plans' fills in one transaction; 0 (and nothing marked batched) if the
        batch failed and was rolled back."""
        requests = [f for p in plans for f in p.fills]
        if len(requests) < 2:
            return 0  # one fill: applied by _apply_each, with its own error handling
        try:
            async with self.sessions() as db:
                results = await self.oms.apply_fills(db, requests)
        except Exception as exc:  # rolled back: each fill is applied on its own instead
            log.warning("paper_batch_fallback", fills=len(requests), error=repr(exc))
            return 0
        by_order = iter(results)
        for plan in plans:
            for _ in plan.fills:
                plan.resting.order = next(by_order).order
            plan.batched = True
        return sum(int(r.applied) for r in results)

    async def _apply_each(self, plan: Plan) -> int:
        resting, order = plan.resting, plan.resting.order
        applied = 0
        for request in plan.fills:
            try:
                async with self.sessions() as db:
                    result = await self.oms.apply_fill(
                        db,
                        order.id,
                        request.quantity,
                        request.price,
                        paper_trade_id(resting.order),
                        request.at,
                    )
            except InsufficientFunds:
                # The hold no longer covers the fill (an MIS order's position changed since it
                # was placed): the venue refuses the trade rather than overdraw the account.
                plan.cancel = "margin shortfall: the fill is not covered by funds"
                self._alert(
                    AlertKind.ORDER_REJECTED,
                    "Fill refused: margin shortfall",
                    None,
                    f"{order.symbol} order {order.id} cancelled",
                    order.account,
                    Severity.WARNING,
                )
                return applied
            resting.order = result.order
            applied += int(result.applied)
        return applied

    def _failed(self, orders: dict[str, Resting], resting: Resting, exc: Exception) -> None:
        log.error("paper_fill_failed", order_id=resting.order.id, error=repr(exc))
        self._alert(
            AlertKind.ORDER_FAILED,
            "Paper fill failed",
            exc,
            f"{resting.order.symbol} order {resting.order.id}",
            resting.order.account,
        )
        orders.pop(resting.order.id, None)

    def _alert(
        self,
        kind: AlertKind,
        title: str,
        exc: Exception | None,
        subject: str,
        user: int | str | None = None,
        severity: Severity = Severity.ERROR,
    ) -> None:
        """Best effort: one alert per kind, user and subject within the dedup window."""
        if self.alerts is None:
            return
        user_id = user if isinstance(user, int) else int(user) if user and user.isdigit() else None
        error = f": {type(exc).__name__}" + (f" {exc.code}" if isinstance(exc, AppError) else "")
        body = subject + (error if exc is not None else "")
        key = f"paper:{kind.value}:{user_id}:{subject}"
        self.alerts.notify(Alert(kind, severity, title, body, user_id, dedup_key=key))

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
    *,
    clock: Callable[[], datetime] | None = None,
) -> PaperBroker:
    """The process's paper engine, subscribed to the bus and loaded with the live orders.
    ``clock`` is the market's time (a replay's, on a replay feed)."""
    oms = Oms(settings, quotes=quotes, bus=bus, clock=clock)
    broker = PaperBroker(sessions, oms, model=fill_model(settings), seed=settings.paper_seed)
    await broker.start(bus)
    return broker


def _previous_close(symbol: str, now: datetime) -> datetime | None:
    try:
        return get_calendar(exchange_of(symbol)).previous_close(now)
    except (ValueError, CalendarRangeError):
        return None


def _session_close(symbol: str, now: datetime) -> datetime | None:
    try:
        session = get_calendar(exchange_of(symbol)).session_for(now)
    except (ValueError, CalendarRangeError):
        return None
    return None if session is None else session.close
