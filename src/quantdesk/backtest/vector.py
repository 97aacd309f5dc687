"""The vectorized fast path: a strategy that states its target exposure as an array.

``Strategy.signals(bars, params)`` returns, per bar, the fraction of equity to hold (NaN: no
opinion). At every bar where the value changes, the engine does what
``ctx.order_target_percent(symbol, value)`` does at that bar's close in the event-driven engine:
size at the close, ``floor(equity * value / (close * (1 + rate)))`` whole lots, and a MARKET
order for the difference that fills at the next bar's open through the same book (fill model,
cash rule, cost model and positions). Only the bars with a change run Python code; the equity
curve is numpy. Same fills as the event engine, by construction and by test.

Limits: one symbol, MARKET orders, and a fill model without latency, volume cap or random
slippage (those depend on the bar-by-bar path: use the event engine).
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from decimal import ROUND_FLOOR, Decimal

import numpy as np

from quantdesk.core.orders import Order, OrderStatus, OrderType, Product, Side, TimeInForce
from quantdesk.core.positions import Fill, Position
from quantdesk.strategy.base import Strategy
from quantdesk.strategy.context import BarArrays

from .book import Book, BookFill, to_price
from .costs import Executed, trade_date
from .data import Dataset
from .engine import EngineConfig, EngineRun

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
    raw = strategy.signals(bars, strategy.params)
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
    """The Python part: only the bars where the target changes (and, while an entry could not
    be paid for, the bars after it, as the event engine's strategy would retry)."""

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
        self.present = data.present[symbol]
        self.opens = data.fields[symbol]["open"]
        self.closes = data.fields[symbol]["close"]

    def run(self) -> None:
        target = self.target
        prev = np.r_[np.nan, target[:-1]]
        with np.errstate(invalid="ignore"):
            changed = ~np.isnan(target) & ((target != prev) | np.isnan(prev))
        points = np.flatnonzero(changed).tolist()
        n = len(target)
        targets = target.tolist()
        k = 0
        while k < len(points):
            t = points[k]
            k += 1
            while True:
                outcome = self._order_at(t, targets[t], n)
                if outcome is None or outcome >= n:
                    break
                # Cancelled for cash at bar `outcome`: the strategy orders again at that bar's
                # close if the target still holds there (and no change point handles it).
                t = outcome
                if k < len(points) and points[k] <= t:
                    break
                if targets[t] != targets[t] or targets[t] != targets[points[k - 1]]:
                    break

    def _order_at(self, t: int, value: float, n: int) -> int | None:
        """Order at bar ``t``'s close; None, or the fill bar where it was cancelled for cash."""
        close_t = to_price(float(self.closes[t]), self.tick)
        held = self.held
        equity = self.cash + held * close_t
        raw = equity * Decimal(repr(value)) / (close_t * self.rate)
        qty = int(abs(raw).to_integral_value(ROUND_FLOOR)) * (1 if raw >= 0 else -1)
        qty -= (abs(qty) % self.lot) * (1 if qty >= 0 else -1)
        delta = qty - held
        if delta == 0:
            return None
        side = Side.BUY if delta > 0 else Side.SELL
        order_id = f"bt-{len(self.orders) + 1}"
        if side is Side.SELL and -delta > held:
            self.orders.append(
                (order_id, t, side, -delta, 0, _ZERO, OrderStatus.REJECTED, "no CNC holding")
            )
            return None
        nxt = t + 1
        while nxt < n and not self.present[nxt]:
            nxt += 1
        if nxt >= n:  # placed on the last bar: stays open, as in the event engine
            self.orders.append((order_id, t, side, abs(delta), 0, _ZERO, OrderStatus.OPEN, ""))
            return None
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
                return nxt
            quantity = q
        if side is Side.SELL:
            day = (self.symbol, trade_date(at))
            if day not in self.sold_days:
                self.sold_days.add(day)
                fees = fees + costs.dp_charge(at)
        signed = quantity if side is Side.BUY else -quantity
        self.cash += -signed * price - fees.total
        self.held += signed
        self.orders.append(
            (order_id, t, side, quantity, quantity, price * quantity, OrderStatus.FILLED, "")
        )
        self.fills.append(
            BookFill(nxt, at, order_id, self.symbol, side, Product.CNC, quantity, price, fees, None)
        )
        return None

    def book(self) -> Book:
        """The run as a :class:`Book` (orders materialised after the timed loop)."""
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
