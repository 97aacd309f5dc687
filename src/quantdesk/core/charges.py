"""Indian equity trading charges: brokerage, STT, exchange transaction charge, SEBI fee, stamp
duty, GST and the DP charge, for delivery (CNC) and intraday (MIS) trades on NSE and BSE.

Pure and stdlib-only, so backtests, paper and live trading pay the same charges. Rates are data
with effective dates (``core/data/charges_india.json``): a backtest of a past day pays that day's
rates. The statutory part (:class:`ChargeSchedule`) is separate from the broker's part
(:class:`BrokerTariff`: brokerage and DP), which is swappable. Rates are applied and rounded in
this module only (:class:`ChargesCalculator`).

Rounding, as brokers' calculators do it (shared/reference/india-charges.md): STT and stamp duty
to the rupee, every other component to the paisa, half up, each component separately; GST on the
already-rounded brokerage, exchange charge and SEBI fee.

How the OMS applies charges
---------------------------
* Brokerage is per executed order, however many trades fill it. Keep an :class:`ExecutedOrder`
  per order (``ExecutedOrder.start(...)``, then ``order = order.fill(price, qty)`` per fill).
  After each fill post ``calc.order_charges(new) - calc.order_charges(old)``: the order's
  cumulative charges minus what was already posted. Every component of that difference is >= 0
  (all charges are non-decreasing in turnover), and the sum of the differences is exactly the
  charges of the whole order, so partial fills never pay brokerage twice or round twice.
* The DP charge is per scrip per day with a delivery sell, however many sell orders: post
  ``calc.dp_charges(day)`` with the first delivery sell fill of a scrip on a day, never again
  that day (the OMS keeps that state, keyed by account, scrip and trade date).
* A CNC buy sold the same day is charged as intraday. A CNC order is charged as delivery when
  it fills; :meth:`ChargesCalculator.cnc_day` charges one scrip's CNC fills of a day both ways
  (each sell closes the day's earlier buys first, first bought first closed: that quantity is
  intraday on both sides) and its ``adjustment`` is the difference to post (usually negative:
  a refund of delivery STT, stamp duty and the DP charge, less intraday brokerage).
  :func:`split_same_day` and :func:`segment_for` are the quantity and segment rules alone.
* :meth:`ChargesCalculator.estimate` is the broker's calculator for a whole round trip (buy and
  sell of one quantity on one day); the three worked examples of the reference match it exactly.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from functools import cache
from importlib import resources
from itertools import pairwise
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeVar

from quantdesk.core.orders import Product, Side

__all__ = [
    "COMPONENTS",
    "COMPONENT_PRECISION",
    "MAX_PRICE",
    "MAX_QUANTITY",
    "PAISA",
    "RUPEE",
    "BrokerRates",
    "BrokerTariff",
    "BrokerageRule",
    "ChargeSchedule",
    "Charges",
    "ChargesBreakdown",
    "ChargesCalculator",
    "ChargesError",
    "CncDay",
    "CncFill",
    "Exchange",
    "ExchangeRates",
    "ExecutedOrder",
    "Product",
    "SameDaySplit",
    "Segment",
    "SegmentRates",
    "Side",
    "StatutoryRates",
    "check_price",
    "check_quantity",
    "check_trade_date",
    "default_calculator",
    "estimate",
    "india_schedule",
    "india_tariffs",
    "match_same_day",
    "parse_price",
    "parse_schedule_file",
    "parse_trade_date",
    "segment_for",
    "split_same_day",
]

PAISA: Final = Decimal("0.01")
RUPEE: Final = Decimal(1)
_HUNDRED: Final = Decimal(100)
_ZERO: Final = Decimal("0.00")

# Bounds keep every product exact within Decimal's 28 digits (10^9 x 10^9 with 4 places) and
# refuse absurd input early; no listed Indian equity comes near either.
MAX_PRICE: Final = Decimal(10**9)
MAX_PRICE_PLACES: Final = 4
MAX_QUANTITY: Final = 10**9

BAD_PRICE: Final = "CHARGES_BAD_PRICE"
BAD_QUANTITY: Final = "CHARGES_BAD_QUANTITY"
NO_SCHEDULE: Final = "CHARGES_NO_SCHEDULE"
BAD_SCHEDULE: Final = "CHARGES_BAD_SCHEDULE"
BAD_ORDER: Final = "CHARGES_BAD_ORDER"
BAD_DATE: Final = "CHARGES_BAD_DATE"

_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class ChargesError(ValueError):
    """Bad input to the charges model, or no schedule for a date. ``code`` is stable."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class Segment(StrEnum):
    """What a trade is charged as."""

    EQUITY_DELIVERY = "equity_delivery"
    EQUITY_INTRADAY = "equity_intraday"


