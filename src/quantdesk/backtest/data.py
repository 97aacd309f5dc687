"""A backtest's bars: candles of several symbols on one timeline, as numpy arrays.

Bars come from the Parquet store through :func:`quantdesk.market.candles.candle_arrays` (so a
5m or 1h backtest sees exactly the candles the charts show). Symbols are aligned on the union of
their bar times; a symbol without a bar at some time carries its last bar forward there
(``present`` is False), so it can be valued but does not trade on a bar it did not have.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from quantdesk.core.market import round_to_tick
from quantdesk.market.calendars import ExchangeCalendar
from quantdesk.market.candles import INTERVALS, candle_arrays
from quantdesk.market.store import BarStore, normalise_symbol

__all__ = ["BacktestDataError", "Dataset", "load_dataset"]

_US = 1_000_000
_FIELDS = ("open", "high", "low", "close", "volume")


class BacktestDataError(ValueError):
    """The requested data cannot make a backtest: unknown symbol, empty range, no bars."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, str(self)))


@dataclass(frozen=True)
class Dataset:
    """Bars of ``symbols`` on one timeline. Times are UTC epoch microseconds."""

    symbols: tuple[str, ...]
    interval: str
    time: np.ndarray  # bar start, int64
    end: np.ndarray  # bar end (a session's last bar ends at the close), int64
    session: np.ndarray  # exchange-local session date, days since 1970-01-01, int64
    session_close: np.ndarray  # close instant of each bar's session, int64
    fields: dict[str, dict[str, np.ndarray]]  # symbol -> open/high/low/close/volume (float64)
    present: dict[str, np.ndarray]  # symbol -> bool, a real bar at this time
    calendar: ExchangeCalendar | None = None
    fingerprint: str = field(default="")

    def __len__(self) -> int:
        return len(self.time)

    @property
    def last_in_session(self) -> np.ndarray:
        """True on each session's last bar."""
        return np.r_[self.session[1:] != self.session[:-1], True] if len(self) else self.session

    def datetime_at(self, i: int) -> datetime:
        return datetime.fromtimestamp(int(self.time[i]) / _US, UTC)

    def end_at(self, i: int) -> datetime:
        return datetime.fromtimestamp(int(self.end[i]) / _US, UTC)

    def on_ticks(self, ticks: dict[str, Decimal]) -> Dataset:
        """The same bars with every price moved to its symbol's tick exactly as the replay
        feed and the brokers turn a float into a price (``round_to_tick(Decimal(repr(x)))``),
        so a strategy reads the same floats in a backtest as live (float of that Decimal)."""
        fields: dict[str, dict[str, np.ndarray]] = {}
        for symbol, cols in self.fields.items():
            out = dict(cols)
            for name in ("open", "high", "low", "close"):
                out[name] = _to_ticks(cols[name], ticks[symbol])
            fields[symbol] = out
        return dataclasses.replace(self, fields=fields)

    def bars_processed(self) -> int:
        """Symbol-bars in the run (what speed is quoted in)."""
        return int(sum(int(p.sum()) for p in self.present.values()))


def _on_tick(value: float, tick: Decimal) -> Decimal:
    return round_to_tick(Decimal(repr(value)), tick)


def _to_ticks(values: np.ndarray, tick: Decimal) -> np.ndarray:
    """``float(_on_tick(x, tick))`` for every x, vectorized and exact.

    With tick = num/den, a price k ticks up is the rational k*num/den, and IEEE division of
    the exact integers k*num and den gives the double nearest to it, which is what float() of
    the Decimal gives. k is the nearest whole number of ticks, except within a hair of a half
    tick, where the float quotient cannot tell which way the decimal rounds half up: those few
    go through the Decimal rounding itself.
    """
    frac = Fraction(tick)
    num, den = float(frac.numerator), float(frac.denominator)
    steps = values * den / num
    nearest = np.rint(steps)
    out = nearest * num / den
    ambiguous = np.abs(np.abs(steps - np.floor(steps)) - 0.5) < 1e-6
    if ambiguous.any():
        idx = np.flatnonzero(ambiguous)
        out[idx] = [float(_on_tick(v, tick)) for v in values[idx].tolist()]
    return np.ascontiguousarray(out)


