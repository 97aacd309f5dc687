"""Streaming features: the same :class:`FeatureSet` fed one bar at a time (live and paper
trading), equal to the batch frame within 1e-9 (absolute below 1, relative above).

Recursive indicators (RSI, MACD, ATR) are the incremental ones of
:mod:`quantdesk.strategy.indicators`, which follow TA-Lib's recurrences; window sums and means
replay TA-Lib's SUM/SMA running totals operation for operation (bit for bit, when the stream
starts at the batch's first bar); window variances are computed exactly enough (``math.fsum`` of
deviations from the latest value) to agree with TA-Lib's accurate VAR/STDDEV to the last bits,
and both give exactly 0 for a flat window. Custom features have no streaming form: a set holding
one is refused.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from quantdesk.ml.features._clock import wall_clock
from quantdesk.ml.features.batch import BAR_COLUMNS, rank_pct_row, session_open_seconds
from quantdesk.strategy.indicators import ATR, MACD, RSI

if TYPE_CHECKING:
    from quantdesk.ml.features.spec import Feature, FeatureSet

__all__ = ["StreamingFeatures"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAN = math.nan


class _Bar(NamedTuple):
    open: float
    high: float
    low: float
    close: float
    volume: float
    minutes: float  # since the session open, exchange time
    weekday: int


class _Window:
    """The last ``size`` values of one input, their mean as TA-Lib's SMA computes it (the same
    running total, the same operations: bit for bit) and their exact population variance."""

    def __init__(self, size: int, take: Callable[[_Bar], float]) -> None:
        self.size, self.take = size, take
        self.values: deque[float] = deque(maxlen=size)
        self._total = 0.0
        self.sum = _NAN  # TA-Lib's SUM of the window once full

    def update(self, bar: _Bar) -> None:
        self.push(self.take(bar))

    def push(self, x: float) -> None:
        self.values.append(x)
        self._total += x
        if len(self.values) == self.size:
            self.sum = self._total
            self._total -= self.values[0]

    @property
    def full(self) -> bool:
        return len(self.values) == self.size

    def mean(self) -> float:
        return self.sum / self.size

    def sd(self) -> float:
        """Population std-dev, from deviations to the latest value: exactly 0 for a flat
        window (as TA-Lib's), and no cancellation at high price levels."""
        last = self.values[-1]
        total = squares = 0.0
        for x in self.values:  # small deviations: plain sums lose nothing that matters here
            d = x - last
            total += d
            squares += d * d
        mean = total / self.size
        var = squares / self.size - mean * mean
        return math.sqrt(var) if var > 0.0 else 0.0


class _LogReturns(_Window):
    """The last ``size`` one-bar log returns, ``log1p((c - c[-1]) / c[-1])`` as in batch."""

    def __init__(self, size: int) -> None:
        super().__init__(size, lambda bar: bar.close)
        self.prev: float | None = None

    def update(self, bar: _Bar) -> None:
        if self.prev is not None:
            self.push(math.log1p((bar.close - self.prev) / self.prev))
        self.prev = bar.close


class _Vwap:
    """Windows of typical price, volume and their product (TA-Lib SUM / SMA replays)."""

    def __init__(self, size: int) -> None:
        self.typical = _Window(size, lambda bar: (bar.high + bar.low + bar.close) / 3.0)
        self.volume = _Window(size, lambda bar: bar.volume)
        self.flow = _Window(size, lambda bar: (bar.high + bar.low + bar.close) / 3.0 * bar.volume)

    def update(self, bar: _Bar) -> None:
        for window in (self.typical, self.volume, self.flow):
            window.update(bar)

    def value(self) -> float:
        if any(v > 0.0 for v in self.volume.values):
            return self.flow.sum / self.volume.sum
        return self.typical.mean()


class _Indicator:
    """An incremental indicator of :mod:`quantdesk.strategy.indicators` fed from bars."""

    def __init__(self, indicator: RSI | MACD | ATR, fields: tuple[str, ...]) -> None:
        self.indicator, self.fields = indicator, fields
        get: Any = operator.attrgetter(*fields)  # a tuple for several fields, else the value
        self._inputs: Callable[[_Bar], tuple[float, ...]] = (
            get if len(fields) > 1 else (lambda bar: (get(bar),))
        )

    def update(self, bar: _Bar) -> None:
        self.indicator.update(*self._inputs(bar))

    def get(self, name: str) -> float:
        value = getattr(self.indicator, name)
        return _NAN if value is None else float(value)


# A feature's streaming form: the key and factory of the state it reads (shared between
# features with the same key, updated once per bar) and how it reads a value from it.
Reader = Callable[[Any, _Bar, deque[float]], float]


def _stateless(read: Callable[[_Bar, deque[float]], float]) -> tuple[tuple[Any, ...], None, Reader]:
    return ("none",), None, lambda _state, bar, closes: read(bar, closes)


def _form(f: Feature) -> tuple[tuple[Any, ...], Callable[[], Any] | None, Reader]:
    p: dict[str, Any] = dict(f.params)
    kind = f.kind
    if kind == "return":
        h = p["horizon"]
        return _stateless(lambda bar, c: _rocp(c, h))
    if kind == "log_return":
        h = p["horizon"]
        return _stateless(lambda bar, c: math.log1p(_rocp(c, h)))  # NaN stays NaN
    if kind == "gap":
        return _stateless(lambda bar, c: bar.open / c[-2] - 1.0 if len(c) > 1 else _NAN)
    if kind == "time_of_day":
        return _stateless(lambda bar, c: bar.minutes)
    if kind == "day_of_week":
        return _stateless(lambda bar, c: float(bar.weekday))
    if kind == "volatility":
        w = p["window"]
        return ("logret", w), lambda: _LogReturns(w), lambda s, bar, c: _sd(s)
    if kind == "rsi":
        n = p["period"]
        return ("rsi", n), lambda: _Indicator(RSI(n), ("close",)), lambda s, b, c: s.get("value")
    if kind == "atr":
        n = p["period"]
        make_atr = lambda: _Indicator(ATR(n), ("high", "low", "close"))  # noqa: E731
        return ("atr", n), make_atr, lambda s, bar, c: s.get("value") / bar.close
    if kind == "macd":
        args = (p["fast"], p["slow"], p["signal"])
        attr = {"line": "macd", "signal": "signal", "hist": "hist"}[p["output"]]
        make_macd = lambda: _Indicator(MACD(*args), ("close",))  # noqa: E731
        return ("macd", *args), make_macd, lambda s, bar, c: s.get(attr) / bar.close
    if kind == "bollinger_b":
        n, k = p["period"], p["k"]
        make_bb = lambda: _Window(n, lambda bar: bar.close)  # noqa: E731
        return ("close", n), make_bb, lambda s, bar, c: _percent_b(s, bar.close, k)
    if kind == "volume_z":
        n = p["window"]
        make_vol = lambda: _Window(n, lambda bar: bar.volume)  # noqa: E731
        return ("volume", n), make_vol, lambda s, bar, c: _z(s, bar.volume)
    if kind == "vwap_distance":
        n = p["window"]
        return ("vwap", n), lambda: _Vwap(n), lambda s, bar, c: bar.close / s.value() - 1.0
    raise ValueError(f"feature {f.name!r} ({kind}) has no streaming form")


def _rocp(closes: deque[float], h: int) -> float:
    """TA-Lib's ROCP: ``(c - c[-h]) / c[-h]``."""
    if len(closes) <= h:
        return _NAN
    base = closes[-1 - h]
    return (closes[-1] - base) / base


def _sd(window: _Window) -> float:
    return window.sd() if window.full else _NAN


def _percent_b(window: _Window, close: float, k: float) -> float:
    if not window.full:
        return _NAN
    width = window.sd() * (2.0 * k)
    return (close - window.mean()) / width + 0.5 if width > 0.0 else 0.5


def _z(window: _Window, volume: float) -> float:
    if not window.full:
        return _NAN
    sd = window.sd()
    return (volume - window.mean()) / sd if sd > 0.0 else 0.0


class _Symbol:
    """One symbol's streaming state and its latest feature values."""

    def __init__(self, features: list[Feature]) -> None:
        forms = [_form(f) for f in features]
        horizons = [int(f.param("horizon")) for f in features if "horizon" in dict(f.params)]
        self.closes: deque[float] = deque(maxlen=max([1, *horizons]) + 1)
        self.states: dict[tuple[Any, ...], Any] = {}
        for key, make, _read in forms:
            if make is not None and key not in self.states:
                self.states[key] = make()
        self.readers = [(self.states.get(key), read) for key, _make, read in forms]
        self.lookbacks = [f.lookback for f in features]
        self.count = 0
        self.last: int | None = None  # UTC nanoseconds of the latest bar
        self.values = [_NAN] * len(features)

    def update(self, bar: _Bar) -> list[float]:
        self.closes.append(bar.close)
        for state in self.states.values():
            state.update(bar)
        self.count += 1
        closes, seen = self.closes, self.count
        self.values = [
            read(state, bar, closes) if seen > lookback else _NAN
            for (state, read), lookback in zip(self.readers, self.lookbacks, strict=True)
        ]
        return self.values


class StreamingFeatures:
    """Per-symbol features bar by bar, and cross-sectional ranks once a timestamp is complete.

    ``update`` returns the symbol's per-symbol features (``feature_set.series_columns``, NaN
    during warm-up). ``vector(ts)`` returns every column for the symbols whose latest bar is at
    ``ts``, ranks included (by default it first requires every symbol to have reported ``ts``).
    Bars must be finite (prices > 0, volume >= 0) and each symbol's timestamps increasing:
    anything else raises ``ValueError`` naming the symbol and timestamp.
    """

    def __init__(self, feature_set: FeatureSet, symbols: Iterable[str]) -> None:
        custom = [f.name for f in feature_set.features if f.kind == "custom"]
        if custom:
            raise ValueError(
                f"feature set {feature_set.name!r} holds custom feature(s) {custom}, which are "
                "batch-only: they have no streaming form"
            )
        self.feature_set = feature_set
        self.symbols = tuple(dict.fromkeys(symbols))
        if not self.symbols:
            raise ValueError("StreamingFeatures needs at least one symbol")
        self._series = [f for f in feature_set.features if not f.is_rank]
        self._columns = [f.name for f in self._series]
        self._zone = ZoneInfo(feature_set.timezone)
        self._open_s = session_open_seconds(feature_set)
        self._state = {s: _Symbol(self._series) for s in self.symbols}

    def _key(self, ts: datetime | pd.Timestamp) -> int:
        """UTC nanoseconds of ``ts``; naive means UTC."""
        if isinstance(ts, pd.Timestamp):
            return int(ts.value)  # UTC whether aware or naive
        if isinstance(ts, datetime):
            aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
            return (aware - _EPOCH) // timedelta(microseconds=1) * 1000
        return self._key(pd.Timestamp(ts))

    def _symbol(self, symbol: str) -> _Symbol:
        try:
            return self._state[symbol]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}; streaming {list(self.symbols)}") from None

    def update(
        self,
        symbol: str,
        ts: datetime | pd.Timestamp,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
    ) -> dict[str, float]:
        """Feed one bar of ``symbol``; return its per-symbol features at ``ts``."""
        state = self._symbol(symbol)
        key = self._key(ts)
        if state.last is not None and key <= state.last:
            raise ValueError(f"{symbol}: bar at {ts} is not after the previous one")
        prices = (float(open), float(high), float(low), float(close), float(volume))
        for name, value in zip(BAR_COLUMNS, prices, strict=True):
            lowest = 0.0 if name == "volume" else 5e-324
            if not (lowest <= value < math.inf):
                rule = "finite and >= 0" if name == "volume" else "finite and > 0"
                raise ValueError(f"{symbol} at {ts}: {name} is {value!r}; it must be {rule}")
        state.update(_Bar(*prices, *wall_clock(key, self._zone, self._open_s)))
        state.last = key
        return dict(zip(self._columns, state.values, strict=True))

    def warm_up(self, symbol: str, bars: pd.DataFrame) -> dict[str, float] | None:
        """Feed a frame of bars (DatetimeIndex, OHLCV columns) in order; the last features."""
        last = None
        for row in zip(bars.index, *(bars[c].to_numpy() for c in BAR_COLUMNS), strict=True):
            last = self.update(symbol, *row)
        return last

    def latest(self, symbol: str) -> dict[str, float] | None:
        """The symbol's features at its latest bar (None before its first)."""
        state = self._symbol(symbol)
        if state.last is None:
            return None
        return dict(zip(self._columns, state.values, strict=True))

    def missing(self, ts: datetime | pd.Timestamp) -> list[str]:
        """The symbols whose latest bar is not at ``ts``."""
        key = self._key(ts)
        return [s for s in self.symbols if self._state[s].last != key]

    def complete(self, ts: datetime | pd.Timestamp) -> bool:
        """Whether every symbol has reported its bar at ``ts``."""
        return not self.missing(ts)

    def vector(self, ts: datetime | pd.Timestamp, *, require_all: bool = True) -> pd.DataFrame:
        """Every column at ``ts`` for the symbols whose latest bar is at ``ts`` (rows, in
        ``symbols`` order), cross-sectional ranks over those rows as in the batch panel.
        With ``require_all`` (default), a missing symbol raises ``ValueError`` naming it."""
        missing = self.missing(ts)
        if require_all and missing:
            raise ValueError(f"no bar at {ts} yet for {missing}")
        absent = set(missing)
        rows = [s for s in self.symbols if s not in absent]
        series = np.array([self._state[s].values for s in rows], dtype=np.float64)
        series = series.reshape(len(rows), len(self._columns))
        position = {name: i for i, name in enumerate(self._columns)}
        columns = [
            rank_pct_row(series[:, position[str(f.param("of"))]])
            if f.is_rank
            else series[:, position[f.name]]
            for f in self.feature_set.features
        ]
        return pd.DataFrame(
            np.column_stack(columns) if rows else np.empty((0, len(columns))),
            index=pd.Index(rows, name="symbol"),
            columns=self.feature_set.columns,
        )

    def ranks(self, ts: datetime | pd.Timestamp, *, require_all: bool = True) -> pd.DataFrame:
        """Only the cross-sectional rank columns of :meth:`vector`."""
        names = [f.name for f in self.feature_set.features if f.is_rank]
        return self.vector(ts, require_all=require_all)[names]
