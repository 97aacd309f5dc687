"""The vectorized fast path: a strategy that states its target exposure as an array.

``Strategy.signals(bars, params)`` returns, per bar, the fraction of equity to hold (NaN: no
opinion). At every bar where the value changes, the engine does what
``ctx.order_target_percent(symbol, value)`` does at that bar's close in the event-driven engine:
size at the close, ``floor(equity * value / (close * (1 + rate)))`` whole lots, and a MARKET
order for the difference that fills at the next bar's open through the same book (fill model,
cash rule, cost model and positions). Only the bars with a change run Python code; the equity
curve is numpy. Same fills as the event engine, by construction and by test.

Limits: one symbol, MARKET orders, and a fill model without latency, volume cap or random
slippage (those depend on the bar-by-bar path: use the event engine). One degenerate case
differs by design: when equity no longer buys a single lot, an entry sized to nothing (or
cancelled for cash at the fill) waits for the next change of the target here, while an event
strategy may try again on later bars.
"""

from __future__ import annotations

import time as _time
import traceback
from collections.abc import Callable
from datetime import UTC
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction

import numpy as np
import pandas as pd

from quantdesk.core.charges import Charges
from quantdesk.core.orders import Order, OrderStatus, OrderType, Product, Side, TimeInForce
from quantdesk.core.positions import Fill, Position
from quantdesk.strategy.base import Strategy
from quantdesk.strategy.context import BarArrays

from .book import Book, BookFill, to_price
from .costs import BpsCosts, Executed, SameDay, trade_date
from .data import Dataset
from .engine import EngineConfig, EngineRun, StrategyFailed

__all__ = ["VectorUnsupported", "run_vector"]

_ZERO = Decimal(0)


class VectorUnsupported(ValueError):
    code = "BACKTEST_VECTOR_UNSUPPORTED"


def _check(strategy: Strategy, data: Dataset, config: EngineConfig) -> None:
    model = config.fill_model
    if config.limits is not None:
        raise VectorUnsupported("the vector engine does not apply risk limits; use --engine event")
    if len(data.symbols) != 1:
        raise VectorUnsupported("the vector engine runs one symbol; use --engine event")
    if (
        model.latency.total_seconds()
        or model.random_slippage_ticks
        or (model.max_volume_share is not None)
    ):
        raise VectorUnsupported(
            "the vector engine needs a fill model without latency, volume cap or random "
            "slippage; use --engine event"
        )


