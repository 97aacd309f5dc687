"""Broker fills applied to the books: orders, trades, positions and the ledger.

:func:`apply_fills` applies one or many fills in ONE transaction, the caller's (the OMS
commits): the paper engine hands it every fill one quote produced, so a burst of orders costs
one commit per quote rather than one per fill. All or nothing: a fill that cannot be applied
(no funds for it, an order not live) raises, and the caller rolls the whole batch back (the
engine then applies the fills one by one, each with its own outcome).

Locks, in the order every other writer takes them too (no deadlock): all the batch's orders
first (one statement), then each fill's position row, then the ledger balances it posts to.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from quantdesk.core import ledger
from quantdesk.core import orders as core
from quantdesk.core.charges import PAISA
from quantdesk.core.orders import Order, Product, Side
from quantdesk.core.positions import Fill, Position
from quantdesk.errors import NotFound
from quantdesk.orders import same_day
from quantdesk.orders.models import OrderEventRow, OrderRow, PositionRow, TradeRow
from quantdesk.wallet import service as wallet_service

if TYPE_CHECKING:
    from quantdesk.orders.service import Oms

VENUE: Final = "paper"
_IST: Final = ZoneInfo("Asia/Kolkata")
_ZERO: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class FillRequest:
    """One broker fill: ``broker_trade_id`` is the broker's unique id for it (a fill seen
    before is not applied again)."""

    order_id: str
    quantity: int
    price: Decimal
    broker_trade_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Applied:
    """What one fill did: ``applied`` is False for a broker trade id seen before."""

    applied: bool
    order: Order
    trade: TradeRow | None = None


@dataclass(frozen=True, slots=True)
class Effect:
    """A fill applied: the rows it changed, for the events published after the commit."""

    row: OrderRow
    trade: TradeRow
    position: PositionRow
    reason: str


async def lock_orders(db: AsyncSession, order_ids: Sequence[str]) -> dict[str, OrderRow]:
    """The orders, locked for this transaction, read fresh: ``SELECT ... FOR UPDATE`` on
    PostgreSQL (in id order); on SQLite a no-op UPDATE takes the write lock first."""
    ids = sorted(set(order_ids))
    q = select(OrderRow).where(OrderRow.id.in_(ids)).order_by(OrderRow.id)
    if db.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    else:
        await db.execute(
            update(OrderRow)
            .where(OrderRow.id.in_(ids))
            .values(updated_at=OrderRow.updated_at)
            .execution_options(synchronize_session=False)
        )
    rows = (await db.execute(q.execution_options(populate_existing=True))).scalars()
    return {row.id: row for row in rows}


async def apply_fills(
    oms: Oms, db: AsyncSession, requests: Sequence[FillRequest]
) -> tuple[list[Applied], list[Effect]]:
    """Apply ``requests`` in order in the caller's transaction (flushed, not committed): per
    fill the order and its event, the trade, the position, the trade entry (releasing the hold
    for what the fill spent) and one entry per charge component (the order's cumulative charges
    minus those already posted, plus the DP charge on a scrip's first delivery sell of the day);
    for a CNC fill, the adjustment recharging the day's same-day square-off as intraday
    (:mod:`.same_day`). A ``broker_trade_id`` seen before changes nothing (``applied`` False)."""
    rows = await lock_orders(db, [r.order_id for r in requests])
    seen = await _seen_trades(db, [r.broker_trade_id for r in requests])
    results: list[Applied] = []
    effects: list[Effect] = []
    for req in requests:
        row = rows.get(req.order_id)
        if row is None:
            raise NotFound(
                "No such order.", code="ORDER_NOT_FOUND", details={"order_id": req.order_id[:64]}
            )
        if req.broker_trade_id in seen:
            results.append(Applied(False, _core(row)))
            continue
        seen.add(req.broker_trade_id)
        applied, effect = await _apply_one(oms, db, row, req)
        results.append(applied)
        effects.append(effect)
    return results, effects


def _core(row: OrderRow) -> Order:
    from quantdesk.orders.service import to_core

    return to_core(row)


async def _apply_one(
    oms: Oms, db: AsyncSession, row: OrderRow, req: FillRequest
) -> tuple[Applied, Effect]:
    quantity, price, at = req.quantity, req.price, req.at
    old = _core(row)
    new, event = core.fill(old, quantity, price, req.broker_trade_id, at=at)
    day = at.astimezone(_IST).date()
    fees = oms.order_charges(new, day) - oms.order_charges(old, day)
    first_delivery_sell = (
        old.product is Product.CNC
        and old.side is Side.SELL
        and not await _sold_delivery_today(db, row.user_id, row.symbol, at)
    )
    if first_delivery_sell:
        fees = fees + oms.calculator.dp_charges(day)
    position = await _locked_position(db, row.user_id, row.symbol, row.product, at)
    before = Position(
        row.symbol, position.quantity, position.open_cost, position.realised_pnl, position.fees
    )
    folded = before.apply(
        Fill(row.symbol, old.side, quantity, price, fees.total, req.broker_trade_id)
    )
    last = not new.is_live
    memo = f"{old.side.lower()} {quantity} {row.symbol} @ {price} ({req.broker_trade_id})"
    if old.product is Product.MIS:
        trade_entry, margin = _intraday_entry(
            oms, row, before, folded, quantity, price, fees.total, position.margin, last, memo
        )
    else:
        spent = fees.total + (price * quantity if old.side is Side.BUY else _ZERO)
        released = ledger.release_for_fill(row.held_amount, spent, last=last)
        trade_entry = ledger.settle_fill(
            row.user_id,
            old.side,
            quantity,
            price,
            row.currency,
            venue=VENUE,
            released=released,
            ref=row.id,
            memo=memo,
        )
        margin = position.margin
    trade = TradeRow(
        id=uuid.uuid4().hex,
        order_id=row.id,
        user_id=row.user_id,
        symbol=row.symbol,
        side=row.side,
        product=row.product,
        quantity=quantity,
        price=price,
        fees=fees.total,
        currency=row.currency,
        broker_trade_id=req.broker_trade_id,
        at=at,
    )
    entries = [
        *([] if trade_entry is None else [trade_entry]),
        *ledger.charges(row.user_id, fees.as_dict(), row.currency, ref=row.id),
        *await same_day.adjustment(db, oms.calculator, trade),
    ]
    held = ledger.user_held(row.user_id)
    held_change = sum((p.amount for e in entries for p in e.postings if p.account == held), _ZERO)
    await wallet_service.post_many(db, entries, at=at)
    db.add(trade)
    position.quantity, position.open_cost = folded.quantity, folded.open_cost
    position.realised_pnl, position.fees = folded.realised_pnl, folded.fees
    position.margin, position.updated_at = margin, at
    row.status, row.filled_quantity = new.status.value, new.filled_quantity
    row.filled_value, row.held_amount = new.filled_value, row.held_amount + held_change
    row.updated_at = at
    db.add(event_row(event))
    await db.flush()  # the next fill of the batch sees this one (trades, positions)
    return Applied(True, new, trade), Effect(row, trade, position, event.reason)


def event_row(event: core.OrderEvent) -> OrderEventRow:
    return OrderEventRow(
        order_id=event.order_id,
        action=str(event.action),
        from_status=str(event.from_status),
        to_status=str(event.to_status),
        reason=event.reason[:256],
        quantity=event.quantity,
        price=event.price,
        trade_id=event.trade_id,
        at=event.at,
    )


def _intraday_entry(
    oms: Oms,
    row: OrderRow,
    before: Position,
    after: Position,
    quantity: int,
    price: Decimal,
    fees: Decimal,
    margin: Decimal,
    last: bool,
    memo: str,
) -> tuple[ledger.JournalEntry | None, Decimal]:
    """The trade entry of an MIS fill and the position's margin after it: the part that
    closes unblocks its share of the margin and settles its realised P&L (to the paisa); the
    part that opens blocks value / leverage. The hold releases what the fill needs in cash
    (never more than it still holds; the last fill releases the rest)."""
    closing = before.quantity != 0 and (before.quantity > 0) != (row.side == Side.BUY.value)
    closed = min(quantity, abs(before.quantity)) if closing else 0
    opened = quantity - closed
    if closed == 0:
        margin_out = _ZERO
    elif closed == abs(before.quantity):
        margin_out = margin
    else:
        margin_out = (margin * closed / abs(before.quantity)).quantize(PAISA, ROUND_DOWN)
    margin_in = oms.margin(price * opened) if opened else _ZERO
    realised = (after.realised_pnl - before.realised_pnl).quantize(PAISA, ROUND_HALF_EVEN)
    need = margin_in + fees - margin_out - realised
    released = ledger.release_for_fill(row.held_amount, max(need, _ZERO), last=last)
    entry = ledger.settle_intraday(
        row.user_id,
        row.currency,
        venue=VENUE,
        released=released,
        margin_in=margin_in,
        margin_out=margin_out,
        realised=realised,
        ref=row.id,
        memo=memo,
    )
    return entry, margin - margin_out + margin_in


async def _sold_delivery_today(db: AsyncSession, user_id: int, symbol: str, at: datetime) -> bool:
    """Whether a delivery sell of ``symbol`` already traded on ``at``'s (India) day: the DP
    charge is per scrip per day."""
    start = datetime.combine(at.astimezone(_IST).date(), datetime.min.time(), _IST)
    start = start.astimezone(UTC)
    q = select(func.count()).where(
        TradeRow.user_id == user_id,
        TradeRow.symbol == symbol,
        TradeRow.product == Product.CNC.value,
        TradeRow.side == Side.SELL.value,
        TradeRow.at >= start,
        TradeRow.at < start + timedelta(days=1),
    )
    return bool((await db.execute(q)).scalar_one())


async def _seen_trades(db: AsyncSession, broker_trade_ids: Sequence[str]) -> set[str]:
    """Which of these broker trade ids are stored already (read after the orders' locks: a
    concurrent fill of the same order has committed by then)."""
    q = select(TradeRow.broker_trade_id).where(
        TradeRow.broker_trade_id.in_(sorted(set(broker_trade_ids)))
    )
    return set((await db.execute(q)).scalars())


async def _locked_position(
    db: AsyncSession, user_id: int, symbol: str, product: str, at: datetime
) -> PositionRow:
    """The position row, created flat if missing, locked for this transaction: one upsert on
    PostgreSQL (its no-op update takes the row lock and returns the row); an insert-if-missing
    then a read on SQLite (which holds the write lock already)."""
    values = {
        "user_id": user_id,
        "symbol": symbol,
        "product": product,
        "quantity": 0,
        "open_cost": _ZERO,
        "realised_pnl": _ZERO,
        "fees": _ZERO,
        "margin": _ZERO,
        "updated_at": at,
    }
    if db.get_bind().dialect.name == "postgresql":
        upsert = (
            pg_insert(PositionRow)
            .values(values)
            .on_conflict_do_update(
                index_elements=["user_id", "symbol", "product"],
                set_={"quantity": PositionRow.quantity},  # no change; takes the row lock
            )
            .returning(PositionRow)
        )
        q = select(PositionRow).from_statement(upsert)
    else:
        await db.execute(sqlite_insert(PositionRow).values(values).on_conflict_do_nothing())
        q = select(PositionRow).where(
            PositionRow.user_id == user_id,
            PositionRow.symbol == symbol,
            PositionRow.product == product,
        )
    return (await db.execute(q.execution_options(populate_existing=True))).scalar_one()
