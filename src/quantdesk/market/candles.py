"""Candles at any chart interval, resampled from stored source bars on the exchange's sessions.

Intraday buckets are anchored at each session's open (09:15 IST on NSE, so 1h candles are
09:15-10:15, ..., 15:15-15:30, and a Muhurat session gets its own 18:15 anchor); a daily candle
is one exchange session (not a UTC day); a weekly candle is the sessions of one ISO week.

Source choice for 1d/1w: sessions that have 1-minute bars are aggregated from them; sessions
with only daily source bars (e.g. years of daily history before the 1-minute data starts) are
served from the daily bars. Intraday intervals need 1-minute bars.

The store keeps bars sorted by time, so every bucket is a contiguous run of rows and the
aggregation is a handful of numpy ``reduceat`` calls; no per-bucket Python code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from quantdesk.market.calendars import ExchangeCalendar
from quantdesk.market.store import BarStore

__all__ = [
    "CANDLE_COLUMNS",
    "INTERVALS",
    "CandleArrays",
    "CandleInterval",
    "CandleSource",
    "InvalidIntervalError",
    "candle_arrays",
    "candles",
]

CandleInterval = Literal["1m", "5m", "15m", "30m", "1h", "1d", "1w"]
CandleSource = Literal["auto", "1m", "1d"]
INTERVALS: tuple[str, ...] = get_args(CandleInterval)
CANDLE_COLUMNS = ("time", "open", "high", "low", "close", "volume")

_STEP_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600}
_US = 1_000_000
_DAY_US = 86_400 * _US


class InvalidIntervalError(ValueError):
    """The requested candle interval (or interval/source pair) is not supported."""

    code = "MARKET_INVALID_INTERVAL"


@dataclass(frozen=True, slots=True)
class _Bars:
    """Aligned numpy columns of sorted bars; times in UTC epoch microseconds."""

    time: np.ndarray
    end: np.ndarray
    session: np.ndarray  # days since 1970-01-01 (exchange-local session date)
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.time)

    def take(self, index: np.ndarray) -> _Bars:
        return _Bars(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))

    @staticmethod
    def concat(parts: list[_Bars]) -> _Bars:
        names = [f.name for f in dataclasses.fields(_Bars)]
        return _Bars(*(np.concatenate([getattr(p, n) for p in parts]) for n in names))


CandleArrays = _Bars


def _empty() -> _Bars:
    ints, floats = np.empty(0, np.int64), np.empty(0, np.float64)
    return _Bars(ints, ints, ints, floats, floats, floats, floats, ints)


def candles(
    store: BarStore,
    symbol: str,
    interval: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    source: CandleSource = "auto",
) -> pd.DataFrame:
    """Candles of ``symbol`` whose period overlaps [start, end), each built from ALL its bars.

    Returns columns time (bucket start, UTC), open, high, low, close (float64) and volume
    (int64), sorted by time. ``start``/``end`` must be timezone-aware (None = unbounded).
    Raises InvalidIntervalError for an unknown interval or an intraday interval with
    ``source="1d"``.
    """
    return _to_frame(candle_arrays(store, symbol, interval, start, end, source=source))


def candle_arrays(
    store: BarStore,
    symbol: str,
    interval: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    source: CandleSource = "auto",
) -> CandleArrays:
    """What :func:`candles` returns, as aligned numpy columns with each candle's end time and
    session date too (UTC epoch microseconds; session as days since 1970-01-01)."""
    if interval not in INTERVALS:
        raise InvalidIntervalError(f"interval must be one of {INTERVALS}, got {interval!r}")
    if interval in _STEP_SECONDS and source == "1d":
        raise InvalidIntervalError(f"{interval} candles need 1-minute bars, not daily bars")
    calendar = store.calendar(symbol)
    first, last = _session_range(calendar, interval, start, end)

    if interval in _STEP_SECONDS:
        bars = _read(store, symbol, "1m", calendar, first, last)
        keys = _intraday_keys(bars, calendar, _STEP_SECONDS[interval])
        # One-minute candles of minute-aligned bars are the bars: no copy (a year of 1-minute
        # bars is ~100k rows; a backtest may read ten).
        same = interval == "1m" and np.array_equal(keys, bars.time)
        result = bars if same else _aggregate(bars, keys, keys_are_times=True)
    else:
        daily = _daily(store, symbol, calendar, first, last, source)
        if interval == "1d":
            result = daily
        else:
            result = _aggregate(daily, _iso_week(daily.session), keys_are_times=False)
    return _overlapping(result, start, end)


def _session_range(
    calendar: ExchangeCalendar, interval: str, start: datetime | None, end: datetime | None
) -> tuple[date | None, date | None]:
    """Session dates to read: those of start/end, widened to whole ISO weeks for 1w."""
    first = calendar.local_date(start) if start is not None else None
    last = calendar.local_date(end) if end is not None else None
    if interval == "1w":
        first = first and first - timedelta(days=first.weekday())
        last = last and last + timedelta(days=6 - last.weekday())
    return first, last


def _read(
    store: BarStore,
    symbol: str,
    interval: Literal["1m", "1d"],
    calendar: ExchangeCalendar,
    first: date | None,
    last: date | None,
) -> _Bars:
    table = store.read_arrow(symbol, interval=interval, first_session=first, last_session=last)
    if table.num_rows == 0:
        return _empty()
    session = _int_column(table, "session", pa.int32()).astype(np.int64)
    if interval == "1m":
        time = _int_column(table, "timestamp", pa.int64())
        end = time + 60 * _US
    else:
        # Daily bars span their whole session, whatever instant the source labelled them with.
        time, end = _session_bounds(calendar, session)
    return _Bars(
        time=time,
        end=end,
        session=session,
        open=table.column("open").to_numpy(),
        high=table.column("high").to_numpy(),
        low=table.column("low").to_numpy(),
        close=table.column("close").to_numpy(),
        volume=table.column("volume").to_numpy(),
    )


def _int_column(table: pa.Table, name: str, as_type: pa.DataType) -> np.ndarray:
    return np.asarray(pc.cast(table.column(name), as_type).to_numpy())


def _session_bounds(
    calendar: ExchangeCalendar, session: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Open and close (UTC epoch us) of each sorted session date (days since the epoch)."""
    if len(session) == 0:
        return session.copy(), session.copy()
    # Look up each distinct session once (a year of 1-minute bars has ~250), then repeat.
    starts = np.flatnonzero(np.r_[True, session[1:] != session[:-1]])
    counts = np.diff(np.r_[starts, len(session)])
    arrays = calendar.session_arrays()
    index = np.searchsorted(arrays["date"].astype(np.int64), session[starts])
    opened = np.repeat(arrays["open"][index] // 1000, counts)
    closed = np.repeat(arrays["close"][index] // 1000, counts)
    return opened, closed


def _intraday_keys(bars: _Bars, calendar: ExchangeCalendar, step_seconds: int) -> np.ndarray:
    """Bucket start of each bar: session open + whole steps (anchored per session)."""
    opened, _ = _session_bounds(calendar, bars.session)
    step = step_seconds * _US
    return np.asarray(opened + (bars.time - opened) // step * step, dtype=np.int64)


def _iso_week(session: np.ndarray) -> np.ndarray:
    """Monday (days since epoch) of each session's ISO week; 1970-01-01 was a Thursday."""
    return np.asarray(session - (session + 3) % 7, dtype=np.int64)


def _aggregate(bars: _Bars, keys: np.ndarray, *, keys_are_times: bool) -> _Bars:
    """One candle per run of equal keys (bars are time-sorted, so runs are the buckets).

    The candle's time is its key when keys are bucket starts, else its first bar's time."""
    if len(bars) == 0:
        return bars
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)] - 1
    return _Bars(
        time=keys[starts] if keys_are_times else bars.time[starts],
        end=bars.end[ends],
        session=bars.session[starts],
        open=bars.open[starts],
        high=np.maximum.reduceat(bars.high, starts),
        low=np.minimum.reduceat(bars.low, starts),
        close=bars.close[ends],
        volume=np.add.reduceat(bars.volume, starts),
    )


def _daily(
    store: BarStore,
    symbol: str,
    calendar: ExchangeCalendar,
    first: date | None,
    last: date | None,
    source: CandleSource,
) -> _Bars:
    """Session candles: from 1-minute bars where a session has them, else from daily bars."""
    parts: list[_Bars] = []
    if source in ("auto", "1m"):
        minute = _read(store, symbol, "1m", calendar, first, last)
        by_session = _aggregate(minute, minute.session, keys_are_times=False)
        opened, closed = _session_bounds(calendar, by_session.session)
        parts.append(dataclasses.replace(by_session, time=opened, end=closed))
    if source in ("auto", "1d"):
        daily = _read(store, symbol, "1d", calendar, first, last)
        if parts:
            daily = daily.take(~np.isin(daily.session, parts[0].session))
        parts.append(daily)
    merged = _Bars.concat(parts)
    return merged.take(np.argsort(merged.session, kind="stable"))


def _overlapping(bars: _Bars, start: datetime | None, end: datetime | None) -> _Bars:
    keep = np.ones(len(bars), dtype=bool)
    if start is not None:
        keep &= bars.end > _epoch_us(start)
    if end is not None:
        keep &= bars.time < _epoch_us(end)
    return bars if keep.all() else bars.take(keep)


def _epoch_us(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError(f"timestamp must be timezone-aware, got naive {ts!r}")
    return int(pd.Timestamp(ts).value // 1000)


def _to_frame(bars: _Bars) -> pd.DataFrame:
    time = pd.DatetimeIndex(bars.time.astype("datetime64[us]")).tz_localize("UTC")
    return pd.DataFrame(
        {
            "time": time,
            "open": bars.open,
            "high": bars.high,
            "low": bars.low,
            "close": bars.close,
            "volume": bars.volume.astype(np.int64),
        }
    )
