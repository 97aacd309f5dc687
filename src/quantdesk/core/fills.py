"""The fill model shared by the paper broker and the backtester: which fills an order gets from
one market update (a :class:`Quote` or a :class:`Bar`).

Rules (one place, so paper and backtest agree):

- Latency: an order is eligible only at updates stamped at or after ``accepted_at + latency``
  (for a bar, its open time).
- MARKET: at the touch (buy at the ask, sell at the bid; a bar's open), plus slippage (fixed
  ticks, basis points and optional random ticks from an injected ``random.Random``), rounded to
  the tick against the order.
- LIMIT on a quote: fills when the touch is at or through the limit (buy: ask <= limit): the ask
  is a real offer at our price. Price: the touch plus slippage, never worse than the limit.
- LIMIT on a bar (the at-the-limit rule): fills only when the bar trades THROUGH the limit
  (buy: low < limit), because a bar touching the limit says nothing of our place in the queue.
  Price: the limit, or the open when the bar opens through it.
- SL / SL-M: trigger when the last price reaches the stop (buy: last >= stop; bars: high >=
  stop), then act as LIMIT / MARKET from the trigger price (a bar's open if it gapped through).
  A stop-limit whose trigger price is already beyond its limit rests as a limit until later
  updates.
- Quantity: at most ``max_volume_share`` of the volume traded since the last update, rounded
  down to whole lots, and never more than the order's remaining quantity.
- IOC: whatever the first eligible update does not fill is to be cancelled.

Pure: returns a :class:`Match` to apply (trigger, fills, cancel); the order is not touched.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final

from quantdesk.core.instruments import InstrumentSpec
from quantdesk.core.market import Bar, Quote, round_to_tick
from quantdesk.core.orders import Order, OrderStatus, OrderType, Side, TimeInForce

__all__ = ["FillModel", "FillReason", "Match", "ProposedFill", "match", "volume_delta"]

_ZERO: Final = Decimal(0)
_BPS: Final = Decimal(10_000)
_MATCHABLE: Final = frozenset({OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED})


class FillReason(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"
    STOP_LIMIT = "STOP_LIMIT"


@dataclass(frozen=True, slots=True)
class FillModel:
    """Fill model settings. ``max_volume_share`` None means fills are not capped by volume."""

    slippage_ticks: int = 0
    slippage_bps: Decimal = _ZERO
    random_slippage_ticks: int = 0
    max_volume_share: Decimal | None = Decimal("0.25")
    latency: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.slippage_ticks < 0 or self.random_slippage_ticks < 0:
            raise ValueError("slippage ticks cannot be negative")
        if not self.slippage_bps.is_finite() or self.slippage_bps < 0:
            raise ValueError("slippage_bps must be a non-negative decimal")
        share = self.max_volume_share
        if share is not None and not (share.is_finite() and 0 < share <= 1):
            raise ValueError("max_volume_share must be in (0, 1] or None")
        if self.latency < timedelta(0):
            raise ValueError("latency cannot be negative")


@dataclass(frozen=True, slots=True)
class ProposedFill:
    quantity: int
    price: Decimal
    reason: FillReason


@dataclass(frozen=True, slots=True)
class Match:
    """What one update does to an order: trigger its stop, fill it, cancel an IOC's rest."""

    fills: tuple[ProposedFill, ...] = ()
    triggered: bool = False
    cancel_remainder: bool = False

    @property
    def filled_quantity(self) -> int:
        return sum(f.quantity for f in self.fills)


_NOTHING: Final = Match()
_REASONS: Final = {
    OrderType.MARKET: FillReason.MARKET,
    OrderType.LIMIT: FillReason.LIMIT,
    OrderType.SL: FillReason.STOP_LIMIT,
    OrderType.SL_M: FillReason.STOP_MARKET,
}


def volume_delta(previous: Quote | None, current: Quote) -> int:
    """Volume traded between two quotes of the same session. Without a previous quote, or when
    the cumulative volume went down (a new session), there is nothing to attribute: 0."""
    if previous is None or current.volume < previous.volume:
        return 0
    return current.volume - previous.volume


