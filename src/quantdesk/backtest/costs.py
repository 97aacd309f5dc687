"""Cost models of a backtest: ``india`` (the dated charges schedule) and ``bps:N``.

- ``india``: exactly what the OMS posts for a paper or live fill: each fill adds the order's
  cumulative charges minus those of its earlier fills (brokerage is per executed order), on the
  dated statutory schedule and the broker tariff, CNC as delivery and MIS as intraday; plus the
  DP charge on a scrip's first delivery sell of the day; plus, in cash, the adjustment that
  recharges a CNC buy sold the same day as intraday (:class:`SameDay`, as
  :mod:`quantdesk.orders.same_day` posts it). Exchanges the schedule does not cover have no
  charges. Its per-side ``rate`` for sizing is 0.
- ``bps:N``: N basis points of each fill's value, rounded to the paisa (half up), charged in
  cash at the fill; ``bps:0`` is no cost. Its per-side ``rate`` is N / 10,000.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import ClassVar, Final

from quantdesk.core.charges import (
    PAISA,
    Charges,
    ChargesCalculator,
    CncFill,
    Exchange,
    ExecutedOrder,
    default_calculator,
    segment_for,
)
from quantdesk.core.orders import Order, Product, Side

__all__ = [
    "BpsCosts",
    "CostModel",
    "Executed",
    "IndiaCosts",
    "SameDay",
    "parse_costs",
    "trade_date",
]

_IST_OFFSET: Final = timedelta(hours=5, minutes=30)
_BPS: Final = Decimal(10_000)
_MAX_BPS: Final = Decimal(1_000)


def trade_date(at: datetime) -> date:
    """The Indian exchanges' calendar day of an instant (what charges are dated by). IST has
    been UTC+05:30 all year since 1945 (no daylight saving): a fixed offset, not a zone lookup."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("trade_date needs a timezone-aware time")
    return (at.astimezone(UTC) + _IST_OFFSET).date()


@dataclass(frozen=True, slots=True)
class Executed:
    """What the cost model needs of an order: the vectorized path has no :class:`Order`."""

    symbol: str
    side: Side
    product: Product
    filled_quantity: int = 0
    filled_value: Decimal = Decimal(0)


class CostModel:
    """Fees of one fill. ``spec`` is the text the run was given (``india``, ``bps:3``)."""

    spec: str = ""
    rate: Decimal = Decimal(0)
    same_day_rule: ClassVar[bool] = False  # recharges a CNC buy sold the same day (same_day)

    def fees(self, order: Order | Executed, quantity: int, price: Decimal, at: datetime) -> Charges:
        """Fees of filling ``quantity`` more of ``order`` (its state before the fill) at
        ``price`` at ``at``."""
        raise NotImplementedError

    def dp_charge(self, at: datetime) -> Charges:
        """The DP charge of a scrip's first delivery sell on ``at``'s day (none by default)."""
        return Charges()

    def same_day(self, symbol: str, day: date, fills: list[CncFill]) -> Charges:
        """The adjustment recharging one scrip's CNC ``fills`` of ``day`` (in trading order)
        with the same-day quantity as intraday (none by default)."""
        return Charges()


@dataclass(frozen=True)
class BpsCosts(CostModel):
    bps: Decimal = Decimal(0)

    @property
    def spec(self) -> str:  # type: ignore[override]
        return f"bps:{self.bps.normalize():f}"

    @property
    def rate(self) -> Decimal:  # type: ignore[override]
        return self.bps / _BPS

    def fees(self, order: Order | Executed, quantity: int, price: Decimal, at: datetime) -> Charges:
        if not self.bps:
            return Charges()
        amount = (price * quantity * self.bps / _BPS).quantize(PAISA, ROUND_HALF_UP)
        return Charges(brokerage=amount)


@dataclass(frozen=True)
class IndiaCosts(CostModel):
    calculator: ChargesCalculator = dataclasses.field(default_factory=default_calculator)

    @property
    def spec(self) -> str:  # type: ignore[override]
        return "india"

    def _executed(self, order: Order | Executed, day: date) -> ExecutedOrder | None:
        exchange = order.symbol.partition(":")[0]
        if exchange not in Exchange.__members__:
            return None
        start = ExecutedOrder.start(segment_for(order.product), exchange, order.side, day)
        if order.filled_quantity == 0:
            return start
        return dataclasses.replace(
            start, quantity=order.filled_quantity, turnover=order.filled_value, fills=1
        )

    def fees(self, order: Order | Executed, quantity: int, price: Decimal, at: datetime) -> Charges:
        before = self._executed(order, trade_date(at))
        if before is None:
            return Charges()
        after = dataclasses.replace(
            before, quantity=before.quantity + quantity, turnover=before.turnover + price * quantity
        )
        calc = self.calculator
        return calc.order_charges(after) - calc.order_charges(before)

    def dp_charge(self, at: datetime) -> Charges:
        return self.calculator.dp_charges(trade_date(at))

    same_day_rule: ClassVar[bool] = True

    def same_day(self, symbol: str, day: date, fills: list[CncFill]) -> Charges:
        exchange = symbol.partition(":")[0]
        if exchange not in Exchange.__members__:
            return Charges()
        return self.calculator.cnc_day(exchange, day, fills).adjustment


@dataclass
class SameDay:
    """A CNC buy sold the same day is charged as intraday, in a backtest as in the OMS
    (:mod:`quantdesk.orders.same_day`): fills are charged as delivery, and each CNC fill moves
    cash by what the scrip's day adjustment changes (:meth:`ChargesCalculator.cnc_day`). Keeps
    only each scrip's current day: a backtest's fills come in time order."""

    days: dict[str, tuple[date, list[tuple[datetime, int, CncFill]]]] = dataclasses.field(
        default_factory=dict
    )
    taken: dict[str, Decimal] = dataclasses.field(default_factory=dict)  # once a sell traded

    def cash(
        self,
        costs: CostModel,
        symbol: str,
        order_id: str,
        side: Side,
        quantity: int,
        price: Decimal,
        at: datetime,
    ) -> Decimal:
        """The cash one CNC fill's reclassification takes (negative: a refund)."""
        if not costs.same_day_rule:
            return Decimal(0)
        day = trade_date(at)
        current = self.days.get(symbol)
        if current is None or current[0] != day:
            current = (day, [])
            self.days[symbol] = current
            self.taken.pop(symbol, None)
        fills = current[1]
        # As the OMS orders them: by time, buys first at one instant, then as they came.
        fills.append((at, 0 if side is Side.BUY else 1, CncFill(order_id, side, quantity, price)))
        if side is Side.BUY and symbol not in self.taken:
            return Decimal(0)  # nothing sold that day: nothing to reclassify
        fills.sort(key=lambda f: (f[0], f[1]))
        total = costs.same_day(symbol, day, [f[2] for f in fills]).total
        before = self.taken.get(symbol, Decimal(0))
        self.taken[symbol] = total
        return total - before


def parse_costs(text: str) -> CostModel:
    """``india`` or ``bps:N`` (0 <= N <= 1000, decimals allowed); ValueError otherwise."""
    value = text.strip().lower()
    if value == "india":
        return IndiaCosts()
    if value.startswith("bps:"):
        try:
            bps = Decimal(value[4:])
        except InvalidOperation:
            bps = Decimal("NaN")
        if bps.is_finite() and 0 <= bps <= _MAX_BPS:
            return BpsCosts(bps)
    raise ValueError(f"costs must be 'india' or 'bps:N' with 0 <= N <= 1000, got {text!r}")