class Exchange(StrEnum):
    NSE = "NSE"
    BSE = "BSE"


def segment_for(product: str, *, same_day_square_off: bool = False) -> Segment:
    """The segment a trade of ``product`` is charged under.

    MIS is intraday. CNC is delivery, except the quantity bought and sold on the same day (see
    :func:`split_same_day`), which is charged as intraday.
    """
    try:
        prod = Product(str(product).upper())
    except ValueError as exc:
        raise ChargesError(f"product must be CNC or MIS, got {product!r}", BAD_ORDER) from exc
    if prod is Product.MIS or same_day_square_off:
        return Segment.EQUITY_INTRADAY
    return Segment.EQUITY_DELIVERY


@dataclass(frozen=True, slots=True)
class SameDaySplit:
    """One scrip's CNC trades of one day: ``intraday`` shares were bought and sold that day
    (charged as intraday); the rest is delivery, bought or sold."""

    intraday: int
    delivery_buy: int
    delivery_sell: int


def split_same_day(bought: int, sold: int) -> SameDaySplit:
    """Split a day's CNC buys and sells of one scrip: the matched quantity is intraday."""
    for name, qty in (("bought", bought), ("sold", sold)):
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
            raise ChargesError(f"{name} must be a non-negative int, got {qty!r}", BAD_QUANTITY)
    matched = min(bought, sold)
    return SameDaySplit(matched, bought - matched, sold - matched)


@dataclass(frozen=True, slots=True)
class CncFill:
    """One CNC fill of a scrip, for :meth:`ChargesCalculator.cnc_day`: the order it belongs to
    (brokerage and rounding are per executed order), side, quantity and price."""

    order_id: str
    side: Side
    quantity: int
    price: Decimal

    def __post_init__(self) -> None:
        try:
            side = Side(str(self.side).upper())
        except ValueError as exc:
            raise ChargesError(f"side must be BUY or SELL, got {self.side!r}", BAD_ORDER) from exc
        object.__setattr__(self, "side", side)
        check_quantity(self.quantity)
        check_price(self.price)


def match_same_day(fills: Sequence[CncFill]) -> list[int]:
    """The intraday quantity of each of one scrip's CNC fills of one day, given in the order
    they traded: each sell closes the quantity of the day's earlier buys still open, first
    bought first closed, and what it closes is intraday on the sell and on those buys. A sell
    with no same-day buy open sells holdings (delivery); a buy after it is a new holding."""
    intraday = [0] * len(fills)
    open_buys: deque[int] = deque()
    for i, f in enumerate(fills):
        if f.side is Side.BUY:
            open_buys.append(i)
            continue
        want = f.quantity
        while want and open_buys:
            j = open_buys[0]
            take = min(want, fills[j].quantity - intraday[j])
            intraday[i] += take
            intraday[j] += take
            want -= take
            if intraday[j] == fills[j].quantity:
                open_buys.popleft()
    return intraday


@dataclass(frozen=True, slots=True)
class CncDay:
    """One scrip's CNC fills of one day charged two ways. ``delivery``: as the OMS charges each
    fill when it happens (every order as delivery, the DP charge once if anything was sold).
    ``reclassified``: the same-day quantity as intraday (each order's intraday and delivery
    parts are two executed orders; the DP charge only if some sold quantity is delivery)."""

    intraday_quantity: int
    delivery: Charges
    reclassified: Charges

    @property
    def adjustment(self) -> Charges:
        """What to post on top of the fills' delivery charges; a negative component is a
        refund."""
        return self.reclassified - self.delivery


