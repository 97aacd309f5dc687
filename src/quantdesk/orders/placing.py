"""Placing an order, in two steps that :meth:`Oms.place` and :meth:`Oms.place_many` share.

:func:`prepare` validates what needs no lock (the instrument, tick, lot, band, prices, the
session) and finds a client order id used before. :func:`write`, under the account's wallet
lock in the caller's transaction, runs every check that depends on the account (holdings, the
MIS closable position, the risk gate, funds) BEFORE it writes anything, then stores the order,
its event, its hold and the audit row. So a refusal from :func:`write` leaves the transaction as
it found it, and a basket can go on with its next order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from sqlalchemy.ext.asyncio import AsyncSession

from quantdesk.core import ledger
from quantdesk.core import orders as core
from quantdesk.core.errors import DomainError
from quantdesk.core.orders import Order, Product, Side
from quantdesk.observability import audit
from quantdesk.orders import fills
from quantdesk.orders.models import OrderRow
from quantdesk.wallet import service as wallet_service

if TYPE_CHECKING:
    from quantdesk.orders.service import Oms, Placed, PlaceRequest, _Market

_ZERO: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class Prepared:
    """An order that passed the checks needing no lock."""

    order: Order
    market: _Market
    coid: str
    system: bool
    # CNC: the worst-case price and the hold, known before locking; MIS: after (closable).
    requirement: tuple[Decimal, Decimal] | None

    @property
    def currency(self) -> str:
        return self.market.spec.currency


async def prepare(
    oms: Oms, db: AsyncSession, user_id: int, req: PlaceRequest, now: datetime, *, system: bool
) -> Prepared | Placed:
    """The order validated (AppError if not), or the order placed before with the same
    client order id."""
    from quantdesk.orders.service import Placed, _as_app_error, check_quantity, parse_price

    coid = req.client_order_id or uuid.uuid4().hex
    if req.client_order_id and (existing := await oms._by_client_id(db, user_id, coid)):
        return Placed(existing, False)
    quantity = check_quantity(req.quantity)
    market = await oms._market(db, req.symbol)
    try:
        order = Order(
            id=uuid.uuid4().hex,
            client_order_id=coid,
            account=str(user_id),
            symbol=market.symbol,
            side=req.side,
            order_type=req.order_type,
            product=req.product,
            time_in_force=req.time_in_force,
            quantity=quantity,
            limit_price=parse_price(req.limit_price, "limit_price"),
            stop_price=parse_price(req.stop_price, "stop_price"),
        )
        core.validate_order(order, market.spec, reference_price=market.price)
    except DomainError as exc:
        raise _as_app_error(exc) from exc
    if not system:
        oms._check_session(market.symbol, now)
        if order.product is Product.MIS:
            oms._check_mis_cutoff(market.symbol, now)
    requirement = None
    if order.product is not Product.MIS:
        requirement = oms._requirement(order, market, now)  # fail before locking
    return Prepared(order, market, coid, system, requirement)


async def write(
    oms: Oms,
    db: AsyncSession,
    user_id: int,
    p: Prepared,
    locked: dict[tuple[str, str], Decimal],
    now: datetime,
    *,
    actor: audit.Actor | None,
    system: bool,
) -> tuple[OrderRow, str]:
    """Check against the account, then store the order OPEN with its hold (not committed);
    the row and its transition's reason. ``locked``: the wallet rows locked in this
    transaction, updated in place with the hold."""
    from quantdesk.orders.service import _order_changes, trade_date

    order, market, currency = p.order, p.market, p.currency
    wallet = ledger.wallet(locked, user_id, currency)
    if p.requirement is not None:
        hold_price, amount = p.requirement
    else:
        closable = await oms._closable(db, user_id, order, None)
        hold_price, amount = oms._requirement(order, market, now, closable)
    if order.product is Product.CNC and order.side is Side.SELL:
        core.check_holdings(order, await oms._free_holdings(db, user_id, order.symbol))
    if not system:
        await oms.risk.pre_trade(
            db,
            user_id,
            order,
            value=hold_price * order.quantity,
            reference=market.price,
            marks=oms._marks,
            now=now,
            day=trade_date(now),
        )
    else:
        amount = min(amount, max(wallet.available, _ZERO))
    oms._check_funds(amount, wallet.available, currency)
    # Nothing was written above; from here on the order is stored.
    accepted, event = core.accept(order, at=now)
    row = OrderRow(
        id=order.id,
        user_id=user_id,
        client_order_id=p.coid,
        symbol=order.symbol,
        side=order.side.value,
        order_type=order.order_type.value,
        product=order.product.value,
        time_in_force=order.time_in_force.value,
        quantity=order.quantity,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        filled_quantity=0,
        filled_value=_ZERO,
        status=accepted.status.value,
        triggered=False,
        currency=currency,
        held_amount=amount,
        hold_price=hold_price,
        created_at=now,
        updated_at=now,
    )
    db.add(row)
    # A concurrent request with the same client order id: the unique key refuses this row
    # here (IntegrityError), before anything is held.
    await db.flush()
    db.add(fills.event_row(event))
    if amount > 0:
        entry = ledger.hold(
            user_id,
            amount,
            currency,
            available=wallet.available,
            ref=order.id,
            memo=f"hold for order {order.id}",
        )
        await wallet_service.post(db, entry, lock=False, at=now, known=locked)
    if actor is not None:
        audit.record(
            db,
            actor,
            "order.place",
            target_type="order",
            target_id=order.id,
            changes=_order_changes(row),
            at=now,
        )
    return row, event.reason
