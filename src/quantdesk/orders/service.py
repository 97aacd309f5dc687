"""The order management system: place, modify and cancel orders, apply broker fills, read
orders, trades and positions.

Every write use case is ONE database transaction over orders, order events, trades, positions
and the ledger (posted through :mod:`quantdesk.wallet.service` in the same transaction), and is
committed here. The owner's bus channels hear about it after the commit, best effort.

Locking: a use case on an existing order first takes that order's row (a no-op UPDATE: a row
lock on PostgreSQL, the write lock on SQLite), then the position row, then the ledger balances.
Placing locks the user's wallet first; it never locks an existing order, so lock orders never
cross. Validation rejections (bad input, unknown symbol, market closed, no funds) are 4xx with a
code and write nothing: no order row, no hold (see :mod:`quantdesk.orders.models`).
"""

from __future__ import annotations

import dataclasses
import re
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any, Final
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Select, and_, func, or_, select, tuple_
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from quantdesk.bus.base import EventBus
from quantdesk.core import ledger
from quantdesk.core import orders as core
from quantdesk.core.charges import (
    PAISA,
    Charges,
    ChargesCalculator,
    ChargesError,
    Exchange,
    ExecutedOrder,
    default_calculator,
    segment_for,
)
from quantdesk.core.errors import DomainError
from quantdesk.core.instruments import InstrumentRef, InstrumentSpec, InvalidInstrumentRef
from quantdesk.core.orders import Order, OrderStatus, OrderType, Product, Side, TimeInForce
from quantdesk.core.positions import Fill, day_pnl
from quantdesk.errors import AppError, Conflict, NotFound, ValidationFailed
from quantdesk.market.calendars import CalendarRangeError, exchange_of, get_calendar
from quantdesk.market.models import Instrument
from quantdesk.market.quotes import QuoteCache
from quantdesk.observability import audit
from quantdesk.orders import fills, placing, reasons
from quantdesk.orders.fills import Applied, FillRequest
from quantdesk.orders.models import OrderEventRow, OrderRow, PositionRow, TradeRow
from quantdesk.orders.schemas import (
    MAX_ORDER_QUANTITY,
    OrderOut,
    PositionOut,
    TradeOut,
)
from quantdesk.risk.service import RiskGate
from quantdesk.settings import PaperSession, Settings
from quantdesk.stream.hub import user_channel
from quantdesk.wallet import service as wallet_service
from quantdesk.wallet.schemas import WalletOut

log = structlog.get_logger("quantdesk.orders")

_IST: Final = ZoneInfo("Asia/Kolkata")
_PRICE = re.compile(r"[0-9]{1,10}(\.[0-9]{1,4})?")
_ZERO: Final = Decimal(0)
_LIVE: Final = tuple(s.value for s in core.LIVE_STATUSES)
# How long an instrument's spec and last close are reused before reading them again: the
# instruments master changes when it is loaded (daily), not between two orders.
INSTRUMENT_TTL_SECONDS: Final = 30.0
# Per database (engine): (exchange, symbol) -> (expires at, name, spec, last close) of the
# active instruments as last read; shared by every OMS of the process (one per request).
_CachedInstrument = tuple[float, str, InstrumentSpec, Decimal | None]
_INSTRUMENTS: weakref.WeakKeyDictionary[Engine, dict[tuple[str, str], _CachedInstrument]] = (
    weakref.WeakKeyDictionary()
)


def _instruments(db: AsyncSession) -> dict[tuple[str, str], _CachedInstrument]:
    engine = db.get_bind()
    assert isinstance(engine, Engine)
    return _INSTRUMENTS.setdefault(engine, {})


# --- requests and results ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceRequest:
    symbol: str
    side: Side
    order_type: OrderType
    quantity: int
    product: Product = Product.CNC
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: str | None = None
    stop_price: str | None = None
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class ModifyRequest:
    quantity: int | None = None
    limit_price: str | None = None
    stop_price: str | None = None


@dataclass(frozen=True, slots=True)
class Placed:
    order: OrderRow
    created: bool
    reason: str | None = None  # the stored transition's, for a new order


@dataclass(frozen=True, slots=True)
class Closable:
    """What an MIS order would close of the opposite position: quantity, its average price and
    the margin it blocks per share."""

    quantity: int
    average: Decimal
    margin_per_share: Decimal


@dataclass(frozen=True, slots=True)
class PositionView:
    row: PositionRow
    mark: Decimal | None
    day_pnl: Decimal | None


# --- errors -----------------------------------------------------------------------------------


def _unknown_symbol(symbol: str) -> ValidationFailed:
    return ValidationFailed(
        f"No tradable instrument {symbol!r}.",
        code="ORDER_UNKNOWN_SYMBOL",
        details={"symbol": symbol[:64]},
    )


def _not_found(order_id: str) -> NotFound:
    return NotFound("No such order.", code="ORDER_NOT_FOUND", details={"order_id": order_id[:64]})


def _as_app_error(exc: DomainError) -> AppError:
    return wallet_service.app_error(exc)


# --- parsing ----------------------------------------------------------------------------------