# --- validation -------------------------------------------------------------------------------


def check_price(price: Decimal, name: str = "price") -> Decimal:
    """``price`` if it is a positive finite Decimal, at most MAX_PRICE, with at most four
    decimal places; else :class:`ChargesError` (code ``CHARGES_BAD_PRICE``)."""
    # Floats are refused on purpose: money never passes through binary floating point.
    if not isinstance(price, Decimal):
        raise ChargesError(f"{name} must be a Decimal, got {price!r}", BAD_PRICE)
    if not price.is_finite():
        raise ChargesError(f"{name} must be a finite number, got {price}", BAD_PRICE)
    if price <= 0:
        raise ChargesError(f"{name} must be positive, got {price}", BAD_PRICE)
    if price > MAX_PRICE:
        raise ChargesError(f"{name} must be at most {MAX_PRICE}, got {price}", BAD_PRICE)
    exponent = price.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if exponent < -MAX_PRICE_PLACES and price != price.quantize(
        Decimal(1).scaleb(-MAX_PRICE_PLACES)
    ):
        raise ChargesError(
            f"{name} must have at most {MAX_PRICE_PLACES} decimal places, got {price}", BAD_PRICE
        )
    return price


def parse_price(text: str, name: str = "price") -> Decimal:
    """Parse a plain decimal such as ``1000.50`` (no sign, exponent, NaN or Infinity)."""
    stripped = text.strip()
    if len(stripped) > 32 or not _PLAIN_DECIMAL.fullmatch(stripped):
        raise ChargesError(
            f"{name} must be a plain decimal number such as 1000.50, got {text!r}", BAD_PRICE
        )
    return check_price(Decimal(stripped), name)


def check_quantity(quantity: int, name: str = "quantity") -> int:
    """``quantity`` if it is a whole number in [1, MAX_QUANTITY]."""
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise ChargesError(f"{name} must be a whole number, got {quantity!r}", BAD_QUANTITY)
    if not 1 <= quantity <= MAX_QUANTITY:
        raise ChargesError(
            f"{name} must be between 1 and {MAX_QUANTITY}, got {quantity}", BAD_QUANTITY
        )
    return quantity


def check_trade_date(trade_date: date) -> date:
    """``trade_date`` if it is a ``date``; a ``datetime`` is refused: the trade date is the
    exchange's calendar day, which the caller derives in the exchange's time zone."""
    if isinstance(trade_date, datetime) or not isinstance(trade_date, date):
        raise ChargesError(f"trade date must be a date, got {trade_date!r}", BAD_DATE)
    return trade_date


def parse_trade_date(text: str) -> date:
    """Parse ``YYYY-MM-DD`` strictly (no timestamps, no basic ``YYYYMMDD`` form)."""
    stripped = text.strip()
    try:
        if not _ISO_DATE.fullmatch(stripped):
            raise ValueError(stripped)
        return date.fromisoformat(stripped)
    except ValueError as exc:
        raise ChargesError(f"date must be a date as YYYY-MM-DD, got {text!r}", BAD_DATE) from exc


# --- rounding ---------------------------------------------------------------------------------


def _round_paisa(amount: Decimal) -> Decimal:
    return amount.quantize(PAISA, rounding=ROUND_HALF_UP)


def _round_rupee(amount: Decimal) -> Decimal:
    # Whole rupees, still written with paise ("28.00") so every component prints alike.
    return amount.quantize(RUPEE, rounding=ROUND_HALF_UP).quantize(PAISA)


def _pct(amount: Decimal, rate_pct: Decimal) -> Decimal:
    return amount * rate_pct / _HUNDRED


COMPONENTS: Final = (
    "brokerage",
    "stt",
    "exchange_charge",
    "sebi_fee",
    "stamp_duty",
    "gst",
    "dp_charge",
)
COMPONENT_PRECISION: Final[Mapping[str, Decimal]] = MappingProxyType(
    {
        "brokerage": PAISA,
        "stt": RUPEE,
        "exchange_charge": PAISA,
        "sebi_fee": PAISA,
        "stamp_duty": RUPEE,
        "gst": PAISA,
        "dp_charge": PAISA,
    }
)
"""The unit each component is rounded to (half up)."""


