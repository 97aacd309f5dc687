"""Fills -> position: signed quantity, average price and realised P&L (DESIGN invariant 6).

Average-cost accounting, long and short. A fill that crosses zero closes the old side at its
average price and opens the new side at the fill price.

Fees are kept apart (``Position.fees``) and never folded into the average price: the average then
matches the broker's and the exchange's figure, the gross P&L stays comparable across brokers
with different charges, and the net figure is one subtraction away (``net_realised_pnl``).

The position stores its open cost (signed ``sum(quantity * price)`` of what is open) rather than
its average, so every figure is a sum of finite decimals: realised + unrealised P&L equals the
mark-to-market P&L of the fills exactly. Only a partial close divides (the cost taken out is
``open cost * closed / open``); that share is rounded to ``COST_QUANTUM``, far below a paisa.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from quantdesk.core.errors import ErrorCode, InvalidInput
from quantdesk.core.orders import Side

__all__ = ["COST_QUANTUM", "Fill", "Position", "day_pnl", "rebuild"]

COST_QUANTUM: Final = Decimal("1E-10")
_ZERO: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class Fill:
    """One trade on one instrument: what positions are folded from. ``fees`` is the sum of its
    charges and taxes (a cost, so zero or positive)."""

    symbol: str
    side: Side
    quantity: int
    price: Decimal
    fees: Decimal = _ZERO
    trade_id: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int):
            raise InvalidInput(ErrorCode.FILL_BAD_QUANTITY, "fill quantity must be an integer")
        if self.quantity <= 0:
            raise InvalidInput(
                ErrorCode.FILL_BAD_QUANTITY,
                "fill quantity must be positive",
                {"quantity": self.quantity},
            )
        if not isinstance(self.price, Decimal) or not self.price.is_finite() or self.price <= 0:
            raise InvalidInput(
                ErrorCode.FILL_BAD_PRICE,
                "fill price must be a positive decimal",
                {"price": str(self.price)},
            )
        if not isinstance(self.fees, Decimal) or not self.fees.is_finite() or self.fees < 0:
            raise InvalidInput(ErrorCode.FILL_BAD_PRICE, "fees must be a non-negative decimal")

    @property
    def signed_quantity(self) -> int:
        return self.side.sign * self.quantity

    @property
    def cash_flow(self) -> Decimal:
        """Cash the trade moves, gross of fees: paid for a buy (negative), received for a sell."""
        return -self.signed_quantity * self.price


@dataclass(frozen=True, slots=True)
class Position:
    """A net position in one symbol. ``quantity`` is signed (negative = short); ``open_cost`` is
    the signed cost of the open quantity; ``realised_pnl`` is gross of fees."""

    symbol: str
    quantity: int = 0
    open_cost: Decimal = _ZERO
    realised_pnl: Decimal = _ZERO
    fees: Decimal = _ZERO

    @property
    def average_price(self) -> Decimal | None:
        """Average entry price of the open quantity; None when flat."""
        if self.quantity == 0:
            return None
        return self.open_cost / self.quantity

    @property
    def net_realised_pnl(self) -> Decimal:
        """Realised P&L after fees."""
        return self.realised_pnl - self.fees

    def unrealised_pnl(self, mark: Decimal) -> Decimal:
        """P&L of the open quantity if it were closed at ``mark`` (gross of fees)."""
        return self.quantity * mark - self.open_cost

    def apply(self, fill: Fill) -> Position:
        """The position after ``fill``; this position is left unchanged."""
        if fill.symbol != self.symbol:
            raise InvalidInput(
                ErrorCode.POSITION_SYMBOL_MISMATCH,
                f"a {fill.symbol} fill cannot change a {self.symbol} position",
                {"position": self.symbol, "fill": fill.symbol},
            )
        delta = fill.signed_quantity
        fees = self.fees + fill.fees
        if self.quantity == 0 or (self.quantity > 0) == (delta > 0):
            return Position(
                self.symbol,
                self.quantity + delta,
                self.open_cost + delta * fill.price,
                self.realised_pnl,
                fees,
            )
        closed = min(abs(delta), abs(self.quantity))
        if closed == abs(self.quantity):
            removed = self.open_cost
        else:
            removed = (self.open_cost * closed / abs(self.quantity)).quantize(
                COST_QUANTUM, ROUND_HALF_EVEN
            )
        # Closing `closed` units: the trade's cash for them minus the cost they carried.
        closing_qty = closed if delta > 0 else -closed
        realised = self.realised_pnl + (-closing_qty * fill.price) - removed
        opened = delta - closing_qty  # nonzero only when the fill flips the position
        return Position(
            self.symbol,
            self.quantity + delta,
            self.open_cost - removed + opened * fill.price,
            realised,
            fees,
        )


def rebuild(symbol: str, fills: Iterable[Fill], start: Position | None = None) -> Position:
    """The fold of ``fills`` over ``start`` (a flat position by default)."""
    position = start if start is not None else Position(symbol)
    for f in fills:
        position = position.apply(f)
    return position


def day_pnl(
    opening_quantity: int, fills: Iterable[Fill], previous_close: Decimal, mark: Decimal
) -> Decimal:
    """Today's P&L (gross of fees): the change in mark-to-market value since the previous close.

    ``opening_quantity`` is the signed quantity carried in from the previous session and valued
    at ``previous_close``; ``fills`` are today's trades; ``mark`` is the current price.
    """
    quantity = opening_quantity
    cash = _ZERO
    for f in fills:
        quantity += f.signed_quantity
        cash += f.cash_flow
    return cash + quantity * mark - opening_quantity * previous_close
