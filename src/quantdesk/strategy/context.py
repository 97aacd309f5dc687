"""What a strategy sees: the :class:`Context` interface and the values it hands out.

Three implementations exist (backtest, paper, live) and a strategy cannot tell them apart. The
context exposes only the current bar and the past: no future bar, no database, no network and no
other account's data.

Quantities are signed for positions (negative: short) and positive on orders (the side says
which way). Money (cash, equity, fill prices, fees) is ``Decimal``; bar prices and indicator
values are ``float`` (analytics), and are turned into tick-sized ``Decimal`` prices at the edge.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from quantdesk.strategy import indicators as ind

__all__ = ["BarArrays", "BarView", "Context", "FillEvent", "OrderUpdate"]


@dataclass(frozen=True, slots=True)
class FillEvent:
    """One execution of one of the strategy's orders."""

    order_id: str
    symbol: str
    side: str  # BUY / SELL
    quantity: int
    price: Decimal
    fees: Decimal
    time: datetime
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An order's state after a change."""

    order_id: str
    symbol: str
    side: str
    order_type: str
    product: str
    quantity: int
    filled_quantity: int
    status: str
    reason: str
    time: datetime
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class BarArrays:
    """Aligned bars of one symbol as numpy arrays (the vectorized path's input).

    ``time`` is the bar start in UTC epoch microseconds; prices are float64, ``volume`` int64.
    """

    symbol: str
    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.time)


class BarView:
    """The current bar of one symbol; attributes read the context's current position."""

    __slots__ = ("_ctx", "symbol")

    def __init__(self, ctx: Context, symbol: str) -> None:
        self._ctx = ctx
        self.symbol = symbol

    @property
    def open(self) -> float:
        return self._ctx._field(self.symbol, "open")

    @property
    def high(self) -> float:
        return self._ctx._field(self.symbol, "high")

    @property
    def low(self) -> float:
        return self._ctx._field(self.symbol, "low")

    @property
    def close(self) -> float:
        return self._ctx._field(self.symbol, "close")

    @property
    def volume(self) -> float:
        return self._ctx._field(self.symbol, "volume")

    def __repr__(self) -> str:
        return (
            f"BarView({self.symbol} o={self.open} h={self.high} l={self.low} c={self.close} "
            f"v={self.volume})"
        )


class Context(ABC):
    """The strategy's window on the market and its account."""

    log: logging.Logger | Any

    # -- time and data -----------------------------------------------------------------------

    @property
    @abstractmethod
    def time(self) -> datetime:
        """The current bar's start time (UTC)."""

    @property
    @abstractmethod
    def symbols(self) -> Sequence[str]:
        """The symbols this run trades, ``EXCHANGE:SYMBOL``."""

    @property
    @abstractmethod
    def interval(self) -> str:
        """The bar interval (``1m`` ... ``1d``)."""

    @abstractmethod
    def _field(self, symbol: str, name: str) -> float: ...

    def bar(self, symbol: str) -> BarView:
        """The current bar of ``symbol`` (its last bar if it has none at this time)."""
        return BarView(self, symbol)

    def close(self, symbol: str) -> float:
        """The last close of ``symbol``."""
        return self._field(symbol, "close")

    @abstractmethod
    def has_bar(self, symbol: str) -> bool:
        """True if ``symbol`` has a bar at the current time (not a carried-forward one)."""

    @abstractmethod
    def history(self, symbol: str, n: int) -> pd.DataFrame:
        """The last ``n`` bars of ``symbol`` up to and including the current one (columns
        time, open, high, low, close, volume); fewer at the start of the data."""

    # -- indicators (create them in on_start) ------------------------------------------------

    @abstractmethod
    def indicator(self, indicator: ind.Indicator, symbol: str) -> ind.Indicator:
        """Bind ``indicator`` to ``symbol``'s bars: its values follow the current bar, with
        warm-up (``None`` until it has enough bars)."""

    def sma(self, symbol: str, period: int) -> ind.Indicator:
        from quantdesk.strategy import indicators as ind

        return self.indicator(ind.SMA(period), symbol)

    def ema(self, symbol: str, period: int) -> ind.Indicator:
        from quantdesk.strategy import indicators as ind

        return self.indicator(ind.EMA(period), symbol)

    def rsi(self, symbol: str, period: int = 14) -> ind.Indicator:
        from quantdesk.strategy import indicators as ind

        return self.indicator(ind.RSI(period), symbol)

    def atr(self, symbol: str, period: int = 14) -> ind.Indicator:
        from quantdesk.strategy import indicators as ind

        return self.indicator(ind.ATR(period), symbol)

    def bollinger(self, symbol: str, period: int = 20, k: float = 2.0) -> ind.Indicator:
        from quantdesk.strategy import indicators as ind

        return self.indicator(ind.Bollinger(period, k), symbol)

    def macd(self, symbol: str, fast: int = 12, slow: int = 26, signal: int = 9) -> ind.Indicator:
        from quantdesk.strategy import indicators as ind

        return self.indicator(ind.MACD(fast, slow, signal), symbol)

    # -- account -----------------------------------------------------------------------------

    @abstractmethod
    def position(self, symbol: str) -> int:
        """Signed net quantity held in ``symbol`` (all products)."""

    @abstractmethod
    def positions(self) -> Mapping[str, int]:
        """Every non-zero net position."""

    @property
    @abstractmethod
    def cash(self) -> Decimal:
        """Cash, after every fill's cost and charges."""

    @property
    @abstractmethod
    def equity(self) -> Decimal:
        """Cash plus positions valued at their last close."""

    # -- orders --------------------------------------------------------------------------------

    @abstractmethod
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
        """Place an order for a signed ``quantity`` (positive buys, negative sells). Returns the
        order id, or None when it was rejected (the reason goes to ``on_order_update``)."""

    def buy(self, symbol: str, quantity: int, **kw: Any) -> str | None:
        return self.order(symbol, abs(quantity), **kw)

    def sell(self, symbol: str, quantity: int, **kw: Any) -> str | None:
        return self.order(symbol, -abs(quantity), **kw)

    @abstractmethod
    def cancel(self, order_id: str) -> bool:
        """Cancel a live order; False when it is not live."""

    @abstractmethod
    def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        """The strategy's live orders (of one symbol, or all)."""

    @abstractmethod
    def order_target_quantity(self, symbol: str, target: int, **kw: Any) -> str | None:
        """Order what takes the position (plus live orders) in ``symbol`` to ``target``."""

    @abstractmethod
    def order_target_percent(self, symbol: str, percent: float, **kw: Any) -> str | None:
        """Order what takes ``symbol``'s position to ``percent`` (a fraction: 1.0 is all) of
        equity, sized at the last close: ``floor(equity * percent / (close * (1 + rate)))``
        whole lots, ``rate`` being the cost model's per-side rate."""

    # -- model signals ---------------------------------------------------------------------------

    @abstractmethod
    def signal(self, name: str, symbol: str) -> float | None:
        """The latest value, at or before the current bar, of a stored signal series (a model's
        predictions); None when there is none."""