# --- rates ------------------------------------------------------------------------------------


class _Dated(Protocol):
    @property
    def effective_from(self) -> date: ...

    @property
    def effective_to(self) -> date | None: ...


_D = TypeVar("_D", bound=_Dated)


def _check_rows(rows: Sequence[_Dated], what: str) -> None:
    if not rows:
        raise ChargesError(f"{what} has no rows", BAD_SCHEDULE)
    for row in rows:
        if row.effective_to is not None and row.effective_to < row.effective_from:
            raise ChargesError(
                f"{what}: row from {row.effective_from} ends before it starts", BAD_SCHEDULE
            )
    for prev, nxt in pairwise(rows):
        if nxt.effective_from <= prev.effective_from or (
            prev.effective_to is not None and prev.effective_to >= nxt.effective_from
        ):
            raise ChargesError(
                f"{what}: rows must be in date order without overlap "
                f"({prev.effective_from} then {nxt.effective_from})",
                BAD_SCHEDULE,
            )


def _row_on(rows: Sequence[_D], day: date, what: str) -> _D:
    """The row in force on ``day``: the last one starting on or before it, if not yet ended."""
    check_trade_date(day)
    found = None
    for row in rows:
        if row.effective_from <= day:
            found = row
    if found is None:
        raise ChargesError(
            f"no {what} for {day.isoformat()}: the schedule starts on "
            f"{rows[0].effective_from.isoformat()}",
            NO_SCHEDULE,
        )
    if found.effective_to is not None and day > found.effective_to:
        raise ChargesError(
            f"no {what} for {day.isoformat()}: the row from {found.effective_from.isoformat()} "
            f"ended on {found.effective_to.isoformat()}",
            NO_SCHEDULE,
        )
    return found


@dataclass(frozen=True, slots=True)
class SegmentRates:
    """Securities transaction tax and stamp duty of a segment, in percent of turnover."""

    stt_buy_pct: Decimal
    stt_sell_pct: Decimal
    stamp_buy_pct: Decimal


@dataclass(frozen=True, slots=True)
class ExchangeRates:
    """An exchange's transaction charge and investor-protection-fund charge, in percent of
    turnover; charged (and rounded) as one component, as brokers show it."""

    transaction_pct: Decimal
    ipf_pct: Decimal

    @property
    def total_pct(self) -> Decimal:
        return self.transaction_pct + self.ipf_pct


@dataclass(frozen=True, slots=True)
class StatutoryRates:
    """Taxes and regulatory charges in force from ``effective_from`` to ``effective_to``
    (inclusive; None: until the next row)."""

    effective_from: date
    effective_to: date | None
    sebi_fee_pct: Decimal
    gst_pct: Decimal
    segments: Mapping[Segment, SegmentRates]
    exchanges: Mapping[Exchange, ExchangeRates]


@dataclass(frozen=True, slots=True)
class ChargeSchedule:
    """The statutory rates over time, looked up by trade date."""

    rows: tuple[StatutoryRates, ...]

    def __post_init__(self) -> None:
        _check_rows(self.rows, "charge schedule")
        for row in self.rows:
            missing = [s for s in Segment if s not in row.segments] + [
                e for e in Exchange if e not in row.exchanges
            ]
            if missing:
                raise ChargesError(
                    f"charge schedule row from {row.effective_from} lacks {missing}", BAD_SCHEDULE
                )

    def rates_on(self, trade_date: date) -> StatutoryRates:
        return _row_on(self.rows, trade_date, "charge schedule")


