"""The event-driven backtest engine: one strategy over a :class:`Dataset` on a simulated clock.

Per bar time ``i``, in order:

1. working orders placed on earlier bars meet bar ``i`` through the shared fill model (a MARKET
   order fills at the open; LIMIT and stop orders on the bar's path), then ``on_fill`` /
   ``on_order_update`` run;
2. the strategy's indicators move to bar ``i`` (precomputed over the whole run with the batch
   form, which equals the streaming form bit for bit, so no value depends on a later bar);
3. ``on_bar(ctx)``; orders it places are accepted at bar ``i``'s END and act from bar ``i+1``;
4. at flagged bars: scheduled ``@at`` methods, the MIS square-off (at the close of the last bar
   ending at or before the square-off time; daily bars: the session's close), and at a session's
   last bar the expiry of DAY orders placed before it. An order placed ON a session's last bar
   carries over and acts at the next session's open (like an after-market order).

The hot path touches no Decimal and allocates nothing on a bar with no working order: bar
fields and indicator values are plain Python floats read from lists; equity is derived from the
fills and the closes after the run.
"""

from __future__ import annotations

import gc
import logging
import random
import time as _time
import traceback
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import numpy as np
import pandas as pd

from quantdesk.core.fills import FillModel
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.core.market import Bar, Quote
from quantdesk.core.orders import Order, OrderType, Product, Side, TimeInForce
from quantdesk.core.risk import RiskLimits
from quantdesk.strategy.base import Strategy, scheduled_methods
from quantdesk.strategy.context import Context, FillEvent, OrderUpdate
from quantdesk.strategy.indicators import Indicator

from .book import Book, BookFill, to_price, trusted_bar
from .costs import CostModel
from .data import Dataset, release_free_memory

__all__ = ["EngineConfig", "EngineRun", "EventEngine", "SignalReader", "StrategyFailed"]

_US = 1_000_000
_CHUNK = 1 << 13  # progress is reported (and a cancel can act) every chunk
_ORDER_TYPES = {t.value: t for t in OrderType}
_PRODUCTS = {p.value: p for p in Product}
_TIFS = {t.value: t for t in TimeInForce}
Progress = Callable[[int, int], None]
SignalReader = Callable[[str, str, datetime], float | None]


class StrategyFailed(RuntimeError):
    """The strategy raised; carries the traceback text."""

    code = "BACKTEST_STRATEGY_FAILED"

    def __init__(self, where: str, trace: str) -> None:
        super().__init__(f"the strategy raised in {where}: {trace.strip().splitlines()[-1]}")
        self.where = where
        self.trace = trace

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.where, self.trace))


@dataclass(frozen=True)
class EngineConfig:
    cash: Decimal
    costs: CostModel
    fill_model: FillModel
    specs: Mapping[str, InstrumentSpec]
    seed: int = 0
    limits: RiskLimits | None = None
    mis_leverage: Decimal = Decimal(5)
    mis_square_off_minutes: int = 10
    signals: SignalReader | None = None


@dataclass
class EngineRun:
    """What the engine produced; :mod:`quantdesk.backtest.result` turns it into a result."""

    dataset: Dataset
    config: EngineConfig
    book: Book
    seconds: float
    log: list[str] = field(default_factory=list)


