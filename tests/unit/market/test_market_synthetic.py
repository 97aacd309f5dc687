"""Synthetic bars: deterministic, on the calendar and the tick, OHLC-consistent, realistic."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from quantdesk.market.calendars import get_calendar
from quantdesk.market.store import BarStore
from quantdesk.market.synthetic import generate_bars, generate_universe, minute_grid, seed_store

IST = ZoneInfo("Asia/Kolkata")


def test_same_seed_and_symbol_give_identical_bars() -> None:
    a = generate_bars("NSE:INFY", date(2024, 1, 1), date(2024, 1, 5), seed=42)
    b = generate_bars("NSE:INFY", date(2024, 1, 1), date(2024, 1, 5), seed=42)
    pd.testing.assert_frame_equal(a, b)


def test_different_seeds_or_symbols_differ() -> None:
    base = generate_bars("NSE:INFY", date(2024, 1, 1), date(2024, 1, 5), seed=42)
    other_seed = generate_bars("NSE:INFY", date(2024, 1, 1), date(2024, 1, 5), seed=43)
    other_symbol = generate_bars("NSE:TCS", date(2024, 1, 1), date(2024, 1, 5), seed=42)
    assert not base["close"].equals(other_seed["close"])
    assert not base["close"].equals(other_symbol["close"])


def test_every_session_minute_is_present_and_nothing_else() -> None:
    bars = generate_bars("NSE:INFY", date(2024, 1, 15), date(2024, 1, 21), seed=1)
    local = bars["timestamp"].dt.tz_convert(IST)
    per_day = local.dt.date.value_counts().sort_index()
    assert per_day.to_dict() == {
        date(2024, 1, 15): 375,
        date(2024, 1, 16): 375,
        date(2024, 1, 17): 375,
        date(2024, 1, 18): 375,
        date(2024, 1, 19): 375,
        date(2024, 1, 20): 375,  # special Saturday session
    }
    assert local.dt.time.min() == time(9, 15)
    assert local.dt.time.max() == time(15, 29)


def test_minute_grid_skips_the_break_of_a_split_session() -> None:
    times, _ = minute_grid(get_calendar("NSE"), date(2024, 3, 2), date(2024, 3, 2))
    local = pd.DatetimeIndex(times).tz_localize("UTC").tz_convert(IST)
    assert len(times) == 45 + 60
    assert time(10, 0) not in set(local.time)
    assert local[45].time() == time(11, 30)


def test_prices_sit_on_the_tick_and_ohlc_is_consistent() -> None:
    bars = generate_bars("NSE:INFY", date(2024, 1, 1), date(2024, 2, 29), seed=3, tick_size="0.05")
    for column in ["open", "high", "low", "close"]:
        ticks = bars[column] / 0.05
        assert np.allclose(ticks, np.round(ticks), atol=1e-6), column
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["low"] > 0).all()
    assert (bars["volume"] >= 0).all()
    assert bars["volume"].dtype == "int64"


def test_bars_open_at_the_previous_close_within_a_session_and_gap_overnight() -> None:
    bars = generate_bars("NSE:INFY", date(2024, 1, 1), date(2024, 1, 31), seed=4)
    session = bars["timestamp"].dt.tz_convert(IST).dt.date
    same_session = session.eq(session.shift())
    continuity = bars["open"].eq(bars["close"].shift())
    assert continuity[same_session].mean() > 0.99  # tick rounding may differ by a tick
    assert not continuity[~same_session].iloc[1:].all()


def test_volume_is_u_shaped_within_the_day() -> None:
    bars = generate_bars("NSE:INFY", date(2024, 1, 1), date(2024, 3, 31), seed=5)
    minute = bars["timestamp"].dt.tz_convert(IST).dt.time
    profile = bars.groupby(minute)["volume"].mean()
    first, last = profile.iloc[:15].mean(), profile.iloc[-15:].mean()
    middle = profile.iloc[150:225].mean()
    assert first > 1.5 * middle
    assert last > 1.2 * middle


def test_volatility_regimes_show_up_as_clustered_daily_ranges() -> None:
    bars = generate_bars("NSE:INFY", date(2023, 1, 1), date(2024, 12, 31), seed=6)
    returns = np.log(bars["close"]).diff().dropna()
    day = bars["timestamp"].dt.tz_convert(IST).dt.date.iloc[1:]
    daily_vol = returns.groupby(day.to_numpy()).std()
    # Regime switching makes volatility persistent: high autocorrelation of daily vol.
    assert daily_vol.autocorr(lag=1) > 0.3


def test_generate_universe_yields_each_symbol() -> None:
    symbols = ["NSE:A", "NSE:B"]
    result = dict(generate_universe(symbols, date(2024, 1, 2), date(2024, 1, 2), seed=1))
    assert list(result) == symbols
    assert all(len(bars) == 375 for bars in result.values())


def test_seed_store_writes_every_symbol(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    results = seed_store(store, ["NSE:A", "BSE:B"], date(2024, 1, 2), date(2024, 1, 3), seed=1)
    assert [r.rows_written for r in results] == [750, 750]
    assert store.symbols() == ["BSE:B", "NSE:A"]


def test_empty_range_gives_an_empty_frame() -> None:
    bars = generate_bars("NSE:INFY", date(2024, 1, 6), date(2024, 1, 7), seed=1)
    assert bars.empty
    assert list(bars.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
