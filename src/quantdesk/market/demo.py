"""Demo market history: synthetic bars for the demo universe, so a fresh installation has charts.

For every demo instrument one continuous synthetic 1-minute price path is generated over the
whole history (:mod:`quantdesk.market.synthetic`, on the instrument's tick size). The store gets
its 1-minute bars for the last ``sessions`` sessions and its daily bars (the session resample of
that same path) for the longer ``daily_sessions`` span, so a daily bar of a session that also
has 1-minute bars is exactly their resample. Each path ends at the instrument's ``last_price``
(the price the live demo feed starts from), so charts run into the live quotes without a jump.
Indices get volume 0, as on the exchange. The same seed and dates give the same bars.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from quantdesk.market.calendars import ExchangeCalendar, exchange_of, get_calendar
from quantdesk.market.instruments import demo_universe
from quantdesk.market.models import Instrument
from quantdesk.market.store import BarStore
from quantdesk.market.synthetic import _to_tick, generate_bars

__all__ = [
    "DEFAULT_DAILY_SESSIONS",
    "DEFAULT_SEED",
    "DEFAULT_SESSIONS",
    "DemoHistory",
    "DemoInstrument",
    "HistoryProgress",
    "daily_from_minutes",
    "demo_bars",
    "history_window",
    "load_demo_instruments",
    "seed_history",
]

DEFAULT_SESSIONS = 60
DEFAULT_DAILY_SESSIONS = 500  # about two years of NSE sessions
DEFAULT_SEED = 0
_FINE_TICK = Decimal("1e-9")

HistoryProgress = Callable[[str, int, int], None]
"""Called as ``progress(symbol, done, total)`` after each instrument is stored."""


@dataclass(frozen=True, slots=True)
class DemoInstrument:
    """What the generator needs to know about one instrument."""

    symbol: str
    tick_size: Decimal
    last_price: Decimal | None
    is_index: bool


@dataclass(frozen=True, slots=True)
class DemoHistory:
    """What :func:`seed_history` stored."""

    symbols: int
    minute_bars: int
    daily_bars: int
    first_daily_session: date
    first_minute_session: date
    last_session: date
    seconds: float


async def load_demo_instruments(db: AsyncSession) -> list[DemoInstrument]:
    """The demo universe as stored in the master (a broker import may have refreshed tick sizes
    and prices since it was seeded); shipped values for rows missing from the master."""
    shipped = demo_universe()
    stmt = select(Instrument).where(
        Instrument.exchange.in_({r.ref.exchange for r in shipped}),
        Instrument.symbol.in_([r.ref.symbol for r in shipped]),
    )
    stored = {inst.ref: inst for inst in (await db.execute(stmt)).scalars()}
    out = []
    for row in shipped:
        inst = stored.get(row.ref)
        out.append(
            DemoInstrument(
                symbol=str(row.ref),
                tick_size=inst.tick_size if inst else row.spec.tick_size,
                last_price=(inst.last_price if inst else None) or row.last_price,
                is_index=(inst.instrument_type if inst else row.instrument_type) == "INDEX",
            )
        )
    return out


def history_window(
    calendar: ExchangeCalendar, today: date, sessions: int, daily_sessions: int
) -> tuple[date, date, date]:
    """(first daily session, first 1-minute session, last session): the history ends at the
    last session strictly before ``today``, so it never holds a session still trading."""
    if sessions < 1 or daily_sessions < 1:
        raise ValueError("sessions and daily_sessions must be at least 1")
    span = max(sessions, daily_sessions)
    # Calendar days that surely hold `span` sessions (>= ~4 sessions per 7 days, with margin).
    lookback = pd.Timestamp(today) - pd.Timedelta(days=span * 2 + 30)
    start = max(lookback.date(), calendar.first_session)
    dates = [s for s in calendar.sessions_frame(start, today)["session"] if s < today]
    if not dates:
        raise ValueError(f"no {calendar.name} session before {today}")
    return dates[-min(span, len(dates))], dates[-min(sessions, len(dates))], dates[-1]


def daily_from_minutes(minutes: pd.DataFrame, calendar: ExchangeCalendar) -> pd.DataFrame:
    """One bar per session of time-sorted 1-minute bars (open of the first, high max, low min,
    close of the last, volume summed), stamped at the session open like ingested daily bars."""
    if minutes.empty:
        return minutes.copy()
    index = calendar.locate(pd.DatetimeIndex(minutes["timestamp"]))
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    ends = np.r_[starts[1:], len(index)] - 1
    opens = calendar.session_arrays()["open"][index[starts]]
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(opens, utc=True).astype("datetime64[us, UTC]"),
            "open": minutes["open"].to_numpy()[starts],
            "high": np.maximum.reduceat(minutes["high"].to_numpy(), starts),
            "low": np.minimum.reduceat(minutes["low"].to_numpy(), starts),
            "close": minutes["close"].to_numpy()[ends],
            "volume": np.add.reduceat(minutes["volume"].to_numpy(), starts),
        }
    )


def demo_bars(inst: DemoInstrument, first: date, last: date, *, seed: int) -> pd.DataFrame:
    """The instrument's synthetic 1-minute bars over sessions [first, last] on its tick size,
    ending at its ``last_price`` when it has one."""
    anchored = inst.last_price is not None
    bars = generate_bars(
        inst.symbol,
        first,
        last,
        seed=seed,
        start_price=float(inst.last_price) if inst.last_price is not None else None,
        tick_size=_FINE_TICK if anchored else inst.tick_size,
        daily_volume=0.0 if inst.is_index else None,
    )
    if inst.last_price is None or bars.empty:
        return bars
    # The walk is generated on a fine tick (practically unrounded), then scaled so its last
    # close is the last price, and rounded the way the generator rounds: one generation, not
    # a trial walk to measure the growth and a second one from the right start.
    factor = float(inst.last_price) / float(bars["close"].iloc[-1])
    return _scaled_to_tick(bars, factor, inst.tick_size)


def _scaled_to_tick(bars: pd.DataFrame, factor: float, tick: Decimal) -> pd.DataFrame:
    """Prices times ``factor`` on the tick grid: open and close to the nearest tick, high up,
    low down, and low <= open, close <= high kept."""
    step, decimals = float(tick), max(-int(tick.as_tuple().exponent), 0)

    def scaled(column: str, how: str) -> np.ndarray:
        return _to_tick(bars[column].to_numpy() * factor, step, decimals, how)

    open_, close = scaled("open", "round"), scaled("close", "round")
    high = np.maximum(scaled("high", "up"), np.maximum(open_, close))
    low = np.minimum(scaled("low", "down"), np.minimum(open_, close))
    return bars.assign(open=open_, high=high, low=low, close=close)


def seed_history(
    store: BarStore,
    instruments: Sequence[DemoInstrument],
    *,
    sessions: int = DEFAULT_SESSIONS,
    daily_sessions: int = DEFAULT_DAILY_SESSIONS,
    seed: int = DEFAULT_SEED,
    today: date,
    progress: HistoryProgress | None = None,
    workers: int | None = None,
) -> DemoHistory:
    """Write each instrument's demo history into ``store``: 1-minute bars for the last
    ``sessions`` sessions before ``today`` and daily bars for the last ``daily_sessions``.
    Stored bars in those ranges are replaced. Instruments are generated and written in
    parallel threads (numpy and Parquet release the GIL)."""
    if not instruments:
        raise ValueError("no instruments to seed")
    started = time.perf_counter()
    calendar = get_calendar(exchange_of(instruments[0].symbol))
    first_daily, first_minute, last = history_window(calendar, today, sessions, daily_sessions)
    cutoff = pd.Timestamp(calendar.sessions_frame(first_minute, first_minute)["open"].iloc[0])

    def one(inst: DemoInstrument) -> tuple[int, int]:
        bars = demo_bars(inst, first_daily, last, seed=seed)
        daily = daily_from_minutes(bars, store.calendar(inst.symbol))
        minutes = bars[bars["timestamp"] >= cutoff]
        store.write(inst.symbol, daily, "1d")
        store.write(inst.symbol, minutes, "1m")
        return len(minutes), len(daily)

    minute_bars = daily_bars = 0
    pool_size = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(pool_size, thread_name_prefix="demo-seed") as pool:
        for done, (inst, (m, d)) in enumerate(
            zip(instruments, pool.map(one, instruments), strict=True), start=1
        ):
            minute_bars += m
            daily_bars += d
            if progress is not None:
                progress(inst.symbol, done, len(instruments))
    return DemoHistory(
        symbols=len(instruments),
        minute_bars=minute_bars,
        daily_bars=daily_bars,
        first_daily_session=first_daily,
        first_minute_session=first_minute,
        last_session=last,
        seconds=time.perf_counter() - started,
    )