def release_free_memory() -> None:
    """Hand what the load freed back to the OS before the run allocates (glibc keeps freed
    heap pages otherwise); a no-op where there is no glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _bounds(calendar: ExchangeCalendar, start: date, end: date) -> tuple[datetime, datetime]:
    tz = ZoneInfo(str(calendar.tz)) if not isinstance(calendar.tz, ZoneInfo) else calendar.tz
    lo = datetime.combine(start, time(0), tz)
    hi = datetime.combine(end + timedelta(days=1), time(0), tz)
    return lo, hi


def load_dataset(
    store: BarStore, symbols: list[str], interval: str, start: date, end: date
) -> Dataset:
    """Candles of ``symbols`` from session ``start`` to session ``end`` (both included)."""
    if interval not in INTERVALS or interval == "1w":
        raise BacktestDataError(
            "BACKTEST_BAD_INTERVAL",
            f"interval must be one of {', '.join(i for i in INTERVALS if i != '1w')}",
        )
    if not symbols:
        raise BacktestDataError("BACKTEST_NO_SYMBOLS", "give at least one symbol")
    if end < start:
        raise BacktestDataError(
            "BACKTEST_BAD_RANGE", f"the date range is inverted: start {start} is after end {end}"
        )
    names = [normalise_symbol(s) for s in symbols]
    if len(set(names)) != len(names):
        raise BacktestDataError("BACKTEST_DUPLICATE_SYMBOL", "a symbol is listed twice")
    known = set(store.symbols())
    unknown = [s for s in names if s not in known]
    if unknown:
        raise BacktestDataError(
            "BACKTEST_UNKNOWN_SYMBOL", f"no stored bars for {', '.join(unknown)}"
        )
    calendar = store.calendar(names[0])
    lo, hi = _bounds(calendar, start, end)
    # The reads go through the system allocator: what they free goes back to malloc (and
    # from there to the OS), where Arrow's default mimalloc pool kept ~110 MB per million bars
    # for itself for the rest of the run. The switch is process-wide but harmless: a buffer is
    # always freed to the pool that allocated it.
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        per_symbol = {s: candle_arrays(store, s, interval, lo, hi) for s in names}
    finally:
        pa.set_memory_pool(previous)
    empty = [s for s, bars in per_symbol.items() if len(bars) == 0]
    if empty:
        raise BacktestDataError(
            "BACKTEST_NO_DATA",
            f"no {interval} bars for {', '.join(empty)} between {start} and {end}",
        )
    timeline = np.unique(np.concatenate([b.time for b in per_symbol.values()]))
    n = len(timeline)
    end_at = np.zeros(n, np.int64)
    session = np.zeros(n, np.int64)
    fields: dict[str, dict[str, np.ndarray]] = {}
    present: dict[str, np.ndarray] = {}
    digest = hashlib.sha256()
    for s, bars in per_symbol.items():
        where = np.searchsorted(timeline, bars.time)
        mask = np.zeros(n, bool)
        mask[where] = True
        end_at[where] = np.maximum(end_at[where], bars.end)
        session[where] = bars.session
        # Forward-fill: the index (into this symbol's bars) of its last bar at or before each
        # time; before its first bar, the first bar (flagged not present).
        cols: dict[str, np.ndarray] = {}
        if len(bars) == n:  # a bar at every time (one symbol): no alignment, no copies
            for name in _FIELDS:
                cols[name] = np.ascontiguousarray(getattr(bars, name), dtype=np.float64)
        else:
            rank = np.maximum(np.cumsum(mask) - 1, 0)
            for name in _FIELDS:
                values = np.asarray(getattr(bars, name), dtype=np.float64)
                cols[name] = np.ascontiguousarray(values[rank])
            # A carried-forward bar has no range and no volume: it is the last close, flat.
            carried = ~mask
            for name in ("open", "high", "low"):
                cols[name][carried] = cols["close"][carried]
            cols["volume"][carried] = 0.0
        fields[s] = cols
        present[s] = mask
        digest.update(s.encode())
        for name in ("time", "open", "high", "low", "close", "volume"):
            digest.update(np.ascontiguousarray(getattr(bars, name)).data)
    arrays = calendar.session_arrays()
    days = arrays["date"].astype("datetime64[D]").astype(np.int64)
    idx = np.clip(np.searchsorted(days, session), 0, len(days) - 1)
    session_close = (arrays["close"][idx] // 1000).astype(np.int64)
    release_free_memory()
    return Dataset(
        symbols=tuple(names),
        interval=interval,
        time=timeline.astype(np.int64),
        end=end_at,
        session=session,
        session_close=session_close,
        fields=fields,
        present=present,
        calendar=calendar,
        fingerprint=digest.hexdigest(),
    )
