"""Pre-trade risk limits and the account-level loss and drawdown rules, pure.

:class:`RiskLimits` holds every limit as optional (None: no limit). Platform defaults and a
per-account override are both ``RiskLimits``; the effective limits are the override's set
fields over the defaults (:meth:`RiskLimits.over`).

:func:`check_order` takes an order's :class:`OrderContext` (what the account holds and does
now, read by the service under the account's lock) and raises :class:`RiskViolation` naming the
first limit it breaks with the numbers. A limit is inclusive: exactly at it passes, one unit
over it fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "LIMIT_FIELDS",
    "HaltKind",
    "OrderContext",
    "RiskLimits",
    "RiskViolation",
    "check_order",
    "drawdown_pct",
    "loss_breached",
]

_ZERO: Final = Decimal(0)
_HUNDRED: Final = Decimal(100)


class HaltKind(StrEnum):
    DAILY_LOSS = "daily_loss"  # resets at the next session
    DRAWDOWN = "drawdown"  # until an admin re-arms the account


class RiskViolation(Exception):
    """An order breaks a limit: ``code`` (``RISK_...``), the ``limit`` name, and the numbers."""

    def __init__(
        self, code: str, limit: str, message: str, *, value: object, allowed: object
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.limit = limit
        self.message = message
        self.details: dict[str, Any] = {
            "limit": limit,
            "value": str(value),
            "allowed": str(allowed),
        }


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Every field optional: None means no limit (or, for an override, "use the default")."""

    max_order_quantity: int | None = None
    max_order_value: Decimal | None = None
    max_position_value: Decimal | None = None
    max_gross_exposure: Decimal | None = None
    max_open_orders: int | None = None
    allowed_exchanges: frozenset[str] | None = None
    allowed_products: frozenset[str] | None = None
    fat_finger_pct: Decimal | None = None
    max_orders_per_minute: int | None = None
    daily_loss_limit: Decimal | None = None
    max_drawdown_pct: Decimal | None = None
    square_off_on_halt: bool | None = None

    def over(self, default: RiskLimits) -> RiskLimits:
        """This override's set fields over ``default``."""
        return RiskLimits(
            **{
                f: getattr(self, f) if getattr(self, f) is not None else getattr(default, f)
                for f in LIMIT_FIELDS
            }
        )

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in LIMIT_FIELDS}

    def replace(self, changes: Mapping[str, Any]) -> RiskLimits:
        return dataclasses.replace(self, **changes)


LIMIT_FIELDS: Final = tuple(f.name for f in dataclasses.fields(RiskLimits))


@dataclass(frozen=True, slots=True)
class OrderContext:
    """One order and the account around it, as the pre-trade check sees them.

    ``value`` is the order's worst-case value (quantity x worst-case price); ``position_value``
    the symbol's absolute position value at the mark after the order would fill, and
    ``gross_exposure`` the account's sum of absolute position values after it; ``reference``
    the last price the fat-finger band is measured from (None: no price, no band check).
    """

    exchange: str
    product: str
    quantity: int
    limit_price: Decimal | None
    value: Decimal
    reference: Decimal | None
    position_value: Decimal
    gross_exposure: Decimal
    open_orders: int
    orders_last_minute: int


def check_order(limits: RiskLimits, ctx: OrderContext) -> None:
    """Raise :class:`RiskViolation` for the first limit ``ctx`` breaks."""
    lim = limits
    if lim.allowed_exchanges is not None and ctx.exchange not in lim.allowed_exchanges:
        raise RiskViolation(
            "RISK_EXCHANGE_NOT_ALLOWED",
            "allowed_exchanges",
            f"{ctx.exchange} is not an allowed exchange for this account",
            value=ctx.exchange,
            allowed=",".join(sorted(lim.allowed_exchanges)),
        )
    if lim.allowed_products is not None and ctx.product not in lim.allowed_products:
        raise RiskViolation(
            "RISK_PRODUCT_NOT_ALLOWED",
            "allowed_products",
            f"{ctx.product} is not an allowed product for this account",
            value=ctx.product,
            allowed=",".join(sorted(lim.allowed_products)),
        )
    if lim.max_order_quantity is not None and ctx.quantity > lim.max_order_quantity:
        raise RiskViolation(
            "RISK_MAX_ORDER_QUANTITY",
            "max_order_quantity",
            f"quantity {ctx.quantity} is over the limit of {lim.max_order_quantity}",
            value=ctx.quantity,
            allowed=lim.max_order_quantity,
        )
    if lim.max_order_value is not None and ctx.value > lim.max_order_value:
        raise RiskViolation(
            "RISK_MAX_ORDER_VALUE",
            "max_order_value",
            f"order value {ctx.value} is over the limit of {lim.max_order_value}",
            value=ctx.value,
            allowed=lim.max_order_value,
        )
    if (
        lim.fat_finger_pct is not None
        and ctx.limit_price is not None
        and ctx.reference is not None
        and ctx.reference > 0
    ):
        off = abs(ctx.limit_price - ctx.reference) * _HUNDRED / ctx.reference
        if off > lim.fat_finger_pct:
            raise RiskViolation(
                "RISK_FAT_FINGER",
                "fat_finger_pct",
                f"limit price {ctx.limit_price} is {off.quantize(Decimal('0.01'))}% from the last "
                f"price {ctx.reference}; the band is {lim.fat_finger_pct}%",
                value=off.quantize(Decimal("0.0001")),
                allowed=lim.fat_finger_pct,
            )
    if lim.max_position_value is not None and ctx.position_value > lim.max_position_value:
        raise RiskViolation(
            "RISK_MAX_POSITION_VALUE",
            "max_position_value",
            f"the position would be worth {ctx.position_value}, over the limit of "
            f"{lim.max_position_value}",
            value=ctx.position_value,
            allowed=lim.max_position_value,
        )
    if lim.max_gross_exposure is not None and ctx.gross_exposure > lim.max_gross_exposure:
        raise RiskViolation(
            "RISK_MAX_GROSS_EXPOSURE",
            "max_gross_exposure",
            f"gross exposure would be {ctx.gross_exposure}, over the limit of "
            f"{lim.max_gross_exposure}",
            value=ctx.gross_exposure,
            allowed=lim.max_gross_exposure,
        )
    if lim.max_open_orders is not None and ctx.open_orders + 1 > lim.max_open_orders:
        raise RiskViolation(
            "RISK_MAX_OPEN_ORDERS",
            "max_open_orders",
            f"{ctx.open_orders} orders are open; the limit is {lim.max_open_orders}",
            value=ctx.open_orders + 1,
            allowed=lim.max_open_orders,
        )
    if lim.max_orders_per_minute is not None and ctx.orders_last_minute + 1 > (
        lim.max_orders_per_minute
    ):
        raise RiskViolation(
            "RISK_ORDER_RATE",
            "max_orders_per_minute",
            f"{ctx.orders_last_minute} orders in the last minute; the limit is "
            f"{lim.max_orders_per_minute} per minute",
            value=ctx.orders_last_minute + 1,
            allowed=lim.max_orders_per_minute,
        )


def loss_breached(session_pnl: Decimal, limit: Decimal | None) -> bool:
    """True when the session's P&L has fallen below ``-limit`` (``limit`` is a positive amount
    of money; a loss of exactly the limit does not halt)."""
    return limit is not None and session_pnl < -limit


def drawdown_pct(equity: Decimal, peak: Decimal) -> Decimal:
    """How far ``equity`` is below ``peak``, in percent of the peak (0 at or above it)."""
    if peak <= 0 or equity >= peak:
        return _ZERO
    return (peak - equity) * _HUNDRED / peak
