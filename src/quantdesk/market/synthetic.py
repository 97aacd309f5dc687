"""Seeded synthetic 1-minute bars on an exchange calendar, for demos, tests and benchmarks.

The price is a geometric random walk whose drift and volatility switch between regimes (a
Markov chain stepped once per session), with overnight gaps between sessions, a U-shaped
intraday profile of volatility and volume (busy open and close, quiet lunch), prices rounded
to the tick size and OHLC consistent by construction (low <= open, close <= high). The same
seed and symbol always give the same bars; everything is vectorised numpy.

Bars are labelled by their START time (UTC), like the bar store, and cover every minute of
every session in the range (special sessions with their own hours included).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd

from quantdesk.market.calendars import ExchangeCalendar, exchange_of, get_calendar
from quantdesk.market.store import BarStore, WriteResult

__all__ = [
    "DEFAULT_REGIMES",
    "DEFAULT_TRANSITIONS",
    "Regime",
    "generate_bars",
    "generate_universe",
    "minute_grid",
    "seed_store",
]

_MINUTE_NS = 60 * 10**9
_TRADING_DAYS = 252


@dataclass(frozen=True, slots=True)
class Regime:
    """Annualised log drift and volatility, and a volume multiplier, of one market state."""

    name: str
    drift: float
    volatility: float
    volume_factor: float = 1.0


DEFAULT_REGIMES: tuple[Regime, ...] = (
    Regime("calm", drift=0.12, volatility=0.12, volume_factor=0.8),
    Regime("normal", drift=0.05, volatility=0.22, volume_factor=1.0),
    Regime("stressed", drift=-0.30, volatility=0.45, volume_factor=1.8),
)
# Daily transition probabilities (rows: from, columns: to); sticky, so regimes last weeks.
DEFAULT_TRANSITIONS: tuple[tuple[float, ...], ...] = (
    (0.96, 0.035, 0.005),
    (0.03, 0.95, 0.02),
    (0.01, 0.07, 0.92),
)


def minute_grid(
    calendar: ExchangeCalendar, start: date, end: date
) -> tuple[np.ndarray, np.ndarray]:
    """Start times (UTC epoch ns) of every trading minute of the sessions in [start, end], and
    the index of each minute's session (0-based within the range)."""
    frame = calendar.sessions_frame(start, end)
    if frame.empty:
        return np.empty(0, np.int64), np.empty(0, np.int64)

    def ns(column: str) -> np.ndarray:
        values = frame[column].astype("datetime64[ns, UTC]").array.asi8
        return np.asarray(values, dtype=np.int64)

    opened, closed = ns("open"), ns("close")
    has_break = frame["break_start"].notna().to_numpy()
    gap = np.where(has_break, ns("break_end") - ns("break_start"), 0)
    counts = (closed - opened - gap) // _MINUTE_NS
    session = np.repeat(np.arange(len(frame)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    times = opened[session] + (np.arange(counts.sum()) - first) * _MINUTE_NS
    # Minutes at or after a break start are pushed past the break.
    after_break = has_break[session] & (times >= ns("break_start")[session])
    return times + np.where(after_break, gap[session], 0), session


def _regime_path(
    rng: np.random.Generator, sessions: int, transitions: np.ndarray, first: int
) -> np.ndarray:
    """A Markov chain of regime indexes, one per session."""
    cumulative = np.cumsum(transitions, axis=1)
    draws = rng.random(sessions)
    path = np.empty(sessions, dtype=np.int64)
    state = first
    for i in range(sessions):  # one step per session: a few hundred per year, cheap
        path[i] = state
        state = int(np.searchsorted(cumulative[state], draws[i], side="right"))
        state = min(state, len(transitions) - 1)
    return path


def _u_shape(position: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Intraday activity weight: about 3x at the open, 2x at the close, 1x at midday."""
    x = position / np.maximum(length - 1, 1)
    weight = 1.0 + 2.0 * np.exp(-x * 12.0) + np.exp(-(1.0 - x) * 10.0) + 0.5 * (2 * x - 1) ** 2
    return np.asarray(weight, dtype=np.float64)


def _to_tick(values: np.ndarray, tick: float, decimals: int, how: str) -> np.ndarray:
    """Prices on the tick grid (never below one tick); the epsilon keeps float noise from
    pushing an exact multiple one tick further."""
    scaled = values / tick
    if how == "up":
        steps = np.ceil(scaled - 1e-9)
    elif how == "down":
        steps = np.floor(scaled + 1e-9)
    else:
        steps = np.round(scaled)
    return np.round(np.maximum(steps, 1) * tick, decimals)


def generate_bars(
    symbol: str,
    start: date,
    end: date,
    *,
    seed: int = 0,
    start_price: float | None = None,
    tick_size: Decimal | str = "0.05",
    daily_volume: float | None = None,
    overnight_volatility: float = 0.008,
    regimes: Sequence[Regime] = DEFAULT_REGIMES,
    transitions: Sequence[Sequence[float]] = DEFAULT_TRANSITIONS,
) -> pd.DataFrame:
    """1-minute bars of ``symbol`` (``EXCHANGE:SYMBOL``) for the sessions in [start, end].

    Columns: timestamp (UTC, bar start), open/high/low/close (float64 on the tick), volume
    (int64). ``start_price`` and ``daily_volume`` default to values drawn from the seed.
    """
    calendar = get_calendar(exchange_of(symbol))
    rng = np.random.default_rng([seed, zlib.crc32(symbol.upper().encode())])
    tick = Decimal(str(tick_size))
    decimals = max(-int(tick.as_tuple().exponent), 0)
    price0 = start_price if start_price is not None else float(100 * np.exp(rng.uniform(0, 3.5)))
    volume0 = daily_volume if daily_volume is not None else float(10 ** rng.uniform(5, 7))

    times, session = minute_grid(calendar, start, end)
    n = len(times)
    if n == 0:
        none = np.empty(0)
        return _frame(times, none, none, none, none, np.empty(0, np.int64))

    matrix = np.asarray(transitions, dtype=float)
    path = _regime_path(rng, int(session[-1]) + 1, matrix, first=1 % len(regimes))
    drift = np.array([r.drift for r in regimes])[path][session]
    vol = np.array([r.volatility for r in regimes])[path][session]
    volume_factor = np.array([r.volume_factor for r in regimes])[path][session]

    counts = np.bincount(session)
    position = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    activity = _u_shape(position, counts[session])
    # Volatility follows activity; normalised so a session's variance matches the regime's.
    mean_activity = np.bincount(session, weights=activity)[session] / counts[session]
    minutes_per_year = _TRADING_DAYS * np.median(counts)
    sigma = vol * np.sqrt(activity / mean_activity / minutes_per_year)
    mu = drift / minutes_per_year - 0.5 * sigma**2
    shocks = rng.standard_normal(n)
    returns = mu + sigma * shocks

    first_minute = position == 0
    first_minute[0] = False  # no gap before the first bar
    gaps = np.where(first_minute, rng.standard_normal(n) * overnight_volatility * vol / 0.22, 0.0)

    log_close = np.log(price0) + np.cumsum(gaps + returns)
    log_open = log_close - returns
    raw_open, raw_close = np.exp(log_open), np.exp(log_close)
    wick = np.abs(rng.standard_normal((2, n))) * sigma * 0.8
    raw_high = np.maximum(raw_open, raw_close) * np.exp(wick[0])
    raw_low = np.minimum(raw_open, raw_close) * np.exp(-wick[1])

    step = float(tick)
    open_ = _to_tick(raw_open, step, decimals, "round")
    close = _to_tick(raw_close, step, decimals, "round")
    high = np.maximum(_to_tick(raw_high, step, decimals, "up"), np.maximum(open_, close))
    low = np.minimum(_to_tick(raw_low, step, decimals, "down"), np.minimum(open_, close))

    noise = np.exp(rng.normal(-0.045, 0.3, n)) * (0.7 + 0.3 * np.abs(shocks))
    share = activity / np.bincount(session, weights=activity)[session]
    volume = np.round(volume0 * volume_factor * share * noise).astype(np.int64)
    return _frame(times, open_, high, low, close, volume)


def _frame(
    times: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
) -> pd.DataFrame:
    stamps = pd.DatetimeIndex(times.astype("datetime64[ns]")).tz_localize("UTC")
    return pd.DataFrame(
        {
            "timestamp": stamps.astype("datetime64[us, UTC]"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )


def generate_universe(
    symbols: Iterable[str], start: date, end: date, *, seed: int = 0
) -> Iterator[tuple[str, pd.DataFrame]]:
    """``(symbol, bars)`` for each symbol; each symbol's bars depend only on (seed, symbol)."""
    for symbol in symbols:
        yield symbol, generate_bars(symbol, start, end, seed=seed)


def seed_store(
    store: BarStore, symbols: Iterable[str], start: date, end: date, *, seed: int = 0
) -> list[WriteResult]:
    """Write synthetic 1-minute bars for each symbol into ``store`` (replacing that range)."""
    return [
        store.write(symbol, bars, "1m")
        for symbol, bars in generate_universe(symbols, start, end, seed=seed)
    ]