@dataclass(frozen=True, slots=True)
class BrokerageRule:
    """Brokerage of one executed order: ``min(pct% of its turnover + flat, cap)``, to the paisa.

    Zerodha intraday is ``BrokerageRule(pct=0.03, cap=20)``; a flat Rs 20 per order is
    ``BrokerageRule(flat=20)``; zero brokerage is ``BrokerageRule()``.
    """

    pct: Decimal = Decimal(0)
    flat: Decimal = Decimal(0)
    cap: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("pct", "flat", "cap"):
            value = getattr(self, name)
            if value is None and name == "cap":
                continue
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ChargesError(f"brokerage {name} must be a Decimal >= 0", BAD_SCHEDULE)

    def amount(self, turnover: Decimal) -> Decimal:
        raw = _pct(turnover, self.pct) + self.flat
        if self.cap is not None:
            raw = min(raw, self.cap)
        return _round_paisa(raw)


@dataclass(frozen=True, slots=True)
class BrokerRates:
    """A broker's brokerage per segment and DP charge (GST included), over a date range."""

    effective_from: date
    effective_to: date | None
    brokerage: Mapping[Segment, BrokerageRule]
    dp_charge: Decimal


@dataclass(frozen=True, slots=True)
class BrokerTariff:
    """One broker's charges over time; swap it to model another broker."""

    name: str
    rows: tuple[BrokerRates, ...]

    def __post_init__(self) -> None:
        _check_rows(self.rows, f"broker tariff {self.name!r}")
        for row in self.rows:
            if any(s not in row.brokerage for s in Segment):
                raise ChargesError(
                    f"broker tariff {self.name!r} from {row.effective_from} lacks a segment",
                    BAD_SCHEDULE,
                )
            if not row.dp_charge.is_finite() or row.dp_charge < 0:
                raise ChargesError(f"broker tariff {self.name!r}: bad DP charge", BAD_SCHEDULE)

    def rates_on(self, trade_date: date) -> BrokerRates:
        return _row_on(self.rows, trade_date, f"{self.name} tariff")

    @classmethod
    def flat_fee(
        cls,
        name: str,
        per_order: Decimal,
        *,
        dp_charge: Decimal = Decimal(0),
        effective_from: date = date(1990, 1, 1),
    ) -> BrokerTariff:
        """The same fee per executed order in every segment (``Decimal(0)``: zero brokerage)."""
        rule = BrokerageRule(flat=per_order)
        rates = BrokerRates(
            effective_from,
            None,
            MappingProxyType(dict.fromkeys(Segment, rule)),
            _round_paisa(dp_charge),
        )
        return cls(name, (rates,))


# --- amounts ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Charges:
    """Charges by component, in rupees; each rounded as :data:`COMPONENT_PRECISION` says."""

    brokerage: Decimal = _ZERO
    stt: Decimal = _ZERO
    exchange_charge: Decimal = _ZERO
    sebi_fee: Decimal = _ZERO
    stamp_duty: Decimal = _ZERO
    gst: Decimal = _ZERO
    dp_charge: Decimal = _ZERO

    @property
    def total(self) -> Decimal:
        # Spelled out (not a generator over COMPONENTS): it is on every fill's path.
        return (
            self.brokerage
            + self.stt
            + self.exchange_charge
            + self.sebi_fee
            + self.stamp_duty
            + self.gst
            + self.dp_charge
        )

    def as_dict(self) -> dict[str, Decimal]:
        """Components in :data:`COMPONENTS` order (the ledger posts one entry per non-zero one)."""
        return {c: getattr(self, c) for c in COMPONENTS}

    def __add__(self, other: Charges) -> Charges:
        return Charges(*(getattr(self, c) + getattr(other, c) for c in COMPONENTS))

    def __sub__(self, other: Charges) -> Charges:
        return Charges(*(getattr(self, c) - getattr(other, c) for c in COMPONENTS))


assert tuple(f.name for f in fields(Charges)) == COMPONENTS


@dataclass(frozen=True, slots=True)
class ChargesBreakdown:
    """A round trip as a broker's calculator shows it: every charge, P&L and break-even."""

    segment: Segment
    exchange: Exchange
    trade_date: date
    broker: str
    schedule_from: date  # the statutory row applied
    quantity: int
    buy_price: Decimal
    sell_price: Decimal
    buy_turnover: Decimal
    sell_turnover: Decimal
    charges: Charges
    gross_pnl: Decimal
    net_pnl: Decimal
    breakeven_points: Decimal  # price move that pays the charges, to the paisa

    @property
    def turnover(self) -> Decimal:
        return self.buy_turnover + self.sell_turnover

    @property
    def total(self) -> Decimal:
        return self.charges.total


