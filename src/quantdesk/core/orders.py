"""Orders and their one state machine (DESIGN invariant 4), plus the checks a new order must pass.

``NEW -> OPEN -> PARTIALLY_FILLED -> FILLED``, or ``-> CANCELLED / EXPIRED / REJECTED``; terminal
states never change. Every transition is a pure function returning the new order and an
:class:`OrderEvent` carrying the time the caller passes in (the core has no clock).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from quantdesk.core.errors import ErrorCode, InvalidInput, InvalidState
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.core.market import round_to_tick

__all__ = [
    "LIVE_STATUSES",
    "TERMINAL_STATUSES",
    "Order",
    "OrderAction",
    "OrderEvent",
    "OrderStatus",
    "OrderType",
    "Product",
    "Side",
    "TimeInForce",
    "accept",
    "cancel",
    "check_holdings",
    "expire",
    "fill",
    "modify",
    "reject",
    "trigger",
    "validate_order",
    "worst_case_price",
]


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell: the signed quantity a fill adds to a position."""
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    SL = "SL"  # stop-limit: becomes a LIMIT at limit_price once stop_price trades
    SL_M = "SL-M"  # stop-market: becomes a MARKET once stop_price trades


class Product(StrEnum):
    CNC = "CNC"  # delivery
    MIS = "MIS"  # intraday


class TimeInForce(StrEnum):
    DAY = "DAY"
    IOC = "IOC"


class OrderStatus(StrEnum):
    NEW = "NEW"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


class OrderAction(StrEnum):
    """What caused an :class:`OrderEvent`."""

    ACCEPT = "ACCEPT"
    FILL = "FILL"
    CANCEL = "CANCEL"
    EXPIRE = "EXPIRE"
    REJECT = "REJECT"
    MODIFY = "MODIFY"
    TRIGGER = "TRIGGER"


LIVE_STATUSES: Final = frozenset({OrderStatus.NEW, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED})
TERMINAL_STATUSES: Final = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED}
)

# Status changes the machine allows; FILL's target (PARTIALLY_FILLED or FILLED) follows from the
# quantities. A rejection after a partial fill is not a thing: the rest is cancelled instead.
_ALLOWED: Final[dict[OrderStatus, frozenset[OrderStatus]]] = {
    OrderStatus.NEW: frozenset(
        {OrderStatus.OPEN, OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED}
    ),
    OrderStatus.OPEN: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.EXPIRED,
            OrderStatus.REJECTED,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.EXPIRED,
        }
    ),
}

_ZERO: Final = Decimal(0)
_HUNDRED: Final = Decimal(100)


def _check_price(value: Decimal | None, field: str) -> None:
    if value is None:
        return
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise InvalidInput(
            ErrorCode.ORDER_BAD_PRICE,
            f"{field} must be a positive decimal",
            {"field": field, "value": str(value)},
        )


def _require(present: bool, field: str, order_type: OrderType) -> None:
    if present:
        return
    raise InvalidInput(
        ErrorCode.ORDER_PRICE_MISSING,
        f"a {order_type} order needs {field}",
        {"field": field, "order_type": str(order_type)},
    )


def _forbid(absent: bool, field: str, order_type: OrderType) -> None:
    if absent:
        return
    raise InvalidInput(
        ErrorCode.ORDER_PRICE_NOT_ALLOWED,
        f"a {order_type} order takes no {field}",
        {"field": field, "order_type": str(order_type)},
    )


def _check_type_prices(
    order_type: OrderType, limit_price: Decimal | None, stop_price: Decimal | None
) -> None:
    needs_limit = order_type in (OrderType.LIMIT, OrderType.SL)
    needs_stop = order_type in (OrderType.SL, OrderType.SL_M)
    if needs_limit:
        _require(limit_price is not None, "limit_price", order_type)
    else:
        _forbid(limit_price is None, "limit_price", order_type)
    if needs_stop:
        _require(stop_price is not None, "stop_price", order_type)
    else:
        _forbid(stop_price is None, "stop_price", order_type)