def parse_price(raw: str | None, field: str) -> Decimal | None:
    """A price from decimal text: plain digits, at most four decimals, positive."""
    if raw is None:
        return None
    text = raw.strip()
    if not _PRICE.fullmatch(text):
        raise ValidationFailed(
            f"{field} must be a plain decimal string such as 1500.05",
            code="ORDER_BAD_PRICE",
            details={"field": field, "value": raw[:32]},
        )
    try:
        value = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise ValidationFailed(f"{field} is not a decimal", code="ORDER_BAD_PRICE") from exc
    if value <= 0:
        raise ValidationFailed(
            f"{field} must be greater than zero",
            code="ORDER_BAD_PRICE",
            details={"field": field, "value": raw[:32]},
        )
    return value


def check_quantity(quantity: object) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise ValidationFailed("quantity must be a whole number", code="ORDER_BAD_QUANTITY")
    if not 1 <= quantity <= MAX_ORDER_QUANTITY:
        raise ValidationFailed(
            f"quantity must be between 1 and {MAX_ORDER_QUANTITY}",
            code="ORDER_BAD_QUANTITY",
            details={"quantity": str(quantity)[:32]},
        )
    return quantity


def to_core(row: OrderRow) -> Order:
    return Order(
        id=row.id,
        client_order_id=row.client_order_id,
        account=str(row.user_id),
        symbol=row.symbol,
        side=Side(row.side),
        order_type=OrderType(row.order_type),
        product=Product(row.product),
        time_in_force=TimeInForce(row.time_in_force),
        quantity=row.quantity,
        limit_price=row.limit_price,
        stop_price=row.stop_price,
        filled_quantity=row.filled_quantity,
        filled_value=row.filled_value,
        status=OrderStatus(row.status),
        triggered=row.triggered,
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


def trade_date(at: datetime) -> date:
    """The Indian exchanges' calendar day of an instant (what charges are dated by)."""
    return at.astimezone(_IST).date()


@dataclass(frozen=True, slots=True)
class _Market:
    """What validation and the hold need from the instruments master and the quote cache."""

    symbol: str
    spec: InstrumentSpec
    price: Decimal | None  # the latest quote's last price, else the instrument's last close


# --- the OMS ----------------------------------------------------------------------------------


class Oms:
    """Order use cases. ``quotes`` supplies band references and market prices; ``bus`` (optional)
    receives the order, trade, position and wallet events after each commit."""

    def __init__(
        self,
        settings: Settings,
        *,
        quotes: QuoteCache | None = None,
        bus: EventBus | None = None,
        calculator: ChargesCalculator | None = None,
        clock: Callable[[], datetime] | None = None,
        risk: RiskGate | None = None,
    ) -> None:
        self.settings = settings
        self.quotes = quotes
        self.bus = bus
        self.calculator = calculator or default_calculator()
        self.clock: Callable[[], datetime] = clock or _utc_now
        self.risk = risk or RiskGate()

    # --- placing ------------------------------------------------------------------------------

    async def place(
        self,
        db: AsyncSession,
        user_id: int,
        req: PlaceRequest,
        *,
        actor: audit.Actor | None,
        system: bool = False,
    ) -> Placed:
        """Validate, reserve the worst-case cost (or MIS margin) and charges, store the order
        OPEN; commits.

        A ``client_order_id`` already used by this user returns that order (``created`` False).
        ``system`` is the platform's own order (the MIS square-off): it skips the session
        checks and holds what the account has, up to what the order needs, instead of refusing.
        """
        now = self.clock()
        prepared = await placing.prepare(self, db, user_id, req, now, system=system)
        if isinstance(prepared, Placed):
            return prepared
        try:
            locked = await wallet_service.lock_wallet_rows(db, user_id, prepared.currency)
            row, reason = await placing.write(
                self, db, user_id, prepared, locked, now, actor=actor, system=system
            )
            messages = await self._outbox(db, user_id, order=row, wallet=True, reason=reason)
            await db.commit()
        except IntegrityError:
            await db.rollback()
            if (existing := await self._by_client_id(db, user_id, prepared.coid)) is not None:
                return Placed(existing, False)
            raise
        except DomainError as exc:
            await db.rollback()
            raise _as_app_error(exc) from exc
        except BaseException:
            await db.rollback()
            raise
        log.info("order_placed", order_id=row.id, user_id=user_id, symbol=row.symbol)
        await self._send(messages)
        return Placed(row, True, reason)

    async def place_many(
        self,
        db: AsyncSession,
        user_id: int,
        requests: Sequence[PlaceRequest],
        *,
        actor: audit.Actor | None,
    ) -> list[Placed | AppError]:
        """Place a basket for one account in ONE transaction, each order as :meth:`place`
        would, in order (each sees the holds and orders before it): per request the order
        (``created`` False for a client order id seen before) or its refusal, which stores
        and holds nothing and never blocks the rest. Commits once. If the transaction itself
        fails (a concurrent request took one of the client ids), it is rolled back and the
        orders are placed one by one instead."""
        now = self.clock()
        out: list[Placed | AppError | None] = [None] * len(requests)
        todo: list[tuple[int, placing.Prepared]] = []
        for i, req in enumerate(requests):
            try:
                prepared = await placing.prepare(self, db, user_id, req, now, system=False)
            except AppError as exc:
                out[i] = exc
                continue
            if isinstance(prepared, Placed):
                out[i] = prepared
            else:
                todo.append((i, prepared))
        messages: list[tuple[str, dict[str, Any]]] = []
        try:
            locked: dict[tuple[str, str], Decimal] = {}
            for currency in sorted({p.currency for _, p in todo}):
                locked.update(await wallet_service.lock_wallet_rows(db, user_id, currency))
            for i, prepared in todo:
                try:
                    row, reason = await placing.write(
                        self, db, user_id, prepared, locked, now, actor=actor, system=False
                    )
                except AppError as exc:  # refused before anything was written for it
                    out[i] = exc
                    continue
                except DomainError as exc:
                    out[i] = _as_app_error(exc)
                    continue
                out[i] = Placed(row, True, reason)
                messages += await self._outbox(db, user_id, order=row, reason=reason)
            if todo:
                messages += await self._outbox(db, user_id, wallet=True)
            await db.commit()
        except IntegrityError:
            await db.rollback()
            return [await self._place_or_refusal(db, user_id, r, actor) for r in requests]
        except BaseException:
            await db.rollback()
            raise
        await self._send(messages)
        return [r for r in out if r is not None]

    async def _place_or_refusal(
        self, db: AsyncSession, user_id: int, req: PlaceRequest, actor: audit.Actor | None
    ) -> Placed | AppError:
        try:
            return await self.place(db, user_id, req, actor=actor)
        except AppError as exc:
            return exc

    def _check_session(self, symbol: str, now: datetime) -> None:
        if self.settings.paper_session is PaperSession.ALWAYS:
            return
        try:
            open_now = get_calendar(exchange_of(symbol)).is_open(now)
        except (ValueError, CalendarRangeError):
            open_now = False  # no calendar for the exchange, or a date it does not cover
        if not open_now:
            raise Conflict(
                "The market is closed: orders are accepted during the exchange's session.",
                code="ORDER_MARKET_CLOSED",
                details={"symbol": symbol, "at": now.isoformat()},
            )

    def square_off_at(self, symbol: str, now: datetime) -> datetime | None:
        """When the MIS square-off of ``symbol``'s session at ``now`` starts (None: no session
        today, or the always-open paper session, which never closes)."""
        if self.settings.paper_session is PaperSession.ALWAYS:
            return None
        try:
            session = get_calendar(exchange_of(symbol)).session_for(now)
        except (ValueError, CalendarRangeError):
            return None
        if session is None:
            return None
        return session.close - timedelta(minutes=self.settings.mis_square_off_minutes)

    def _check_mis_cutoff(self, symbol: str, now: datetime) -> None:
        cutoff = self.square_off_at(symbol, now)
        if cutoff is not None and now >= cutoff:
            raise Conflict(
                "Intraday (MIS) orders are closed: open MIS positions are being squared off "
                "before the close.",
                code="ORDER_MIS_CUTOFF",
                details={"symbol": symbol, "square_off_at": cutoff.isoformat()},
            )

    def margin(self, value: Decimal) -> Decimal:
        """The margin an intraday position of ``value`` blocks: value / leverage, rounded up to
        the paisa."""
        return (value / self.settings.mis_leverage).quantize(PAISA, ROUND_CEILING)

    @staticmethod
    def _check_funds(amount: Decimal, available: Decimal, currency: str) -> None:
        if amount <= available:
            return
        raise Conflict(
            f"The order needs {wallet_service.money_str(amount, currency)} {currency}; "
            f"{wallet_service.money_str(available, currency)} is available.",
            code="ORDER_INSUFFICIENT_FUNDS",
            details={
                "currency": currency,
                "required": wallet_service.money_str(amount, currency),
                "available": wallet_service.money_str(available, currency),
            },
        )

    # --- what an order holds ------------------------------------------------------------------

    def _executed(self, order: Order, day: date) -> ExecutedOrder | None:
        """The order's fills so far as the charges model sees them; None when the exchange is
        not one the charges schedule covers (no charges)."""
        exchange = order.symbol.partition(":")[0]
        if exchange not in Exchange.__members__:
            return None
        start = ExecutedOrder.start(segment_for(order.product), exchange, order.side, day)
        if order.filled_quantity == 0:
            return start
        return dataclasses.replace(
            start, quantity=order.filled_quantity, turnover=order.filled_value, fills=1
        )

    def order_charges(self, order: Order, day: date) -> Charges:
        """The charges of the order's fills so far (brokerage is per order, not per fill)."""
        executed = self._executed(order, day)
        if executed is None:
            return Charges()
        try:
            return self.calculator.order_charges(executed)
        except ChargesError as exc:
            raise ValidationFailed(str(exc), code=exc.code) from exc

    def _requirement(
        self, order: Order, market: _Market, now: datetime, closable: Closable | None = None
    ) -> tuple[Decimal, Decimal]:
        """(worst-case price, what to hold for the unfilled rest) plus the charges the rest would
        add: a CNC buy holds its worst-case cost, a CNC sell its charges and the day's DP charge
        (the proceeds come after). An MIS order holds the margin of the worst-case value of
        what it would open, and for what it would close (``closable``: the opposite MIS
        position not already covered by other live orders) the worst-case loss beyond the
        margin that closing unblocks."""
        reference = market.price if market.price is not None else order.limit_price
        if reference is None:
            raise Conflict(
                f"No market price for {order.symbol}: a {order.order_type} order cannot be "
                "valued yet.",
                code="ORDER_NO_MARKET_PRICE",
                details={"symbol": order.symbol},
            )
        worst = core.worst_case_price(order, reference, market.spec)
        remaining = order.remaining_quantity
        charges_price = worst if order.side is Side.BUY else max(worst, reference)
        day = trade_date(now)
        executed = self._executed(order, day)
        extra = _ZERO
        if executed is not None:
            try:
                full = executed.fill(charges_price, remaining)
                extra = (
                    self.calculator.order_charges(full).total
                    - self.calculator.order_charges(executed).total
                )
            except ChargesError as exc:
                raise ValidationFailed(str(exc), code=exc.code) from exc
        if order.product is Product.MIS:
            closing = min(remaining, closable.quantity) if closable is not None else 0
            cost = self.margin(worst * (remaining - closing))
            if closing and closable is not None:
                per_share = (
                    worst - closable.average
                    if order.side is Side.BUY
                    else (closable.average - worst)
                )
                shortfall = (per_share - closable.margin_per_share) * closing
                cost += max(_ZERO, shortfall).quantize(PAISA, ROUND_CEILING)
        elif order.side is Side.BUY:
            cost = worst * remaining
        else:
            cost = self.dp_charge(order, day) if executed is not None else _ZERO
        return worst, cost + extra

    async def _closable(
        self, db: AsyncSession, user_id: int, order: Order, exclude: str | None
    ) -> Closable | None:
        """The part of the user's MIS position in ``order``'s symbol that ``order`` would close:
        the opposite position less what other live MIS orders on the same side already cover."""
        pos = (
            await db.execute(
                select(PositionRow).where(
                    PositionRow.user_id == user_id,
                    PositionRow.symbol == order.symbol,
                    PositionRow.product == Product.MIS.value,
                )
            )
        ).scalar_one_or_none()
        if pos is None or pos.quantity == 0 or (pos.quantity > 0) == (order.side is Side.BUY):
            return None
        q = select(func.coalesce(func.sum(OrderRow.quantity - OrderRow.filled_quantity), 0)).where(
            OrderRow.user_id == user_id,
            OrderRow.symbol == order.symbol,
            OrderRow.product == Product.MIS.value,
            OrderRow.side == order.side.value,
            OrderRow.status.in_(_LIVE),
        )
        if exclude is not None:
            q = q.where(OrderRow.id != exclude)
        covered = int((await db.execute(q)).scalar_one())
        open_qty = abs(pos.quantity)
        return Closable(
            max(0, open_qty - covered),
            pos.open_cost / pos.quantity,
            pos.margin / open_qty,
        )

    def dp_charge(self, order: Order, day: date) -> Decimal:
        """The DP charge a CNC sell may incur on ``day`` (per scrip per day, GST included)."""
        try:
            return self.calculator.dp_charges(day).total
        except ChargesError as exc:
            raise ValidationFailed(str(exc), code=exc.code) from exc

    # --- cancel and modify --------------------------------------------------------------------

    async def cancel(
        self,
        db: AsyncSession,
        order_id: str,
        *,
        owner_id: int | None,
        actor: audit.Actor | None,
        reason: str = "cancelled by user",
    ) -> OrderRow:
        """Cancel a live order and release all it still holds; commits. ``owner_id`` None: any
        user's order (admin, the broker)."""
        return await self._end(db, order_id, owner_id, actor, reason, core.cancel, self.clock())

    async def expire(self, db: AsyncSession, order_id: str, at: datetime, reason: str) -> OrderRow:
        """End a live order whose validity is over (a DAY order after its session's close) and
        release all it still holds; commits."""
        return await self._end(db, order_id, None, None, reason, core.expire, at)

    async def _end(
        self,
        db: AsyncSession,
        order_id: str,
        owner_id: int | None,
        actor: audit.Actor | None,
        reason: str,
        transition: Callable[..., tuple[Order, core.OrderEvent]],
        now: datetime,
    ) -> OrderRow:
        try:
            row = await self._locked(db, order_id, owner_id)
            new, event = transition(to_core(row), at=now, reason=reason)
            if row.held_amount > 0:
                entry = ledger.release(
                    row.user_id,
                    row.held_amount,
                    row.currency,
                    ref=row.id,
                    memo=f"release: order {row.id} {new.status.lower()}",
                )
                await wallet_service.post(db, entry, at=now)
            row.status, row.held_amount, row.updated_at = new.status.value, _ZERO, now
            db.add(fills.event_row(event))
            if actor is not None:
                audit.record(
                    db,
                    actor,
                    "order.cancel",
                    target_type="order",
                    target_id=row.id,
                    changes={"reason": reason, "status": new.status.value},
                    at=now,
                )
            messages = await self._outbox(
                db, row.user_id, order=row, wallet=True, reason=event.reason
            )
            await db.commit()
        except DomainError as exc:
            await db.rollback()
            raise _as_app_error(exc) from exc
        except BaseException:
            await db.rollback()
            raise
        await self._send(messages)
        return row

    async def modify(
        self,
        db: AsyncSession,
        order_id: str,
        req: ModifyRequest,
        *,
        owner_id: int | None,
        actor: audit.Actor | None,
    ) -> OrderRow:
        """Change a live order's quantity and/or prices; the hold moves to exactly what the
        changed order needs (more held, or the excess released); commits."""
        if req.quantity is None and req.limit_price is None and req.stop_price is None:
            raise ValidationFailed(
                "Give quantity, limit_price or stop_price to change.",
                code="ORDER_NOTHING_TO_MODIFY",
            )
        quantity = None if req.quantity is None else check_quantity(req.quantity)
        limit_price = parse_price(req.limit_price, "limit_price")
        stop_price = parse_price(req.stop_price, "stop_price")
        now = self.clock()
        try:
            row = await self._locked(db, order_id, owner_id)
            old = to_core(row)
            new, event = core.modify(
                old, at=now, quantity=quantity, limit_price=limit_price, stop_price=stop_price
            )
            market = await self._market(db, row.symbol)
            core.validate_order(new, market.spec, reference_price=market.price)
            if new.product is Product.CNC and new.side is Side.SELL:
                free = await self._free_holdings(db, row.user_id, row.symbol)
                core.check_holdings(
                    dataclasses.replace(new, quantity=new.remaining_quantity),
                    free + old.remaining_quantity,
                )
            closable = (
                await self._closable(db, row.user_id, new, row.id)
                if new.product is Product.MIS
                else None
            )
            hold_price, need = self._requirement(new, market, now, closable)
            delta = need - row.held_amount
            if delta > 0:
                wallet = await wallet_service.lock_wallet(db, row.user_id, row.currency)
                self._check_funds(delta, wallet.available, row.currency)
                entry = ledger.hold(
                    row.user_id,
                    delta,
                    row.currency,
                    available=wallet.available,
                    ref=row.id,
                    memo=f"hold: order {row.id} modified",
                )
                await wallet_service.post(db, entry, lock=False, at=now)
            elif delta < 0:
                entry = ledger.release(
                    row.user_id, -delta, row.currency, ref=row.id, memo=f"release: order {row.id}"
                )
                await wallet_service.post(db, entry, at=now)
            row.quantity, row.limit_price, row.stop_price = (
                new.quantity,
                new.limit_price,
                new.stop_price,
            )
            row.held_amount, row.hold_price, row.updated_at = need, hold_price, now
            db.add(fills.event_row(event))
            if actor is not None:
                audit.record(
                    db,
                    actor,
                    "order.modify",
                    target_type="order",
                    target_id=row.id,
                    changes=_order_changes(row),
                    at=now,
                )
            messages = await self._outbox(
                db, row.user_id, order=row, wallet=True, reason=event.reason
            )
            await db.commit()
        except DomainError as exc:
            await db.rollback()
            raise _as_app_error(exc) from exc
        except BaseException:
            await db.rollback()
            raise
        await self._send(messages)
        return row

    # --- broker events ------------------------------------------------------------------------

    async def apply_fill(
        self,
        db: AsyncSession,
        order_id: str,
        quantity: int,
        price: Decimal,
        broker_trade_id: str,
        at: datetime,
    ) -> Applied:
        """Apply one broker fill in ONE transaction (see :func:`.fills.apply_fills`); commits.
        A ``broker_trade_id`` seen before changes nothing (``applied`` False)."""
        try:
            (result,) = await self.apply_fills(
                db, [FillRequest(order_id, quantity, price, broker_trade_id, at)]
            )
        except IntegrityError:
            # The same broker trade id applied concurrently: the other one won.
            row = await self._get(db, order_id, None)
            return Applied(False, to_core(row))
        return result

    async def apply_fills(self, db: AsyncSession, requests: Sequence[FillRequest]) -> list[Applied]:
        """Apply broker fills in order in ONE transaction, all or nothing (the first that
        fails rolls back the rest and raises); commits, then publishes each applied fill's
        order, trade and position and each account's wallet (read before the commit, so the
        events cost no transaction of their own)."""
        try:
            results, effects = await fills.apply_fills(self, db, requests)
            messages = await self._fill_messages(db, effects)
            await db.commit()
        except DomainError as exc:
            await db.rollback()
            raise _as_app_error(exc) from exc
        except BaseException:
            await db.rollback()
            raise
        await self._send(messages)
        return results

    async def _fill_messages(
        self, db: AsyncSession, effects: Sequence[fills.Effect]
    ) -> list[tuple[str, dict[str, Any]]]:
        """The events of applied fills: per fill its order and trade; per account its
        positions as they end and its wallet."""
        messages: list[tuple[str, dict[str, Any]]] = []
        positions: dict[int, dict[tuple[str, str], PositionRow]] = {}
        for e in effects:
            messages += await self._outbox(
                db, e.row.user_id, order=e.row, trade=e.trade, reason=e.reason
            )
            positions.setdefault(e.row.user_id, {})[(e.position.symbol, e.position.product)] = (
                e.position
            )
        for user_id, rows in positions.items():
            messages += await self._outbox(db, user_id, positions=list(rows.values()), wallet=True)
        return messages

    async def trigger(self, db: AsyncSession, order_id: str, at: datetime) -> Order:
        """Record that a stop order's stop price traded; commits."""
        try:
            row = await self._locked(db, order_id, None)
            new, event = core.trigger(to_core(row), at=at)
            row.triggered, row.updated_at = True, at
            db.add(fills.event_row(event))
            messages = await self._outbox(db, row.user_id, order=row, reason=event.reason)
            await db.commit()
        except DomainError as exc:
            await db.rollback()
            raise _as_app_error(exc) from exc
        except BaseException:
            await db.rollback()
            raise
        await self._send(messages)
        return new

    # --- reads --------------------------------------------------------------------------------

    async def get(self, db: AsyncSession, order_id: str, owner_id: int | None) -> OrderRow:
        return await self._get(db, order_id, owner_id)

    async def events(self, db: AsyncSession, order_id: str) -> list[OrderEventRow]:
        q = select(OrderEventRow).where(OrderEventRow.order_id == order_id)
        return list((await db.execute(q.order_by(OrderEventRow.id))).scalars())

    async def list_orders(
        self,
        db: AsyncSession,
        user_id: int,
        *,
        statuses: Sequence[OrderStatus] = (),
        symbol: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[tuple[OrderRow, str | None]], str | None]:
        """A user's orders with their last transition's reason, newest first, in any of
        ``statuses`` (all when empty); keyset pagination on (created_at, id)."""
        q = select(OrderRow, reasons.last_reason()).where(OrderRow.user_id == user_id)
        if statuses:
            q = q.where(OrderRow.status.in_(sorted({s.value for s in statuses})))
        if symbol:
            q = q.where(OrderRow.symbol == symbol.strip().upper())
        q = _after(q, OrderRow.created_at, OrderRow.id, cursor)
        q = q.order_by(OrderRow.created_at.desc(), OrderRow.id.desc()).limit(limit + 1)
        rows = [(o, reason) for o, reason in (await db.execute(q)).all()]
        return _page(rows, limit, lambda r: (r[0].created_at, r[0].id))

    async def list_trades(
        self,
        db: AsyncSession,
        user_id: int,
        *,
        symbol: str | None = None,
        order_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[TradeRow], str | None]:
        q = select(TradeRow).where(TradeRow.user_id == user_id)
        if symbol:
            q = q.where(TradeRow.symbol == symbol.strip().upper())
        if order_id:
            q = q.where(TradeRow.order_id == order_id)
        q = _after(q, TradeRow.at, TradeRow.id, cursor)
        q = q.order_by(TradeRow.at.desc(), TradeRow.id.desc()).limit(limit + 1)
        rows = list((await db.execute(q)).scalars())
        return _page(rows, limit, lambda r: (r.at, r.id))

    async def positions(self, db: AsyncSession, user_id: int) -> list[PositionView]:
        """A user's positions with their marks (the latest quote, else the last close) and day
        P&L: today's (India) change in value, the quantity carried in valued at the
        instrument's last close."""
        q = (
            select(PositionRow)
            .where(PositionRow.user_id == user_id)
            .order_by(PositionRow.symbol, PositionRow.product)
        )
        return await self._views(db, user_id, list((await db.execute(q)).scalars()))

    async def _views(
        self, db: AsyncSession, user_id: int, rows: Sequence[PositionRow]
    ) -> list[PositionView]:
        """``rows`` (positions of ``user_id``) with their marks and day P&L: the one computation
        behind the REST view and the WebSocket's position frames."""
        if not rows:
            return []
        symbols = sorted({r.symbol for r in rows})
        marks = await self._marks(db, symbols)
        closes = await self._last_closes(db, symbols)
        start = datetime.combine(trade_date(self.clock()), datetime.min.time(), _IST)
        today: dict[tuple[str, str], list[Fill]] = {}
        trades = await db.execute(
            select(TradeRow)
            .where(
                TradeRow.user_id == user_id,
                TradeRow.symbol.in_(symbols),
                TradeRow.at >= start.astimezone(UTC),
            )
            .order_by(TradeRow.at, TradeRow.id)
        )
        for t in trades.scalars():
            today.setdefault((t.symbol, t.product), []).append(
                Fill(t.symbol, Side(t.side), t.quantity, t.price, t.fees, t.broker_trade_id)
            )
        views = []
        for r in rows:
            fills = today.get((r.symbol, r.product), [])
            opening = r.quantity - sum(f.signed_quantity for f in fills)
            mark, close = marks.get(r.symbol), closes.get(r.symbol)
            pnl = None
            if mark is not None and (opening == 0 or close is not None):
                pnl = day_pnl(opening, fills, close or _ZERO, mark)
            views.append(PositionView(r, mark, pnl))
        return views

    async def _last_closes(self, db: AsyncSession, symbols: Sequence[str]) -> dict[str, Decimal]:
        closes: dict[str, Decimal] = {}
        keys = []
        now = time.monotonic()
        for ref in map(InstrumentRef.parse, symbols):
            cached = _instruments(db).get((ref.exchange, ref.symbol))
            if cached is not None and cached[0] > now:
                if cached[3] is not None:
                    closes[cached[1]] = cached[3]
            else:
                keys.append((ref.exchange, ref.symbol))
        if keys:
            q = select(Instrument).where(tuple_(Instrument.exchange, Instrument.symbol).in_(keys))
            for i in (await db.execute(q)).scalars():
                if i.is_active:
                    expires = now + INSTRUMENT_TTL_SECONDS
                    _instruments(db)[(i.exchange, i.symbol)] = (
                        expires,
                        str(i.ref),
                        i.spec(),
                        i.last_price,
                    )
                if i.last_price is not None:
                    closes[str(i.ref)] = i.last_price
        return closes

    async def open_intraday_positions(self, db: AsyncSession) -> list[PositionRow]:
        """Every MIS position not flat (what the square-off closes)."""
        q = (
            select(PositionRow)
            .where(PositionRow.product == Product.MIS.value, PositionRow.quantity != 0)
            .order_by(PositionRow.user_id, PositionRow.symbol)
        )
        return list((await db.execute(q)).scalars())

    async def live_orders_of(
        self, db: AsyncSession, user_id: int, symbol: str, product: Product
    ) -> list[OrderRow]:
        q = select(OrderRow).where(
            OrderRow.user_id == user_id,
            OrderRow.symbol == symbol,
            OrderRow.product == product.value,
            OrderRow.status.in_(_LIVE),
        )
        return list((await db.execute(q)).scalars())

    async def count_client_ids(self, db: AsyncSession, user_id: int, prefix: str) -> int:
        """How many of the user's orders have a ``client_order_id`` starting with ``prefix``."""
        q = select(func.count()).where(
            OrderRow.user_id == user_id,
            OrderRow.client_order_id.startswith(prefix, autoescape=True),
        )
        return int((await db.execute(q)).scalar_one())

    async def open_orders(self, db: AsyncSession) -> list[OrderRow]:
        """Every live order (the paper broker's book at start)."""
        q = select(OrderRow).where(OrderRow.status.in_(_LIVE)).order_by(OrderRow.created_at)
        return list((await db.execute(q)).scalars())

    async def spec(self, db: AsyncSession, symbol: str) -> InstrumentSpec:
        return (await self._market(db, symbol)).spec

    # --- publishing ---------------------------------------------------------------------------

    async def _outbox(
        self,
        db: AsyncSession,
        user_id: int,
        *,
        order: OrderRow | None = None,
        trade: TradeRow | None = None,
        positions: Sequence[PositionRow] = (),
        wallet: bool = False,
        reason: str | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """The bus events of a change, built in its transaction before the commit (the reads
        they need cost no transaction of their own) and sent by :meth:`_send` after it.
        ``reason``: the order's last transition's. Building them never fails the change: an
        error is logged and the events are skipped."""
        if self.bus is None:
            return []
        messages: list[tuple[str, dict[str, Any]]] = []
        try:
            if order is not None:
                body = OrderOut.of(order, reason and reason[:256]).model_dump(mode="json")
                messages.append((user_channel(user_id, "orders"), {"type": "order", **body}))
            if trade is not None:
                body = TradeOut.of(trade).model_dump(mode="json")
                messages.append((user_channel(user_id, "trades"), {"type": "trade", **body}))
            for view in await self._views(db, user_id, positions):
                body = PositionOut.of(view.row, view.mark, view.day_pnl).model_dump(mode="json")
                messages.append((user_channel(user_id, "positions"), {"type": "position", **body}))
            if wallet:
                body = WalletOut.of(user_id, await wallet_service.wallet(db, user_id)).model_dump(
                    mode="json"
                )
                messages.append((user_channel(user_id, "wallet"), {"type": "wallet", **body}))
        except (DBAPIError, OSError):
            raise  # the transaction itself is broken: the change fails with it
        except Exception as exc:
            log.warning("orders_events_failed", user_id=user_id, error=repr(exc))
            return []
        return messages

    async def _send(self, messages: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Best effort, after the commit: a bus hiccup must not turn a done change into an
        error."""
        if self.bus is None or not messages:
            return
        try:
            await self.bus.publish_many(list(messages))
        except Exception as exc:  # any bus failure: logged, never raised
            log.warning("orders_publish_failed", error=repr(exc))

    # --- helpers ------------------------------------------------------------------------------

    async def _market(self, db: AsyncSession, symbol: str) -> _Market:
        try:
            ref = InstrumentRef.parse(symbol)
        except InvalidInstrumentRef as exc:
            raise _unknown_symbol(symbol) from exc
        key = (ref.exchange, ref.symbol)
        cached = _instruments(db).get(key)
        now = time.monotonic()
        if cached is None or cached[0] <= now:
            q = select(Instrument).where(
                Instrument.exchange == ref.exchange, Instrument.symbol == ref.symbol
            )
            inst = (await db.execute(q)).scalar_one_or_none()
            if inst is None or not inst.is_active:
                raise _unknown_symbol(symbol)
            cached = (now + INSTRUMENT_TTL_SECONDS, str(inst.ref), inst.spec(), inst.last_price)
            _instruments(db)[key] = cached
        _, name, spec, last_close = cached
        quote = None if self.quotes is None else await self.quotes.get(name)
        price = quote.last if quote is not None and quote.last > 0 else last_close
        return _Market(name, spec, price)

    async def marks(self, db: AsyncSession, symbols: Sequence[str]) -> dict[str, Decimal]:
        """The latest quote of each symbol, else its last close (symbols with neither: none)."""
        return await self._marks(db, symbols)

    async def _marks(self, db: AsyncSession, symbols: Sequence[str]) -> dict[str, Decimal]:
        if not symbols:
            return {}
        quotes = {} if self.quotes is None else await self.quotes.get_many(symbols)
        marks = {s: q.last for s, q in quotes.items() if q.last > 0}
        missing = [InstrumentRef.parse(s) for s in symbols if s not in marks]
        if missing:
            q = select(Instrument).where(
                tuple_(Instrument.exchange, Instrument.symbol).in_(
                    [(r.exchange, r.symbol) for r in missing]
                )
            )
            for inst in (await db.execute(q)).scalars():
                if inst.last_price is not None:
                    marks[str(inst.ref)] = inst.last_price
        return marks

    async def _by_client_id(self, db: AsyncSession, user_id: int, coid: str) -> OrderRow | None:
        q = select(OrderRow).where(OrderRow.user_id == user_id, OrderRow.client_order_id == coid)
        return (await db.execute(q.execution_options(populate_existing=True))).scalar_one_or_none()

    async def _get(self, db: AsyncSession, order_id: str, owner_id: int | None) -> OrderRow:
        q = select(OrderRow).where(OrderRow.id == order_id)
        row = (await db.execute(q.execution_options(populate_existing=True))).scalar_one_or_none()
        # Another user's order is "not found": its existence is not theirs to learn.
        if row is None or (owner_id is not None and row.user_id != owner_id):
            raise _not_found(order_id)
        return row

    async def _locked(self, db: AsyncSession, order_id: str, owner_id: int | None) -> OrderRow:
        """The order, locked for this transaction (:func:`.fills.lock_orders`); another
        user's order is not found."""
        row = (await fills.lock_orders(db, [order_id])).get(order_id)
        if row is None or (owner_id is not None and row.user_id != owner_id):
            raise _not_found(order_id)
        return row

    async def _free_holdings(self, db: AsyncSession, user_id: int, symbol: str) -> int:
        """Shares a CNC sell may still sell: the long position minus what live CNC sells
        already cover."""
        pos = await db.execute(
            select(PositionRow.quantity).where(
                PositionRow.user_id == user_id,
                PositionRow.symbol == symbol,
                PositionRow.product == Product.CNC.value,
            )
        )
        held = max(pos.scalar_one_or_none() or 0, 0)
        covered = await db.execute(
            select(func.coalesce(func.sum(OrderRow.quantity - OrderRow.filled_quantity), 0)).where(
                OrderRow.user_id == user_id,
                OrderRow.symbol == symbol,
                OrderRow.product == Product.CNC.value,
                OrderRow.side == Side.SELL.value,
                OrderRow.status.in_(_LIVE),
            )
        )
        return held - int(covered.scalar_one())


def _order_changes(row: OrderRow) -> dict[str, Any]:
    return {
        "client_order_id": row.client_order_id,
        "symbol": row.symbol,
        "side": row.side,
        "order_type": row.order_type,
        "product": row.product,
        "quantity": row.quantity,
        "limit_price": None if row.limit_price is None else str(row.limit_price),
        "stop_price": None if row.stop_price is None else str(row.stop_price),
        "held_amount": str(row.held_amount),
    }


# --- keyset pagination ------------------------------------------------------------------------


def encode_cursor(at: datetime, row_id: str) -> str:
    micros = (at - datetime(1970, 1, 1, tzinfo=UTC)) // _MICROSECOND
    return f"{micros}-{row_id}"


_MICROSECOND: Final = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - datetime(
    1970, 1, 1, tzinfo=UTC
)
_MAX_MICROS: Final = 253_402_300_799_000_000  # 9999-12-31


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    micros_text, _, row_id = cursor.partition("-")
    try:
        micros = int(micros_text)
        if not 0 <= micros <= _MAX_MICROS or not row_id:
            raise ValueError(cursor)
    except ValueError as exc:
        raise ValidationFailed("cursor is not a next_cursor value", code="BAD_CURSOR") from exc
    return datetime(1970, 1, 1, tzinfo=UTC) + micros * _MICROSECOND, row_id


def _after(q: Select[Any], at_col: Any, id_col: Any, cursor: str | None) -> Select[Any]:
    if cursor is None:
        return q
    at, row_id = decode_cursor(cursor)
    return q.where(or_(at_col < at, and_(at_col == at, id_col < row_id)))


def _page(rows: list[Any], limit: int, key: Callable[[Any], tuple[datetime, str]]) -> Any:
    page = rows[:limit]
    next_cursor = encode_cursor(*key(page[-1])) if len(rows) > limit else None
    return page, next_cursor