@dataclass(frozen=True, slots=True)
class ExecutedOrder:
    """One order's fills so far, for its charges: brokerage is per executed order.

    Start with :meth:`start` and add each fill with :meth:`fill` (it returns a new value).
    """

    segment: Segment
    exchange: Exchange
    side: Side
    trade_date: date
    quantity: int = 0
    turnover: Decimal = field(default=_ZERO)
    fills: int = 0

    @classmethod
    def start(
        cls, segment: Segment | str, exchange: Exchange | str, side: Side | str, trade_date: date
    ) -> ExecutedOrder:
        try:
            parsed_side = Side(str(side).upper())
        except ValueError as exc:
            raise ChargesError(f"side must be BUY or SELL, got {side!r}", BAD_ORDER) from exc
        return cls(
            _segment(segment), _exchange(exchange), parsed_side, check_trade_date(trade_date)
        )

    def fill(self, price: Decimal, quantity: int) -> ExecutedOrder:
        check_price(price)
        check_quantity(quantity)
        if self.quantity + quantity > MAX_QUANTITY:
            raise ChargesError(f"an order cannot exceed {MAX_QUANTITY} shares", BAD_QUANTITY)
        return ExecutedOrder(
            self.segment,
            self.exchange,
            self.side,
            self.trade_date,
            self.quantity + quantity,
            self.turnover + price * quantity,
            self.fills + 1,
        )