@dataclass(frozen=True, slots=True)
class Order:
    """One order. Immutable: transitions return a new ``Order``.

    ``filled_value`` is the exact sum of ``quantity * price`` over the fills, so the average fill
    price is the exact volume-weighted mean however many fills there were. ``triggered`` is set
    on SL / SL-M orders once their stop price has traded.
    """

    id: str
    client_order_id: str
    account: str
    symbol: str
    side: Side
    order_type: OrderType
    product: Product
    time_in_force: TimeInForce
    quantity: int
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    filled_quantity: int = 0
    filled_value: Decimal = _ZERO
    status: OrderStatus = OrderStatus.NEW
    triggered: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int):
            raise InvalidInput(ErrorCode.ORDER_BAD_QUANTITY, "quantity must be an integer")
        if self.quantity <= 0:
            raise InvalidInput(
                ErrorCode.ORDER_BAD_QUANTITY,
                "quantity must be positive",
                {"quantity": self.quantity},
            )
        if not 0 <= self.filled_quantity <= self.quantity:
            raise InvalidState(
                ErrorCode.ORDER_OVERFILL,
                "filled quantity must lie between 0 and the order quantity",
                {"quantity": self.quantity, "filled_quantity": self.filled_quantity},
            )
        _check_price(self.limit_price, "limit_price")
        _check_price(self.stop_price, "stop_price")
        _check_type_prices(self.order_type, self.limit_price, self.stop_price)

    @property
    def remaining_quantity(self) -> int:
        """Quantity not filled (still open while the order is live, released once it is not)."""
        return self.quantity - self.filled_quantity

    @property
    def average_fill_price(self) -> Decimal | None:
        """The volume-weighted mean fill price, or None before the first fill."""
        if self.filled_quantity == 0:
            return None
        return self.filled_value / self.filled_quantity

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def is_stop(self) -> bool:
        return self.order_type in (OrderType.SL, OrderType.SL_M)


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One stored transition (DESIGN invariant 4: time and reason).

    ``quantity`` is the fill quantity for FILL and the unfilled quantity given up for CANCEL,
    EXPIRE and REJECT (what the OMS releases the hold for); 0 otherwise.
    """

    order_id: str
    action: OrderAction
    from_status: OrderStatus
    to_status: OrderStatus
    at: datetime
    reason: str = ""
    quantity: int = 0
    price: Decimal | None = None
    trade_id: str | None = None


_ORDER_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Order))
_SET = object.__setattr__


def _copier(changed: tuple[str, ...]) -> Callable[..., Order]:
    """``f(order, *values)``: a copy of ``order`` with the ``changed`` fields set to ``values``,
    as straight-line code over Order's fields (what ``dataclasses`` does for ``__init__``): no
    re-validation (the caller has checked the transition) and no per-field probing.
    ``dataclasses.replace`` re-runs every check and cost ~10 us a transition."""
    lines = [f"def copy(order, {', '.join(changed)}):", "    new = _new(Order)"]
    lines += [f"    _SET(new, {n!r}, {n if n in changed else f'order.{n}'})" for n in _ORDER_FIELDS]
    lines.append("    return new")
    scope: dict[str, Any] = {"_new": object.__new__, "Order": Order, "_SET": _SET}
    exec("\n".join(lines), scope)  # noqa: S102 - code built from the dataclass's own field names
    fn: Callable[..., Order] = scope["copy"]
    return fn


# The transitions' copies: the status alone (most), and the fill state with it.
_with_status: Final = _copier(("status",))
_with_fill: Final = _copier(("status", "filled_quantity", "filled_value"))
_triggered: Final = _copier(("triggered",))


def _guard(order: Order, to: OrderStatus, action: OrderAction, at: datetime) -> None:
    """Refuse a transition the state machine does not allow; terminal states never change."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(ErrorCode.ORDER_BAD_TIME, "event time must be timezone-aware")
    status = order.status
    if status not in LIVE_STATUSES:
        raise InvalidState(
            ErrorCode.ORDER_NOT_LIVE,
            f"order {order.id} is {status} and can no longer change",
            _details(order, action),
        )
    if to is not status and to not in _ALLOWED[status]:
        raise InvalidState(
            ErrorCode.ORDER_BAD_TRANSITION,
            f"cannot {action} an order that is {status}",
            _details(order, action),
        )


def _details(order: Order, action: OrderAction) -> dict[str, str]:
    return {"order_id": order.id, "status": str(order.status), "action": str(action)}


def accept(order: Order, *, at: datetime, reason: str = "accepted") -> tuple[Order, OrderEvent]:
    """NEW -> OPEN: the broker (or the paper broker) acknowledged the order."""
    _guard(order, OrderStatus.OPEN, OrderAction.ACCEPT, at)
    if order.status is not OrderStatus.NEW:
        raise InvalidState(
            ErrorCode.ORDER_BAD_TRANSITION,
            f"order {order.id} is already {order.status}",
            {"order_id": order.id, "status": str(order.status), "action": "ACCEPT"},
        )
    new = _with_status(order, OrderStatus.OPEN)
    return new, _event(order, new, OrderAction.ACCEPT, at, reason)