class _Ctx(Context):
    """The backtest's context: reads the engine's current bar index."""

    def __init__(self, engine: EventEngine) -> None:
        self._e = engine
        self.i = 0
        self._cols: dict[str, dict[str, Any]] = engine.columns
        self._net = engine.book.net
        # ``position`` is called on nearly every bar: the net dict's own lookup (a C call).
        self.position = self._net.__getitem__  # type: ignore[method-assign,assignment]
        self.log = logging.getLogger(f"quantdesk.strategy.{engine.strategy.name}")

    # time and data
    @property
    def time(self) -> datetime:
        return self._e.data.datetime_at(self.i)

    @property
    def symbols(self) -> Sequence[str]:
        return self._e.data.symbols

    @property
    def interval(self) -> str:
        return self._e.data.interval

    def _field(self, symbol: str, name: str) -> float:
        return float(self._cols[symbol][name][self.i])

    def close(self, symbol: str) -> float:
        return self._cols[symbol]["close"][self.i]

    def has_bar(self, symbol: str) -> bool:
        return bool(self._e.data.present[symbol][self.i])

    def history(self, symbol: str, n: int) -> pd.DataFrame:
        if n < 1:
            raise ValueError("history needs n >= 1")
        data = self._e.data
        real = np.flatnonzero(data.present[symbol][: self.i + 1])[-n:]
        cols = data.fields[symbol]
        return pd.DataFrame(
            {
                "time": pd.to_datetime(data.time[real], unit="us", utc=True),
                **{k: cols[k][real] for k in ("open", "high", "low", "close", "volume")},
            }
        )

    def indicator(self, indicator: Indicator, symbol: str) -> Indicator:
        return self._e.bind(indicator, symbol)

    # account
    def position(self, symbol: str) -> int:
        return self._net.get(symbol, 0)

    def positions(self) -> Mapping[str, int]:
        return {s: q for s, q in self._e.book.net.items() if q}

    @property
    def cash(self) -> Decimal:
        return self._e.book.cash

    @property
    def equity(self) -> Decimal:
        return self._e.book.equity({s: self._e.mark(s, self.i) for s in self._e.book.net})

    # orders
    def order(
        self,
        symbol: str,
        quantity: int,
        *,
        order_type: str = "MARKET",
        limit_price: Decimal | float | None = None,
        stop_price: Decimal | float | None = None,
        product: str = "CNC",
        time_in_force: str = "DAY",
        tag: str | None = None,
    ) -> str | None:
        return self._e.place(
            self.i,
            symbol,
            quantity,
            order_type,
            limit_price,
            stop_price,
            product,
            time_in_force,
            tag,
        )

    def cancel(self, order_id: str) -> bool:
        return self._e.cancel(self.i, order_id)

    def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        e = self._e
        at = e.data.end_at(self.i)
        return [
            e.update_of(w.order, "open", at)
            for w in e.book.working
            if symbol is None or w.order.symbol == symbol
        ]

    def order_target_quantity(self, symbol: str, target: int, **kw: Any) -> str | None:
        book = self._e.book
        delta = int(target) - book.net.get(symbol, 0) - book.pending(symbol)
        if delta == 0:
            return None
        if not kw:  # the usual call: straight to the engine with the defaults
            return self._e.place(self.i, symbol, delta, "MARKET", None, None, "CNC", "DAY", None)
        return self.order(symbol, delta, **kw)

    def order_target_percent(self, symbol: str, percent: float, **kw: Any) -> str | None:
        return self.order_target_quantity(
            symbol, self._e.target_size(self.i, symbol, percent), **kw
        )

    def signal(self, name: str, symbol: str) -> float | None:
        reader = self._e.config.signals
        return None if reader is None else reader(name, symbol, self._e.data.end_at(self.i))