# --- the calculator ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargesCalculator:
    """Statutory schedule + one broker's tariff: the only place rates are applied."""

    schedule: ChargeSchedule
    tariff: BrokerTariff

    def _charges(
        self,
        segment: Segment,
        exchange: Exchange,
        trade_date: date,
        buy_turnover: Decimal,
        sell_turnover: Decimal,
        brokerage: Decimal,
        dp_charge: Decimal,
    ) -> Charges:
        rates = self.schedule.rates_on(trade_date)
        seg = rates.segments[segment]
        turnover = buy_turnover + sell_turnover
        # STT is rounded on the trade's total, not per side (worked example 2: 210 on 210,000).
        stt = _round_rupee(
            _pct(buy_turnover, seg.stt_buy_pct) + _pct(sell_turnover, seg.stt_sell_pct)
        )
        exchange_charge = _round_paisa(_pct(turnover, rates.exchanges[exchange].total_pct))
        sebi_fee = _round_paisa(_pct(turnover, rates.sebi_fee_pct))
        stamp_duty = _round_rupee(_pct(buy_turnover, seg.stamp_buy_pct))
        gst = _round_paisa(_pct(brokerage + exchange_charge + sebi_fee, rates.gst_pct))
        return Charges(brokerage, stt, exchange_charge, sebi_fee, stamp_duty, gst, dp_charge)

    def estimate(
        self,
        segment: Segment | str,
        exchange: Exchange | str,
        buy_price: Decimal,
        sell_price: Decimal,
        quantity: int,
        trade_date: date,
    ) -> ChargesBreakdown:
        """Charges of buying and selling ``quantity`` on ``trade_date``: two executed orders,
        plus the DP charge for a delivery sell."""
        seg, exch = _segment(segment), _exchange(exchange)
        check_price(buy_price, "buy price")
        check_price(sell_price, "sell price")
        check_quantity(quantity)
        statutory = self.schedule.rates_on(trade_date)  # first: its error names the schedule
        broker = self.tariff.rates_on(trade_date)
        rule = broker.brokerage[seg]
        buy_turnover, sell_turnover = buy_price * quantity, sell_price * quantity
        charges = self._charges(
            seg,
            exch,
            trade_date,
            buy_turnover,
            sell_turnover,
            rule.amount(buy_turnover) + rule.amount(sell_turnover),
            broker.dp_charge if seg is Segment.EQUITY_DELIVERY else _ZERO,
        )
        gross = sell_turnover - buy_turnover
        return ChargesBreakdown(
            segment=seg,
            exchange=exch,
            trade_date=trade_date,
            broker=self.tariff.name,
            schedule_from=statutory.effective_from,
            quantity=quantity,
            buy_price=buy_price,
            sell_price=sell_price,
            buy_turnover=buy_turnover,
            sell_turnover=sell_turnover,
            charges=charges,
            gross_pnl=gross,
            net_pnl=gross - charges.total,
            breakeven_points=_round_paisa(charges.total / quantity),
        )

    def order_charges(self, order: ExecutedOrder) -> Charges:
        """Charges of one executed order (all its fills so far), without the DP charge.

        An order with no fill yet has none. Post differences between successive values as the
        order fills (see the module docstring).
        """
        if order.quantity == 0:
            return Charges()
        rule = self.tariff.rates_on(order.trade_date).brokerage[order.segment]
        is_buy = order.side is Side.BUY
        return self._charges(
            order.segment,
            order.exchange,
            order.trade_date,
            order.turnover if is_buy else _ZERO,
            _ZERO if is_buy else order.turnover,
            rule.amount(order.turnover),
            _ZERO,
        )

    def dp_charges(self, trade_date: date) -> Charges:
        """The DP charge (GST included) of one scrip on a day with a delivery sell."""
        return Charges(dp_charge=self.tariff.rates_on(trade_date).dp_charge)

    def cnc_day(
        self, exchange: Exchange | str, trade_date: date, fills: Sequence[CncFill]
    ) -> CncDay:
        """One scrip's CNC ``fills`` of ``trade_date`` (in the order they traded) charged as
        delivery and with the same-day quantity (:func:`match_same_day`) as intraday."""
        exch = _exchange(exchange)
        check_trade_date(trade_date)
        intraday = match_same_day(fills)
        # Per order (and side): [everything as delivery, the delivery part, the intraday part].
        orders: dict[tuple[str, Side], list[ExecutedOrder]] = {}
        sold = sold_delivery = False
        segments = (Segment.EQUITY_DELIVERY, Segment.EQUITY_DELIVERY, Segment.EQUITY_INTRADAY)
        for f, same_day in zip(fills, intraday, strict=True):
            side = f.side
            parts = orders.get((f.order_id, side))
            if parts is None:
                parts = [ExecutedOrder.start(seg, exch, side, trade_date) for seg in segments]
                orders[(f.order_id, side)] = parts
            parts[0] = parts[0].fill(f.price, f.quantity)
            if f.quantity > same_day:
                parts[1] = parts[1].fill(f.price, f.quantity - same_day)
            if same_day:
                parts[2] = parts[2].fill(f.price, same_day)
            if side is Side.SELL:
                sold = True
                sold_delivery = sold_delivery or f.quantity > same_day
        delivery = reclassified = Charges()
        for whole, delivery_part, intraday_part in orders.values():
            delivery += self.order_charges(whole)
            reclassified += self.order_charges(delivery_part) + self.order_charges(intraday_part)
        dp = self.dp_charges(trade_date)
        if sold:
            delivery += dp
        if sold_delivery:
            reclassified += dp
        matched = sum(q for f, q in zip(fills, intraday, strict=True) if f.side is Side.SELL)
        return CncDay(matched, delivery, reclassified)


def _segment(value: Segment | str) -> Segment:
    try:
        return Segment(str(value).lower())
    except ValueError as exc:
        allowed = ", ".join(s.value for s in Segment)
        raise ChargesError(f"segment must be one of {allowed}, got {value!r}", BAD_ORDER) from exc


def _exchange(value: Exchange | str) -> Exchange:
    try:
        return Exchange(str(value).upper())
    except ValueError as exc:
        allowed = ", ".join(e.value for e in Exchange)
        raise ChargesError(f"exchange must be one of {allowed}, got {value!r}", BAD_ORDER) from exc


# --- the shipped schedule ---------------------------------------------------------------------


