"""A strategy deployed on a broker (paper now, live later): the live :class:`Context` and the
runner that feeds it bars.

The strategy object is the backtest's, unchanged. Its callbacks stay synchronous: orders and
cancels it asks for during a callback are queued with an id it gets at once (the order's
``client_order_id``) and sent to the broker right after the callback returns, in order.
Before each bar the runner refreshes the account snapshot (cash, positions, live orders) and
reports the fills and order changes since the last bar to ``on_fill`` / ``on_order_update``.

Indicators are the streaming form of the very objects a backtest computes in batch (equal bit
for bit), fed with each closed bar; bar prices are the broker's tick-sized decimals as floats,
which is also what a backtest reads (``Dataset.on_ticks``).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Protocol

import pandas as pd

from quantdesk.core.instruments import InstrumentSpec
from quantdesk.core.market import round_to_tick
from quantdesk.strategy.base import Strategy, scheduled_methods
from quantdesk.strategy.context import Context, FillEvent, OrderUpdate
from quantdesk.strategy.indicators import Indicator

__all__ = ["Account", "Intent", "LiveBar", "LiveContext", "Snapshot", "StrategyRunner"]

HISTORY = 5000  # bars kept per symbol for ctx.history
_FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class LiveBar:
    """One closed bar as the strategy reads it (floats of tick-sized prices)."""

    symbol: str
    time: datetime  # bar start, UTC
    end: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class Intent:
    """An order or a cancel the strategy asked for, sent after its callback returns."""

    client_order_id: str
    symbol: str = ""
    side: str = ""
    quantity: int = 0
    order_type: str = "MARKET"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    product: str = "CNC"
    time_in_force: str = "DAY"
    tag: str | None = None
    cancel: bool = False


@dataclass
class Snapshot:
    """The account as the strategy sees it before a bar."""

    cash: Decimal
    positions: dict[str, int]
    open_orders: list[OrderUpdate]
    fills: list[FillEvent] = field(default_factory=list)
    updates: list[OrderUpdate] = field(default_factory=list)


class Account(Protocol):
    """What the runner needs of a broker account (the OMS for paper; a broker adapter live)."""

    async def snapshot(self) -> Snapshot: ...

    async def send(self, intents: Sequence[Intent]) -> list[OrderUpdate]:
        """Place or cancel, in order; the updates of orders refused on the spot."""
        ...


class LiveContext(Context):
    def __init__(self, runner: StrategyRunner) -> None:
        self._r = runner
        self.log = logging.getLogger(f"quantdesk.strategy.{runner.strategy.name}")

    @property
    def time(self) -> datetime:
        return self._r.now

    @property
    def symbols(self) -> Sequence[str]:
        return self._r.symbols

    @property
    def interval(self) -> str:
        return self._r.interval

    def _last(self, symbol: str) -> LiveBar:
        bars = self._r.bars.get(symbol)
        if not bars:
            raise LookupError(f"no bar of {symbol} yet")
        return bars[-1]

    def _field(self, symbol: str, name: str) -> float:
        value: float = getattr(self._last(symbol), name)
        return value

    def has_bar(self, symbol: str) -> bool:
        bars = self._r.bars.get(symbol)
        if not bars:
            return False
        return bars[-1].time == self._r.now

    def history(self, symbol: str, n: int) -> pd.DataFrame:
        if n < 1:
            raise ValueError("history needs n >= 1")
        bars = list(self._r.bars.get(symbol, ()))[-n:]
        return pd.DataFrame(
            {
                "time": pd.to_datetime([b.time for b in bars], utc=True),
                **{k: [getattr(b, k) for b in bars] for k in _FIELDS},
            }
        )

    def indicator(self, indicator: Indicator, symbol: str) -> Indicator:
        if self._r.started:
            raise RuntimeError("create indicators in on_start, before the first bar")
        if symbol not in self._r.symbols:
            raise KeyError(f"{symbol} is not in this deployment")
        self._r.indicators.append((indicator, symbol))
        return indicator

    def position(self, symbol: str) -> int:
        return self._r.snapshot.positions.get(symbol, 0)

    def positions(self) -> Mapping[str, int]:
        return {s: q for s, q in self._r.snapshot.positions.items() if q}

    @property
    def cash(self) -> Decimal:
        return self._r.snapshot.cash

    @property
    def equity(self) -> Decimal:
        value = self._r.snapshot.cash
        for symbol, qty in self._r.snapshot.positions.items():
            if qty and self._r.bars.get(symbol):
                value += qty * self._r.price(symbol, self._last(symbol).close)
        return value

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
        if symbol not in self._r.symbols:
            raise KeyError(f"{symbol} is not in this deployment")
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise TypeError(f"quantity must be an int, got {quantity!r}")
        if quantity == 0:
            return None
        coid = self._r.next_id()
        self._r.pending.append(
            Intent(
                client_order_id=coid,
                symbol=symbol,
                side="BUY" if quantity > 0 else "SELL",
                quantity=abs(quantity),
                order_type=order_type,
                limit_price=self._r.limit(symbol, limit_price),
                stop_price=self._r.limit(symbol, stop_price),
                product=product,
                time_in_force=time_in_force,
                tag=tag,
            )
        )
        return coid

    def cancel(self, order_id: str) -> bool:
        live = {o.order_id for o in self._r.snapshot.open_orders}
        queued = {i.client_order_id for i in self._r.pending if not i.cancel}
        if order_id not in live and order_id not in queued:
            return False
        self._r.pending.append(Intent(client_order_id=order_id, cancel=True))
        return True

    def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        return [o for o in self._r.snapshot.open_orders if symbol is None or o.symbol == symbol]

    def _pending_quantity(self, symbol: str) -> int:
        total = 0
        for o in self._r.snapshot.open_orders:
            if o.symbol == symbol:
                left = o.quantity - o.filled_quantity
                total += left if o.side == "BUY" else -left
        cancelled = {i.client_order_id for i in self._r.pending if i.cancel}
        for i in self._r.pending:
            if not i.cancel and i.symbol == symbol and i.client_order_id not in cancelled:
                total += i.quantity if i.side == "BUY" else -i.quantity
        return total

    def order_target_quantity(self, symbol: str, target: int, **kw: Any) -> str | None:
        delta = int(target) - self.position(symbol) - self._pending_quantity(symbol)
        if delta == 0:
            return None
        return self.order(symbol, delta, **kw)

    def order_target_percent(self, symbol: str, percent: float, **kw: Any) -> str | None:
        close = self._r.price(symbol, self._last(symbol).close)
        rate = Decimal(1) + self._r.cost_rate
        raw = self.equity * Decimal(repr(float(percent))) / (close * rate)
        qty = int(abs(raw).to_integral_value(ROUND_FLOOR)) * (1 if raw >= 0 else -1)
        lot = self._r.specs[symbol].lot_size
        qty -= (abs(qty) % lot) * (1 if qty >= 0 else -1)
        return self.order_target_quantity(symbol, qty, **kw)

    def signal(self, name: str, symbol: str) -> float | None:
        reader = self._r.signals
        # As in a backtest: the signals known when the current bar closed.
        return None if reader is None else reader(name, symbol, self._r.closed_at)


class StrategyRunner:
    """Feeds closed bars to one strategy and sends its orders to an :class:`Account`."""

    def __init__(
        self,
        strategy: Strategy,
        *,
        symbols: Sequence[str],
        interval: str,
        account: Account,
        specs: Mapping[str, InstrumentSpec],
        id_prefix: str,
        tz: Any,
        cost_rate: Decimal = Decimal(0),
        signals: Callable[[str, str, datetime], float | None] | None = None,
        on_error: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self.strategy = strategy
        self.symbols = tuple(symbols)
        self.interval = interval
        self.account = account
        self.specs = dict(specs)
        self.id_prefix = id_prefix
        self.tz = tz
        self.cost_rate = cost_rate
        self.signals = signals
        self.on_error = on_error
        self.bars: dict[str, deque[LiveBar]] = {s: deque(maxlen=HISTORY) for s in self.symbols}
        self.indicators: list[tuple[Indicator, str]] = []
        self.pending: list[Intent] = []
        self.snapshot = Snapshot(Decimal(0), {}, [])
        self.started = False
        self.now: datetime = datetime.min.replace(tzinfo=UTC)
        self.closed_at: datetime = self.now  # the current bar's end
        self.seq = 0
        self.ctx = LiveContext(self)
        self._schedule = scheduled_methods(strategy)
        self._fired: dict[time, object] = {}

    def next_id(self) -> str:
        self.seq += 1
        return f"{self.id_prefix}{self.seq}"

    def price(self, symbol: str, value: float) -> Decimal:
        return round_to_tick(Decimal(repr(value)), self.specs[symbol].tick_size)

    def limit(self, symbol: str, value: Decimal | float | None) -> Decimal | None:
        if value is None or isinstance(value, Decimal):
            return value
        if not math.isfinite(value):
            raise ValueError("a price must be finite")
        return self.price(symbol, float(value))

    async def start(self, seq: int = 0) -> None:
        """``on_start``; ``seq`` continues the order ids of an earlier run (a restart)."""
        self.seq = seq
        self.snapshot = await self.account.snapshot()
        self.strategy.on_start(self.ctx)
        self.started = True

    def warm_up(self, bars: Sequence[LiveBar]) -> None:
        """Past bars (time order) into the indicators and history, with no callbacks."""
        for bar in bars:
            self._absorb(bar)

    def _absorb(self, bar: LiveBar) -> None:
        self.bars[bar.symbol].append(bar)
        for indicator, symbol in self.indicators:
            if symbol == bar.symbol:
                indicator.update(*(getattr(bar, name) for name in indicator.inputs))

    async def on_bars(self, bars: Sequence[LiveBar]) -> None:
        """One bar time: every symbol's bar that closed at it."""
        if not bars:
            return
        snapshot = await self.account.snapshot()
        self.snapshot = snapshot
        for fill in snapshot.fills:
            self.strategy.on_fill(self.ctx, fill)
        for update in snapshot.updates:
            self.strategy.on_order_update(self.ctx, update)
        await self._flush()
        for bar in bars:
            self._absorb(bar)
        self.now = bars[0].time
        end = max(b.end for b in bars)
        self.closed_at = end
        self.strategy.on_bar(self.ctx)
        local = end.astimezone(self.tz)
        for moment, method in self._schedule:
            if local.time() >= moment and self._fired.get(moment) != local.date():
                self._fired[moment] = local.date()
                method(self.ctx)
        await self._flush()

    async def _flush(self) -> None:
        if not self.pending:
            return
        intents, self.pending = self.pending, []
        refused = await self.account.send(intents)
        for update in refused:
            self.strategy.on_order_update(self.ctx, update)

    def stop(self) -> None:
        self.strategy.on_stop(self.ctx)