def fill(
    order: Order, quantity: int, price: Decimal, trade_id: str, *, at: datetime
) -> tuple[Order, OrderEvent]:
    """Apply one trade: OPEN/PARTIALLY_FILLED -> PARTIALLY_FILLED or FILLED.

    Refuses to fill past the order quantity (ORDER_OVERFILL). Applying a trade id only once is
    the OMS's job (it keys trades by the broker's trade id, DESIGN invariant 5).
    """
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise InvalidInput(
            ErrorCode.FILL_BAD_QUANTITY,
            "fill quantity must be a positive integer",
            {"quantity": str(quantity)},
        )
    if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
        raise InvalidInput(
            ErrorCode.FILL_BAD_PRICE, "fill price must be a positive decimal", {"price": str(price)}
        )
    _guard(order, OrderStatus.PARTIALLY_FILLED, OrderAction.FILL, at)
    if order.status is OrderStatus.NEW:
        raise InvalidState(
            ErrorCode.ORDER_BAD_TRANSITION,
            f"order {order.id} must be accepted before it fills",
            {"order_id": order.id, "status": str(order.status), "action": "FILL"},
        )
    if quantity > order.remaining_quantity:
        raise InvalidState(
            ErrorCode.ORDER_OVERFILL,
            f"fill of {quantity} exceeds the {order.remaining_quantity} left on {order.id}",
            {"order_id": order.id, "remaining": order.remaining_quantity, "fill": quantity},
        )
    filled = order.filled_quantity + quantity
    to = OrderStatus.FILLED if filled == order.quantity else OrderStatus.PARTIALLY_FILLED
    new = _with_fill(order, to, filled, order.filled_value + price * quantity)
    reason = "filled" if to is OrderStatus.FILLED else "partially filled"
    return new, _event(order, new, OrderAction.FILL, at, reason, quantity, price, trade_id)


def cancel(order: Order, *, at: datetime, reason: str = "cancelled") -> tuple[Order, OrderEvent]:
    """Any live state -> CANCELLED; the event carries the unfilled quantity given up."""
    return _give_up(order, OrderStatus.CANCELLED, OrderAction.CANCEL, at, reason)


def expire(order: Order, *, at: datetime, reason: str = "expired") -> tuple[Order, OrderEvent]:
    """Any live state -> EXPIRED (end of a DAY order's session)."""
    return _give_up(order, OrderStatus.EXPIRED, OrderAction.EXPIRE, at, reason)


def reject(order: Order, *, at: datetime, reason: str) -> tuple[Order, OrderEvent]:
    """NEW or OPEN -> REJECTED, with the broker's or the risk check's reason."""
    return _give_up(order, OrderStatus.REJECTED, OrderAction.REJECT, at, reason)


def _give_up(
    order: Order, to: OrderStatus, action: OrderAction, at: datetime, reason: str
) -> tuple[Order, OrderEvent]:
    _guard(order, to, action, at)
    new = _with_status(order, to)
    return new, _event(order, new, action, at, reason, order.remaining_quantity)


def modify(
    order: Order,
    *,
    at: datetime,
    quantity: int | None = None,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    reason: str = "modified",
) -> tuple[Order, OrderEvent]:
    """Change quantity and/or prices of a live order; None keeps the current value.

    The new quantity must stay above the filled quantity (ORDER_MODIFY_BELOW_FILLED); type and
    price consistency is re-checked. Run :func:`validate_order` on the result for tick, lot and
    band.
    """
    _guard(order, order.status, OrderAction.MODIFY, at)
    new_quantity = order.quantity if quantity is None else quantity
    if isinstance(new_quantity, int) and 0 < new_quantity <= order.filled_quantity:
        raise InvalidState(
            ErrorCode.ORDER_MODIFY_BELOW_FILLED,
            f"quantity {new_quantity} must exceed the {order.filled_quantity} already filled",
            {"order_id": order.id, "filled_quantity": order.filled_quantity},
        )
    new = dataclasses.replace(
        order,
        quantity=new_quantity,
        limit_price=order.limit_price if limit_price is None else limit_price,
        stop_price=order.stop_price if stop_price is None else stop_price,
    )
    return new, _event(order, new, OrderAction.MODIFY, at, reason)


def trigger(
    order: Order, *, at: datetime, reason: str = "stop triggered"
) -> tuple[Order, OrderEvent]:
    """Mark a live SL / SL-M order as triggered (its status does not change)."""
    _guard(order, order.status, OrderAction.TRIGGER, at)
    if not order.is_stop or order.triggered:
        raise InvalidState(
            ErrorCode.ORDER_NOT_TRIGGERABLE,
            f"order {order.id} is not an untriggered stop order",
            {"order_id": order.id, "order_type": str(order.order_type)},
        )
    new = _triggered(order, True)
    return new, _event(order, new, OrderAction.TRIGGER, at, reason)


