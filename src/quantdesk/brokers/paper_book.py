"""The paper engine's book: a resting order, what a quote does to one, and order events read
as book entries (so a new order is booked from its event, without a database read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from quantdesk.core.orders import Order, OrderStatus, OrderType, Product, Side, TimeInForce
from quantdesk.orders.fills import FillRequest


@dataclass
class Resting:
    """A live order in the book: when it was accepted (a quote before that cannot fill it)
    and the worst-case price its hold covers (market protection)."""

    order: Order
    accepted_at: datetime
    hold_price: Decimal | None


@dataclass
class Plan:
    """One order's part of a quote: the fills to apply, then the cancel of the rest (why)."""

    resting: Resting
    fills: list[FillRequest] = field(default_factory=list)
    cancel: str | None = None
    batched: bool = False


def _decimal(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def same_terms(order: Order, m: dict[str, Any]) -> bool:
    """Whether an order event says nothing the book's order does not already have: the same
    terms and status, and no more filled than the book knows."""
    try:
        return (
            m["status"] == order.status.value
            and int(m["filled_quantity"]) <= order.filled_quantity
            and int(m["quantity"]) == order.quantity
            and _decimal(m.get("limit_price")) == order.limit_price
            and _decimal(m.get("stop_price")) == order.stop_price
            and bool(m["triggered"]) == order.triggered
        )
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return False


def resting_from_event(m: dict[str, Any]) -> Resting | None:
    """A new order's book entry from its event (the OMS's ``OrderOut`` frame), or None when
    the event cannot say all: only an unfilled order (its filled value is then exactly zero,
    which the frame's rounded average price could not give back)."""
    if m.get("filled_quantity") != 0:
        return None
    try:
        order = Order(
            id=m["id"],
            client_order_id=m["client_order_id"],
            account=str(m["user_id"]),
            symbol=m["symbol"],
            side=Side(m["side"]),
            order_type=OrderType(m["order_type"]),
            product=Product(m["product"]),
            time_in_force=TimeInForce(m["time_in_force"]),
            quantity=int(m["quantity"]),
            limit_price=_decimal(m.get("limit_price")),
            stop_price=_decimal(m.get("stop_price")),
            filled_quantity=0,
            filled_value=Decimal(0),
            status=OrderStatus(m["status"]),
            triggered=bool(m["triggered"]),
        )
        return Resting(
            order, datetime.fromisoformat(m["created_at"]), _decimal(m.get("hold_price"))
        )
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return None