def run_vector(
    strategy: Strategy,
    data: Dataset,
    config: EngineConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> EngineRun:
    _check(strategy, data, config)
    symbol = data.symbols[0]
    cols = data.fields[symbol]
    started = _time.perf_counter()
    bars = BarArrays(
        symbol, data.time, cols["open"], cols["high"], cols["low"], cols["close"], cols["volume"]
    )
    try:
        raw = strategy.signals(bars, strategy.params)
    except Exception as exc:
        raise StrategyFailed("signals", traceback.format_exc()) from exc
    if raw is None:
        raise VectorUnsupported(f"{strategy.name} has no vectorized form; use --engine event")
    target = np.asarray(raw, dtype=np.float64)
    if target.shape != (len(data),):
        raise VectorUnsupported("signals() must return one value per bar")
    loop = _Loop(symbol, data, config, target)
    loop.run()
    seconds = _time.perf_counter() - started
    if progress is not None:
        progress(len(data), len(data))
    return EngineRun(data, config, loop.book(), seconds)


class _Loop:
    """The Python part: only the bars where the target changes."""

    def __init__(self, symbol: str, data: Dataset, config: EngineConfig, target: np.ndarray):
        self.symbol = symbol
        self.data = data
        self.config = config
        self.target = target
        spec = config.specs[symbol]
        self.tick, self.lot = spec.tick_size, spec.lot_size
        self.rate = Decimal(1) + config.costs.rate
        self.cash = config.cash
        self.held = 0
        self.fills: list[BookFill] = []
        self.orders: list[tuple[str, int, Side, int, int, Decimal, OrderStatus, str]] = []
        self.sold_days: set[object] = set()
        self.same_day = SameDay()
        self.present = data.present[symbol]
        self.opens = data.fields[symbol]["open"]
        self.closes = data.fields[symbol]["close"]
        # Whole paise for bps costs on a tick of a paisa or more: exact integer arithmetic,
        # the same results as the Decimal path, several times faster.
        costs = config.costs
        exponent = self.tick.as_tuple().exponent
        self.fast = (
            isinstance(costs, BpsCosts)
            and isinstance(exponent, int)
            and exponent >= -2
            and (config.cash * 100) == (config.cash * 100).to_integral_value()
        )
        if self.fast:
            assert isinstance(costs, BpsCosts)
            bps = Fraction(costs.bps)
            self.b_num, self.b_den = bps.numerator, bps.denominator
            self.cash_p = int(config.cash * 100)
            self.raw: list[tuple[int, int, Side, int, int, int, str]] = []
            self.prices: dict[tuple[float, Side], int] = {}
            self.paise: dict[float, int] = {}
            self.fractions: dict[float, Fraction] = {}

    def run(self) -> None:
        target = self.target
        prev = np.r_[np.nan, target[:-1]]
        with np.errstate(invalid="ignore"):
            changed = ~np.isnan(target) & ((target != prev) | np.isnan(prev))
        n = len(target)
        points = np.flatnonzero(changed)
        if not self.fast:
            for t, value in zip(points.tolist(), target[points].tolist(), strict=True):
                self._order_at(t, value, n)
            return
        # Everything the loop reads per order, gathered by numpy first: the close at the
        # signal, the next bar with a real bar after it (n: none) and that bar's open.
        real = np.flatnonzero(self.present)
        after = np.searchsorted(real, points, side="right")
        nxt = np.where(after < len(real), real[np.minimum(after, len(real) - 1)], n)
        opens = np.where(nxt < n, self.opens[np.minimum(nxt, n - 1)], np.nan)
        order = self._order_fast
        for t, value, close, nx, open_ in zip(
            points.tolist(),
            target[points].tolist(),
            self.closes[points].tolist(),
            nxt.tolist(),
            opens.tolist(),
            strict=True,
        ):
            order(t, value, close, nx, open_)

    def _paise(self, value: float) -> int:
        paise = self.paise.get(value)
        if paise is None:
            paise = self.paise[value] = int(to_price(value, self.tick) * 100)
        return paise

    def _fraction(self, value: float) -> Fraction:
        frac = self.fractions.get(value)
        if frac is None:
            frac = self.fractions[value] = Fraction(Decimal(repr(value)))
        return frac

    def _order_fast(self, t: int, value: float, close: float, nxt: int, open_: float) -> None:
        """:meth:`_order_at` in whole paise (bps costs: no DP charge, no dated schedule), with
        the signal bar's ``close`` and the next real bar ``nxt`` (len: none) and its open."""
        close_p = self._paise(close)
        held = self.held
        equity_p = self.cash_p + held * close_p
        frac = self._fraction(value)
        b_num, b_den = self.b_num, self.b_den
        num = equity_p * frac.numerator * 10_000 * b_den
        den = frac.denominator * close_p * (10_000 * b_den + b_num)
        qty = num // den if num >= 0 else -((-num) // den)
        lot = self.lot
        qty -= (abs(qty) % lot) * (1 if qty >= 0 else -1)
        delta = qty - held
        if delta == 0:
            return
        side = Side.BUY if delta > 0 else Side.SELL
        number = len(self.raw) + 1
        if side is Side.SELL and -delta > held:
            self.raw.append((number, t, side, -delta, 0, 0, OrderStatus.REJECTED.value))
            return
        quantity = abs(delta)
        if open_ != open_:  # NaN: no bar after the signal
            self.raw.append((number, t, side, quantity, 0, 0, OrderStatus.OPEN.value))
            return
        key = (open_, side)
        price_p = self.prices.get(key)
        if price_p is None:
            price_p = int(_market_price(key[0], side, self.tick, self.config) * 100)
            self.prices[key] = price_p
        d = 10_000 * b_den
        fee = (2 * price_p * quantity * b_num + d) // (2 * d)
        if side is Side.BUY and quantity * price_p + fee > self.cash_p:
            cash = self.cash_p
            q = cash * d // (price_p * (d + b_num)) if cash > 0 else 0
            q = min(q, quantity)
            q -= q % lot
            while q > 0:
                fee = (2 * price_p * q * b_num + d) // (2 * d)
                if q * price_p + fee <= cash:
                    break
                q -= lot
            if q <= 0:
                self.raw.append((number, t, side, quantity, 0, 0, OrderStatus.CANCELLED.value))
                return
            quantity = q
        signed = quantity if side is Side.BUY else -quantity
        self.cash_p += -signed * price_p - fee
        self.held += signed
        self.raw.append((number, nxt, side, quantity, price_p, fee, OrderStatus.FILLED.value))

    def _materialise(self) -> None:
        """The integer path's records as the Decimal path's (after the timed loop)."""
        cent = Decimal("0.01")
        filled = [r[1] for r in self.raw if r[6] == OrderStatus.FILLED.value]
        times = iter(
            pd.to_datetime(self.data.time[filled], unit="us", utc=True).to_pydatetime().tolist()
        )
        for number, index, side, quantity, price_p, fee_p, status in self.raw:
            order_id = f"bt-{number}"
            if status != OrderStatus.FILLED.value:
                self.orders.append(
                    (order_id, index, side, quantity, 0, _ZERO, OrderStatus(status), "")
                )
                continue
            price = (Decimal(price_p) * cent).quantize(self.tick)
            fees = Charges(brokerage=Decimal(fee_p) * cent)
            self.orders.append(
                (
                    order_id,
                    index,
                    side,
                    quantity,
                    quantity,
                    price * quantity,
                    OrderStatus.FILLED,
                    "",
                )
            )
            self.fills.append(
                BookFill(
                    index,
                    next(times).astimezone(UTC),
                    order_id,
                    self.symbol,
                    side,
                    Product.CNC,
                    quantity,
                    price,
                    fees,
                    None,
                )
            )
        self.cash = Decimal(self.cash_p) * cent

    def _order_at(self, t: int, value: float, n: int) -> None:
        """What ``order_target_percent(value)`` does at bar ``t``'s close, and its fill (the
        Decimal path; :meth:`_order_fast` is the same in whole paise)."""
        close_t = to_price(float(self.closes[t]), self.tick)
        held = self.held
        equity = self.cash + held * close_t
        raw = equity * Decimal(repr(value)) / (close_t * self.rate)
        qty = int(abs(raw).to_integral_value(ROUND_FLOOR)) * (1 if raw >= 0 else -1)
        qty -= (abs(qty) % self.lot) * (1 if qty >= 0 else -1)
        delta = qty - held
        if delta == 0:
            return
        side = Side.BUY if delta > 0 else Side.SELL
        order_id = f"bt-{len(self.orders) + 1}"
        if side is Side.SELL and -delta > held:
            self.orders.append(
                (order_id, t, side, -delta, 0, _ZERO, OrderStatus.REJECTED, "no CNC holding")
            )
            return
        nxt = t + 1
        while nxt < n and not self.present[nxt]:
            nxt += 1
        if nxt >= n:  # placed on the last bar: stays open, as in the event engine
            self.orders.append((order_id, t, side, abs(delta), 0, _ZERO, OrderStatus.OPEN, ""))
            return
        at = self.data.datetime_at(nxt)
        price = _market_price(float(self.opens[nxt]), side, self.tick, self.config)
        quantity = abs(delta)
        costs = self.config.costs
        executed = Executed(self.symbol, side, Product.CNC)
        fees = costs.fees(executed, quantity, price, at)
        if side is Side.BUY and quantity * price + fees.total > self.cash:
            cash = self.cash
            q = int((cash / (price * self.rate)).to_integral_value(ROUND_FLOOR)) if cash > 0 else 0
            q = min(q, quantity)
            q -= q % self.lot
            while q > 0:
                fees = costs.fees(executed, q, price, at)
                if q * price + fees.total <= cash:
                    break
                q -= self.lot
            if q <= 0:
                self.orders.append(
                    (order_id, t, side, quantity, 0, _ZERO, OrderStatus.CANCELLED, "cash")
                )
                return
            quantity = q
        if side is Side.SELL:
            day = (self.symbol, trade_date(at))
            if day not in self.sold_days:
                self.sold_days.add(day)
                fees = fees + costs.dp_charge(at)
        signed = quantity if side is Side.BUY else -quantity
        self.cash += -signed * price - fees.total
        self.cash -= self.same_day.cash(costs, self.symbol, order_id, side, quantity, price, at)
        self.held += signed
        self.orders.append(
            (order_id, t, side, quantity, quantity, price * quantity, OrderStatus.FILLED, "")
        )
        self.fills.append(
            BookFill(nxt, at, order_id, self.symbol, side, Product.CNC, quantity, price, fees, None)
        )
        return

    def book(self) -> Book:
        """The run as a :class:`Book` (orders materialised after the timed loop)."""
        if self.fast:
            self._materialise()
        config = self.config
        book = Book(
            cash=self.cash,
            costs=config.costs,
            fill_model=config.fill_model,
            specs=dict(config.specs),
        )
        book.fills = self.fills
        book.net = {self.symbol: self.held}
        for order_id, _t, side, quantity, filled, value, status, _why in self.orders:
            order = Order(
                id=order_id,
                client_order_id=order_id,
                account="backtest",
                symbol=self.symbol,
                side=side,
                order_type=OrderType.MARKET,
                product=Product.CNC,
                time_in_force=TimeInForce.DAY,
                quantity=quantity,
                filled_quantity=filled,
                filled_value=value,
                status=status,
            )
            book.order_index[order_id] = len(book.orders)
            book.orders.append(order)
        position = Position(self.symbol)
        for f in self.fills:
            position = position.apply(
                Fill(f.symbol, f.side, f.quantity, f.price, f.fees, f.order_id)
            )
        book.positions[(self.symbol, Product.CNC)] = position
        return book


def _market_price(open_: float, side: Side, tick: Decimal, config: EngineConfig) -> Decimal:
    """A MARKET fill at a bar's open, as :func:`quantdesk.core.fills.match` prices it."""
    from quantdesk.core.fills import _slipped
    from quantdesk.core.instruments import InstrumentSpec

    price = _slipped(
        to_price(open_, tick),
        side is Side.BUY,
        InstrumentSpec(tick_size=tick),
        config.fill_model,
        None,
        None,
    )
    assert price is not None
    return price