def _dec(data: Mapping[str, Any], key: str, where: str) -> Decimal:
    value = data.get(key)
    if not isinstance(value, str):
        raise ChargesError(f"{where}: {key} must be a decimal string", BAD_SCHEDULE)
    try:
        result = Decimal(value)
    except InvalidOperation as exc:
        raise ChargesError(f"{where}: {key} is not a decimal: {value!r}", BAD_SCHEDULE) from exc
    if not result.is_finite() or result < 0:
        raise ChargesError(f"{where}: {key} must be >= 0, got {value!r}", BAD_SCHEDULE)
    return result


def _dates(data: Mapping[str, Any], where: str) -> tuple[date, date | None]:
    try:
        start = date.fromisoformat(data["effective_from"])
        end = data.get("effective_to")
        return start, None if end is None else date.fromisoformat(end)
    except (KeyError, TypeError, ValueError) as exc:
        raise ChargesError(f"{where}: bad effective_from/effective_to", BAD_SCHEDULE) from exc


def _statutory_row(row: Mapping[str, Any]) -> StatutoryRates:
    start, end = _dates(row, "charge schedule")
    where = f"charge schedule row from {start}"
    return StatutoryRates(
        effective_from=start,
        effective_to=end,
        sebi_fee_pct=_dec(row, "sebi_fee_pct", where),
        gst_pct=_dec(row, "gst_pct", where),
        segments=MappingProxyType(
            {
                Segment(name): SegmentRates(
                    _dec(r, "stt_buy_pct", where),
                    _dec(r, "stt_sell_pct", where),
                    _dec(r, "stamp_buy_pct", where),
                )
                for name, r in row["segments"].items()
            }
        ),
        exchanges=MappingProxyType(
            {
                Exchange(name): ExchangeRates(
                    _dec(r, "transaction_pct", where), _dec(r, "ipf_pct", where)
                )
                for name, r in row["exchanges"].items()
            }
        ),
    )


def _broker_row(name: str, row: Mapping[str, Any]) -> BrokerRates:
    start, end = _dates(row, f"broker {name}")
    where = f"broker {name} from {start}"
    rules = {}
    for seg, r in row["brokerage"].items():
        cap = r.get("cap")
        rules[Segment(seg)] = BrokerageRule(
            pct=_dec(r, "pct", where),
            flat=_dec(r, "flat", where),
            cap=None if cap is None else _dec(r, "cap", where),
        )
    return BrokerRates(start, end, MappingProxyType(rules), _dec(row, "dp_charge", where))


def parse_schedule_file(text: str) -> tuple[ChargeSchedule, dict[str, BrokerTariff]]:
    """Parse a charges file (the shape of ``core/data/charges_india.json``)."""
    try:
        data = json.loads(text)
        schedule = ChargeSchedule(tuple(_statutory_row(r) for r in data["statutory"]))
        tariffs = {
            name: BrokerTariff(name, tuple(_broker_row(name, r) for r in rows))
            for name, rows in data["brokers"].items()
        }
    except ChargesError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ChargesError(f"malformed charges file: {exc!r}", BAD_SCHEDULE) from exc
    return schedule, tariffs


@cache
def _shipped() -> tuple[ChargeSchedule, Mapping[str, BrokerTariff]]:
    text = resources.files("quantdesk.core").joinpath("data/charges_india.json").read_text("utf-8")
    schedule, tariffs = parse_schedule_file(text)
    return schedule, MappingProxyType(tariffs)


def india_schedule() -> ChargeSchedule:
    """The statutory schedule shipped with QuantDesk (NSE and BSE equity)."""
    return _shipped()[0]


def india_tariffs() -> Mapping[str, BrokerTariff]:
    """The broker tariffs shipped with QuantDesk, by name (``zerodha``)."""
    return _shipped()[1]


def default_calculator() -> ChargesCalculator:
    """The shipped schedule with Zerodha's tariff."""
    return ChargesCalculator(india_schedule(), india_tariffs()["zerodha"])


def estimate(
    segment: Segment | str,
    exchange: Exchange | str,
    buy_price: Decimal,
    sell_price: Decimal,
    quantity: int,
    trade_date: date,
) -> ChargesBreakdown:
    """:meth:`ChargesCalculator.estimate` with the :func:`default_calculator`."""
    return default_calculator().estimate(
        segment, exchange, buy_price, sell_price, quantity, trade_date
    )