class EventEngine:
    """Runs one strategy over one dataset."""

    def __init__(
        self,
        strategy: Strategy,
        data: Dataset,
        config: EngineConfig,
        *,
        progress: Progress | None = None,
    ) -> None:
        self.strategy = strategy
        self.data = data
        self.config = config
        self.progress = progress
        # Closes are read by strategies (ctx.close) and marks: compact arrays of doubles (an
        # index gives a Python float, far cheaper than numpy's scalar; a quarter of a list's
        # memory). The other fields are read only at fills and by ctx.bar(): numpy arrays.
        self.columns: dict[str, dict[str, Any]] = {
            s: {**cols, "close": array("d", cols["close"].tobytes())}
            for s, cols in data.fields.items()
        }
        self.book = Book(
            cash=config.cash,
            costs=config.costs,
            fill_model=config.fill_model,
            specs=dict(config.specs),
            limits=config.limits,
            leverage=config.mis_leverage,
            rng=random.Random(config.seed),
            net=_Net(),
        )
        # (indicator, attribute, values as a compact array of doubles, first index with a value)
        self.bindings: list[tuple[Indicator, str, array[float], int]] = []
        self._fractions: dict[float, Decimal] = {}
        self._pricers = {s: Pricer(spec.tick_size) for s, spec in config.specs.items()}
        self._rate = Decimal(1) + config.costs.rate
        self.started = False
        self.mis_closed = (-1, -1)  # (session, bar index) of the last MIS square-off
        kind = type(strategy)
        self._wants_fills = kind.on_fill is not Strategy.on_fill
        self._wants_updates = kind.on_order_update is not Strategy.on_order_update
        self._last_in_session = data.last_in_session
        self.ctx = _Ctx(self)
        self._present = {s: p.tobytes() for s, p in data.present.items()}  # 1 byte a bar

    # -- helpers used by the context ------------------------------------------------------------

    def mark(self, symbol: str, i: int) -> Decimal:
        return self._pricers[symbol](self.columns[symbol]["close"][i])

    def target_size(self, i: int, symbol: str, percent: float) -> int:
        """``floor(equity * percent / (close * (1 + rate)))`` whole lots (toward zero)."""
        if symbol not in self.columns:
            raise KeyError(f"{symbol} is not in this run")
        book = self.book
        equity = book.cash
        for held_symbol, qty in book.net.items():
            if qty:
                equity += qty * self.mark(held_symbol, i)
        fraction = self._fractions.get(percent)
        if fraction is None:
            fraction = self._fractions[percent] = Decimal(repr(float(percent)))
        raw = equity * fraction / (self.mark(symbol, i) * self._rate)
        qty = int(abs(raw).to_integral_value(ROUND_FLOOR)) * (1 if raw >= 0 else -1)
        lot = self.config.specs[symbol].lot_size
        return qty - (abs(qty) % lot) * (1 if qty >= 0 else -1)

    def bind(self, indicator: Indicator, symbol: str) -> Indicator:
        if self.started:
            raise RuntimeError("create indicators in on_start, before the first bar")
        if symbol not in self.data.fields:
            raise KeyError(f"{symbol} is not in this run")
        present = self.data.present[symbol]
        cols = self.data.fields[symbol]
        # Over the symbol's real bars only, then carried forward onto the run's timeline.
        outputs = indicator.batch(*(cols[name][present] for name in indicator.inputs))
        rank = np.maximum(np.cumsum(present) - 1, 0)
        seen = np.cumsum(present) > 0
        for k, name in enumerate(indicator.outputs):
            values = np.asarray(outputs[name], dtype=np.float64)
            aligned = np.where(seen, values[rank] if len(values) else np.nan, np.nan)
            # The primary output is ``value``; others are attributes of their own name (unless
            # the indicator derives them from ``value``).
            attr = "value" if k == 0 else name
            if k and isinstance(getattr(type(indicator), name, None), property):
                continue
            # Until its first value (warm-up) the attribute stays None, as in streaming; from
            # then on the batch values, read as Python floats from a compact array.
            valid = np.flatnonzero(~np.isnan(aligned))
            start = int(valid[0]) if len(valid) else len(aligned)
            self.bindings.append((indicator, attr, array("d", aligned.tobytes()), start))
        return indicator

    def update_of(self, order: Order, reason: str, at: datetime) -> OrderUpdate:
        return OrderUpdate(
            order_id=order.id,
            symbol=order.symbol,
            side=str(order.side),
            order_type=str(order.order_type),
            product=str(order.product),
            quantity=order.quantity,
            filled_quantity=order.filled_quantity,
            status=str(order.status),
            reason=reason,
            time=at,
            tag=self.book.tags.get(order.id),
        )

    def place(
        self,
        i: int,
        symbol: str,
        quantity: int,
        order_type: str,
        limit_price: Decimal | float | None,
        stop_price: Decimal | float | None,
        product: str,
        time_in_force: str,
        tag: str | None,
    ) -> str | None:
        if symbol not in self.columns:
            raise KeyError(f"{symbol} is not in this run")
        if isinstance(quantity, bool) or not isinstance(quantity, int | np.integer):
            raise TypeError(f"quantity must be an int, got {quantity!r}")
        if quantity == 0:
            return None
        spec = self.config.specs[symbol]
        at = self.data.end_at(i)
        session, squared = self.mis_closed
        if product == "MIS" and session == int(self.data.session[i]) and i > squared:
            raise_after = "MIS orders are closed for the session after the square-off"
            rejected = self.book.submit(
                index=i,
                at=at,
                symbol=symbol,
                side=Side.BUY if quantity > 0 else Side.SELL,
                quantity=abs(int(quantity)),
                order_type=OrderType.MARKET,
                product=Product.MIS,
                time_in_force=TimeInForce.DAY,
                limit_price=None,
                stop_price=None,
                reference=self.mark(symbol, i),
                mark=lambda s: self.mark(s, i),
                tag=tag,
                refuse=raise_after,
            )
            self._notify_update(rejected, raise_after, at)
            return None
        try:
            kind = _ORDER_TYPES[order_type]
            product_of = _PRODUCTS[product]
            tif = _TIFS[time_in_force]
        except KeyError as exc:
            raise ValueError(
                f"unknown {exc.args[0]!r}: order_type is one of {', '.join(_ORDER_TYPES)}, "
                f"product {', '.join(_PRODUCTS)}, time_in_force {', '.join(_TIFS)}"
            ) from None
        order = self.book.submit(  # index, at, symbol, side, quantity, type, product, tif,
            i,  # limit, stop, reference price, marks, tag
            at,
            symbol,
            Side.BUY if quantity > 0 else Side.SELL,
            abs(int(quantity)),
            kind,
            product_of,
            tif,
            None if limit_price is None else _price(limit_price, spec),
            None if stop_price is None else _price(stop_price, spec),
            self.mark(symbol, i),
            lambda s: self.mark(s, i),
            tag,
        )
        if not order.is_live:
            self._notify_update(order, self.book.events[-1].reason, at)
            return None
        return order.id

    def cancel(self, i: int, order_id: str) -> bool:
        for w in self.book.working:
            if w.order.id == order_id:
                at = self.data.end_at(i)
                order = self.book.end(w, at, "cancel", "cancelled by the strategy")
                self._notify_update(order, "cancelled by the strategy", at)
                return True
        return False

    # -- callbacks ---------------------------------------------------------------------------------

    def _call(self, where: str, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            raise StrategyFailed(where, traceback.format_exc()) from exc

    def _notify_update(self, order: Order, reason: str, at: datetime) -> None:
        if not self._wants_updates:
            return
        self._call(
            "on_order_update",
            self.strategy.on_order_update,
            self.ctx,
            self.update_of(order, reason, at),
        )

    def _notify_fill(self, fill: BookFill) -> None:
        if not self._wants_fills:
            return
        event = FillEvent(
            order_id=fill.order_id,
            symbol=fill.symbol,
            side=str(fill.side),
            quantity=fill.quantity,
            price=fill.price,
            fees=fill.fees,
            time=fill.time,
            tag=fill.tag,
        )
        self._call("on_fill", self.strategy.on_fill, self.ctx, event)

    # -- per-bar work ----------------------------------------------------------------------

    def _bar(self, symbol: str, i: int) -> Bar:
        """Bar ``i`` of ``symbol`` as the core's decimal bar (prices on the tick)."""
        cols = self.columns[symbol]
        pricer = self._pricers[symbol]
        get = pricer.cache.get
        fo, fh, fl, fc = (
            float(cols["open"][i]),
            float(cols["high"][i]),
            float(cols["low"][i]),
            cols["close"][i],
        )
        o = get(fo) or pricer(fo)
        h = get(fh) or pricer(fh)
        lo = get(fl) or pricer(fl)
        c = get(fc) or pricer(fc)
        return trusted_bar(
            self.data.datetime_at(i),
            symbol,
            o,
            max(h, o, c),
            min(lo, o, c),
            c,
            int(cols["volume"][i]),
        )

    def _match(self, i: int) -> None:
        bars: dict[str, Bar] = {}
        for w in list(self.book.working):
            symbol = w.order.symbol
            if w.placed >= i or not self._present[symbol][i]:
                continue
            bar = bars.get(symbol)
            if bar is None:
                bar = bars[symbol] = self._bar(symbol, i)
            before = len(self.book.fills)
            changed = self.book.match_bar(w, i, bar)
            if self._wants_fills:
                for fill in self.book.fills[before:]:
                    self._notify_fill(fill)
            if self._wants_updates and changed and not changed[-1].is_live:
                last = changed[-1]
                self._notify_update(last, self.book.events[-1].reason, bar.ts)

    def _flags(self) -> tuple[bytes, dict[int, list[Callable[[Context], None]]], set[int]]:
        """Per bar: 0, or a non-zero flag when something happens after ``on_bar``."""
        data = self.data
        n = len(data)
        last = data.last_in_session
        flags = last.astype(np.uint8)
        scheduled: dict[int, list[Callable[[Context], None]]] = {}
        tz = data.calendar.tz if data.calendar is not None else "Asia/Kolkata"
        ends = pd.DatetimeIndex(pd.to_datetime(data.end, unit="us", utc=True)).tz_convert(tz)
        tod = (ends.hour * 3600 + ends.minute * 60 + ends.second).to_numpy()
        same_session_before = np.r_[False, data.session[1:] == data.session[:-1]]
        for moment, method in scheduled_methods(self.strategy):
            at = moment.hour * 3600 + moment.minute * 60 + moment.second
            reached = tod >= at
            first = reached & ~(same_session_before & np.r_[False, reached[:-1]])
            for i in np.flatnonzero(first).tolist():
                scheduled.setdefault(i, []).append(method)
                flags[i] = 1
        # MIS square-off: the last bar of each session ending at or before the cut-off, or the
        # session's last bar when none does (daily bars).
        cutoff = data.session_close - self.config.mis_square_off_minutes * 60 * _US
        before = data.end <= cutoff
        next_not_before = np.r_[~before[1:] | last[:-1], True] if n else before
        square = (before & next_not_before) | (last & ~_any_before_in_session(before, data.session))
        square_off = set(np.flatnonzero(square).tolist())
        for i in square_off:
            flags[i] = 1
        return flags.tobytes(), scheduled, square_off

    def _square_off(self, i: int) -> None:
        book = self.book
        at = self.data.end_at(i)
        last = bool(self._last_in_session[i])
        self.mis_closed = (int(self.data.session[i]), i)
        # An order placed on a session's last bar belongs to the next session (daily bars).
        for w in [
            w for w in book.working if w.order.product is Product.MIS and (w.placed < i or not last)
        ]:
            order = book.end(w, at, "cancel", "MIS square-off")
            self._notify_update(order, "MIS square-off", at)
        for (symbol, product), pos in list(book.positions.items()):
            if product is not Product.MIS or pos.quantity == 0:
                continue
            close = self.mark(symbol, i)
            order = book.submit(
                index=i,
                at=at,
                symbol=symbol,
                side=Side.SELL if pos.quantity > 0 else Side.BUY,
                quantity=abs(pos.quantity),
                order_type=OrderType.MARKET,
                product=Product.MIS,
                time_in_force=TimeInForce.DAY,
                limit_price=None,
                stop_price=None,
                reference=close,
                mark=lambda s: self.mark(s, i),
                tag="square-off",
            )
            closing = next((w for w in book.working if w.order.id == order.id), None)
            if closing is None:
                continue
            before = len(book.fills)
            book.match_quote(closing, i, Quote(symbol, close, close, close, 0, at))
            for fill in book.fills[before:]:
                self._notify_fill(fill)

    def _expire_day_orders(self, i: int) -> None:
        at = self.data.end_at(i)
        for w in list(self.book.working):
            if w.placed < i and w.order.time_in_force is TimeInForce.DAY:
                order = self.book.end(w, at, "expire", "expired at the session close")
                self._notify_update(order, "expired at the session close", at)

    # -- the run -------------------------------------------------------------------------

    def run(self) -> EngineRun:
        started = _time.perf_counter()
        strategy, ctx, book = self.strategy, self.ctx, self.book
        n = len(self.data)
        self._call("on_start", strategy.on_start, ctx)
        self.started = True
        flags, scheduled, square_off = self._flags()
        release_free_memory()  # the set-up's temporaries (indicator batches, time arrays)
        last = self.data.last_in_session.tobytes()
        bindings = self.bindings
        on_bar = strategy.on_bar
        working = book.working
        i = 0
        # The loop allocates few objects and no reference cycles; the cyclic collector would
        # only re-scan the run's big lists. Off for the loop, restored after.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for chunk in range(0, n, _CHUNK):
                for i in range(chunk, min(n, chunk + _CHUNK)):
                    ctx.i = i
                    if working:
                        self._match(i)
                    for ind, attr, values, start in bindings:
                        if i >= start:
                            setattr(ind, attr, values[i])
                    on_bar(ctx)
                    if flags[i]:
                        for method in scheduled.get(i, ()):
                            method(ctx)
                        if i in square_off:
                            self._square_off(i)
                        if last[i]:
                            self._expire_day_orders(i)
                if self.progress is not None:
                    self.progress(min(n, chunk + _CHUNK), n)
        except StrategyFailed:
            raise
        except Exception as exc:
            where = f"on_bar at {self.data.datetime_at(i)}"
            raise StrategyFailed(where, traceback.format_exc()) from exc
        finally:
            if collecting:
                gc.enable()
        self._call("on_stop", strategy.on_stop, ctx)
        return EngineRun(self.data, self.config, book, _time.perf_counter() - started)


class _Net(dict[str, int]):
    """Net quantity per symbol; 0 for a symbol never traded (without inserting it)."""

    def __missing__(self, symbol: str) -> int:
        return 0


class Pricer:
    """A float price as a Decimal on one tick (:func:`to_price`), memoised per value: bar
    prices repeat, and a dict keyed by the float alone is the cheapest lookup."""

    __slots__ = ("cache", "tick")

    def __init__(self, tick: Decimal) -> None:
        self.tick = tick
        self.cache: dict[float, Decimal] = {}

    def __call__(self, value: float) -> Decimal:
        price = self.cache.get(value)
        if price is None:
            if len(self.cache) >= 1 << 18:
                self.cache.clear()
            price = self.cache[value] = to_price(value, self.tick)
        return price


def _any_before_in_session(before: np.ndarray, session: np.ndarray) -> np.ndarray:
    """Per bar: does any bar of its session end at or before the square-off cut-off?"""
    if not len(session):
        return before
    starts = np.flatnonzero(np.r_[True, session[1:] != session[:-1]])
    counts = np.add.reduceat(before.astype(np.int64), starts)
    lengths = np.diff(np.r_[starts, len(session)])
    return np.repeat(counts > 0, lengths)


def _price(value: Decimal | float | None, spec: InstrumentSpec) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    return to_price(float(value), spec.tick_size)