def match(
    order: Order,
    update: Quote | Bar,
    spec: InstrumentSpec,
    *,
    accepted_at: datetime,
    traded_volume: int,
    model: FillModel | None = None,
    rng: random.Random | None = None,
) -> Match:
    """The fills ``order`` gets from ``update``.

    ``traded_volume`` is the volume this order may take a share of: the quote's volume delta
    (:func:`volume_delta`) or the bar's volume. ``rng`` is needed only for random slippage.
    """
    model = model or FillModel()
    if update.symbol != order.symbol:
        raise ValueError(f"a {update.symbol} update cannot fill a {order.symbol} order")
    if order.status not in _MATCHABLE or update.ts < accepted_at + model.latency:
        return _NOTHING
    ioc = order.time_in_force is TimeInForce.IOC
    price, reason, triggered = _fill_price(order, update, spec, model, rng)
    quantity = 0 if price is None else _quantity(order, traded_volume, spec, model)
    if price is None or not quantity:
        return Match((), triggered, ioc and order.remaining_quantity > 0)
    fills = (ProposedFill(quantity, price, reason),)
    return Match(fills, triggered, ioc and quantity < order.remaining_quantity)


def _quantity(order: Order, traded_volume: int, spec: InstrumentSpec, model: FillModel) -> int:
    remaining = order.remaining_quantity
    if model.max_volume_share is None:
        return remaining
    cap = int(max(traded_volume, 0) * model.max_volume_share)
    return min(remaining, cap - cap % spec.lot_size)


def _fill_price(
    order: Order,
    update: Quote | Bar,
    spec: InstrumentSpec,
    model: FillModel,
    rng: random.Random | None,
) -> tuple[Decimal | None, FillReason, bool]:
    """(price or None, reason, stop triggered by this update)."""
    buy = order.side is Side.BUY
    reason = _REASONS[order.order_type]
    triggered_now = False
    trigger_at: Decimal | None = None
    if order.is_stop and not order.triggered:
        trigger_at = _trigger_price(order, update)
        if trigger_at is None:
            return None, reason, False
        triggered_now = True
    # Where the order starts working: the touch of a quote; a bar's open, or the trigger price
    # of a stop that triggers inside the bar.
    if isinstance(update, Quote):
        start = update.ask if buy else update.bid
    else:
        start = update.open if trigger_at is None else trigger_at

    if order.order_type in (OrderType.MARKET, OrderType.SL_M):
        return _slipped(start, buy, spec, model, rng, None), reason, triggered_now

    assert order.limit_price is not None
    limit = round_to_tick(order.limit_price, spec.tick_size, "down" if buy else "up")
    if (start <= limit) if buy else (start >= limit):
        return _slipped(start, buy, spec, model, rng, limit), reason, triggered_now
    if isinstance(update, Quote) or triggered_now:
        # A quote's touch is the whole story; after a trigger inside a bar, where the bar went
        # next is unknown, so the order rests as a limit.
        return None, reason, triggered_now
    through = update.low < limit if buy else update.high > limit
    return (limit if through else None), reason, triggered_now


def _trigger_price(order: Order, update: Quote | Bar) -> Decimal | None:
    """The price at which an untriggered stop triggers on this update, or None."""
    stop = order.stop_price
    assert stop is not None
    if order.side is Side.BUY:
        if isinstance(update, Quote):
            return update.last if update.last >= stop else None
        return max(update.open, stop) if update.high >= stop else None
    if isinstance(update, Quote):
        return update.last if update.last <= stop else None
    return min(update.open, stop) if update.low <= stop else None


def _slipped(
    price: Decimal,
    buy: bool,
    spec: InstrumentSpec,
    model: FillModel,
    rng: random.Random | None,
    limit: Decimal | None,
) -> Decimal | None:
    """``price`` moved against the order by the slippage, on the tick, capped by ``limit``."""
    if price <= 0:
        return None  # no one on that side of the book
    ticks = model.slippage_ticks
    if not ticks and not model.random_slippage_ticks and not model.slippage_bps:
        out = round_to_tick(price, spec.tick_size, "up" if buy else "down")
        if not buy:
            out = max(out, spec.tick_size)
        return out if limit is None else (min(out, limit) if buy else max(out, limit))
    if model.random_slippage_ticks:
        if rng is None:
            raise ValueError("random slippage needs an injected random.Random")
        ticks += rng.randint(0, model.random_slippage_ticks)
    slip = ticks * spec.tick_size + price * model.slippage_bps / _BPS
    if buy:
        out = round_to_tick(price + slip, spec.tick_size, "up")
        return out if limit is None else min(out, limit)
    out = max(round_to_tick(price - slip, spec.tick_size, "down"), spec.tick_size)
    return out if limit is None else max(out, limit)