def _event(
    old: Order,
    new: Order,
    action: OrderAction,
    at: datetime,
    reason: str,
    quantity: int = 0,
    price: Decimal | None = None,
    trade_id: str | None = None,
) -> OrderEvent:
    return OrderEvent(old.id, action, old.status, new.status, at, reason, quantity, price, trade_id)


# --- checks against an instrument -----------------------------------------------------------


def validate_order(
    order: Order, spec: InstrumentSpec, *, reference_price: Decimal | None = None
) -> None:
    """Raise :class:`InvalidInput` unless the order fits the instrument: whole lots, prices on
    the tick, inside the band around ``reference_price`` (the previous close; no band check
    without it), and a stop-limit whose limit is not on the wrong side of its stop."""
    if not spec.is_valid_quantity(order.quantity):
        raise InvalidInput(
            ErrorCode.ORDER_BAD_QUANTITY,
            f"quantity must be a positive multiple of the lot size {spec.lot_size}",
            {"quantity": order.quantity, "lot_size": spec.lot_size},
        )
    for field, price in (("limit_price", order.limit_price), ("stop_price", order.stop_price)):
        if price is None:
            continue
        if not spec.is_on_tick(price):
            raise InvalidInput(
                ErrorCode.ORDER_PRICE_OFF_TICK,
                f"{field} {price} is not a multiple of the tick size {spec.tick_size}",
                {"field": field, "price": str(price), "tick_size": str(spec.tick_size)},
            )
        band = None if reference_price is None else spec.price_band(reference_price)
        if band is not None and not band[0] <= price <= band[1]:
            raise InvalidInput(
                ErrorCode.ORDER_OUTSIDE_BAND,
                f"{field} {price} is outside the price band {band[0]} - {band[1]}",
                {"field": field, "price": str(price), "low": str(band[0]), "high": str(band[1])},
            )
    _check_stop_limit(order)


def _check_stop_limit(order: Order) -> None:
    # A buy stop-limit triggers when the price rises to the stop, so a limit below the stop could
    # never fill; the mirror holds for sells. Brokers reject these; so do we.
    if order.order_type is not OrderType.SL:
        return
    assert order.limit_price is not None and order.stop_price is not None
    ok = (
        order.limit_price >= order.stop_price
        if order.side is Side.BUY
        else order.limit_price <= order.stop_price
    )
    if not ok:
        relation = "below" if order.side is Side.BUY else "above"
        raise InvalidInput(
            ErrorCode.ORDER_STOP_LIMIT_MISMATCH,
            f"a {order.side} stop-limit's limit price cannot be {relation} its stop price",
            {"limit_price": str(order.limit_price), "stop_price": str(order.stop_price)},
        )


def check_holdings(order: Order, holding_quantity: int) -> None:
    """A CNC (delivery) sell may only sell shares held. ``holding_quantity`` is what is free to
    sell: holdings minus what other open CNC sells already cover (the caller knows that)."""
    if order.product is not Product.CNC or order.side is not Side.SELL:
        return
    if order.quantity > holding_quantity:
        raise InvalidInput(
            ErrorCode.ORDER_INSUFFICIENT_HOLDINGS,
            f"cannot sell {order.quantity} for delivery with {holding_quantity} held",
            {"quantity": order.quantity, "holding_quantity": holding_quantity},
        )


def worst_case_price(
    order: Order,
    market_price: Decimal,
    spec: InstrumentSpec,
    *,
    protection_pct: Decimal = Decimal(5),
) -> Decimal:
    """The highest price a buy may pay (the lowest a sell may get), for holding funds.

    Limit and stop-limit orders are bounded by their limit. Market and stop-market orders are
    bounded by the market (or the stop, if higher for a buy) plus ``protection_pct``, rounded to
    the tick away from the order; a fill model or broker with market protection keeps fills
    inside it.
    """
    if order.limit_price is not None:
        return order.limit_price
    base = market_price
    if order.side is Side.BUY:
        if order.stop_price is not None:
            base = max(base, order.stop_price)
        return round_to_tick(base * (1 + protection_pct / _HUNDRED), spec.tick_size, "up")
    if order.stop_price is not None:
        base = min(base, order.stop_price)
    worst = round_to_tick(base * (1 - protection_pct / _HUNDRED), spec.tick_size, "down")
    return max(worst, spec.tick_size)
