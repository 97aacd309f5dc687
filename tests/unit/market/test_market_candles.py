"""Candles: session-anchored buckets, session days, ISO weeks, daily fallback, invariants."""

from __future__ import annotations

import functools
import tempfile
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantdesk.market.calendars import get_calendar
from quantdesk.market.candles import INTERVALS, InvalidIntervalError, candles
from quantdesk.market.store import BarStore
from quantdesk.market.synthetic import generate_bars

IST = ZoneInfo("Asia/Kolkata")
STEP_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60}


def ist_times(frame: pd.DataFrame) -> list[time]:
    return [t.time() for t in frame["time"].dt.tz_convert(IST)]


@pytest.fixture
def filled(store: BarStore, week_of_bars: pd.DataFrame) -> BarStore:
    store.write("NSE:TEST", week_of_bars)
    return store


def test_hourly_candles_are_anchored_at_0915_and_the_last_is_short(filled: BarStore) -> None:
    start = datetime(2024, 1, 2, tzinfo=IST)
    end = datetime(2024, 1, 3, tzinfo=IST)
    hourly = candles(filled, "NSE:TEST", "1h", start, end)
    assert ist_times(hourly) == [time(h, 15) for h in range(9, 16)]
    minutes = filled.read("NSE:TEST", start, end)
    last = minutes[minutes["timestamp"] >= datetime(2024, 1, 2, 15, 15, tzinfo=IST)]
    assert len(last) == 15
    assert hourly["volume"].iloc[-1] == last["volume"].sum()


def test_daily_candle_is_the_exchange_session(filled: BarStore) -> None:
    daily = candles(filled, "NSE:TEST", "1d")
    minutes = filled.read("NSE:TEST")
    by_session = minutes.groupby("session").agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
    )
    assert len(daily) == len(by_session) == 10
    for column in ["open", "high", "low", "close", "volume"]:
        assert list(daily[column]) == list(by_session[column])
    assert set(ist_times(daily)) == {time(9, 15)}


def test_weekly_candles_group_sessions_of_an_iso_week(filled: BarStore) -> None:
    weekly = candles(filled, "NSE:TEST", "1w")
    daily = candles(filled, "NSE:TEST", "1d")
    assert list(weekly["time"].dt.tz_convert(IST).dt.date) == [date(2024, 1, 1), date(2024, 1, 8)]
    first_week = daily.iloc[:5]
    assert weekly["high"].iloc[0] == first_week["high"].max()
    assert weekly["close"].iloc[0] == first_week["close"].iloc[-1]
    assert weekly["volume"].sum() == daily["volume"].sum()


def test_start_and_end_select_overlapping_candles_built_from_all_their_bars(
    filled: BarStore,
) -> None:
    # 10:20 IST lies inside the 10:15-11:15 bucket: that whole bucket is returned.
    start = datetime(2024, 1, 2, 10, 20, tzinfo=IST)
    end = datetime(2024, 1, 2, 12, 15, tzinfo=IST)
    hourly = candles(filled, "NSE:TEST", "1h", start, end)
    assert ist_times(hourly) == [time(10, 15), time(11, 15)]
    full = candles(filled, "NSE:TEST", "1h")
    match = full[full["time"] == hourly["time"].iloc[0]]
    assert match["volume"].iloc[0] == hourly["volume"].iloc[0]


def test_a_date_range_in_utc_still_returns_that_days_session(filled: BarStore) -> None:
    start = datetime(2024, 1, 3, tzinfo=UTC)  # 05:30 IST, before that session opens
    end = datetime(2024, 1, 4, tzinfo=UTC)
    daily = candles(filled, "NSE:TEST", "1d", start, end)
    assert list(daily["time"].dt.tz_convert(IST).dt.date) == [date(2024, 1, 3)]


def test_muhurat_session_gets_its_own_anchor(store: BarStore) -> None:
    bars = generate_bars("NSE:TEST", date(2023, 11, 10), date(2023, 11, 13), seed=5)
    store.write("NSE:TEST", bars)
    day = datetime(2023, 11, 12, tzinfo=IST)
    hourly = candles(store, "NSE:TEST", "1h", day, datetime(2023, 11, 13, tzinfo=IST))
    assert ist_times(hourly) == [time(18, 15)]
    thirty = candles(store, "NSE:TEST", "30m", day, datetime(2023, 11, 13, tzinfo=IST))
    assert ist_times(thirty) == [time(18, 15), time(18, 45)]


def test_daily_source_bars_serve_days_without_minute_bars(store: BarStore) -> None:
    minute = generate_bars("NSE:TEST", date(2024, 1, 8), date(2024, 1, 9), seed=2)
    store.write("NSE:TEST", minute)
    opens = pd.to_datetime(["2024-01-04 03:45", "2024-01-05 03:45", "2024-01-08 03:45"], utc=True)
    daily_source = pd.DataFrame(
        {
            "timestamp": opens,
            "open": [1.0, 2.0, 3.0],
            "high": [1.5, 2.5, 3.5],
            "low": [0.5, 1.5, 2.5],
            "close": [1.2, 2.2, 3.2],
            "volume": [10, 20, 30],
        }
    )
    store.write("NSE:TEST", daily_source, "1d")
    daily = candles(store, "NSE:TEST", "1d")
    days = list(daily["time"].dt.tz_convert(IST).dt.date)
    assert days == [date(2024, 1, 4), date(2024, 1, 5), date(2024, 1, 8), date(2024, 1, 9)]
    # 2024-01-08 has minute bars: they win over the daily bar.
    assert daily["volume"].iloc[2] == minute["volume"].iloc[:375].sum()
    only_daily = candles(store, "NSE:TEST", "1d", source="1d")
    assert list(only_daily["volume"]) == [10, 20, 30]
    weekly = candles(store, "NSE:TEST", "1w", source="1d")
    assert list(weekly["volume"]) == [30, 30]


def test_intraday_from_daily_only_is_refused(filled: BarStore) -> None:
    with pytest.raises(InvalidIntervalError):
        candles(filled, "NSE:TEST", "5m", source="1d")
    with pytest.raises(InvalidIntervalError, match="interval must be one of"):
        candles(filled, "NSE:TEST", "2h")


def test_unknown_symbol_gives_empty_candles_with_the_right_columns(store: BarStore) -> None:
    result = candles(store, "NSE:NOPE", "1h")
    assert list(result.columns) == ["time", "open", "high", "low", "close", "volume"]
    assert result.empty


# Hypothesis: random gaps in a few days of bars; every interval must agree with a plain
# pandas reference built from the same bars.
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keep=st.lists(st.booleans(), min_size=40, max_size=40),
    seed=st.integers(min_value=0, max_value=3),
    interval=st.sampled_from(INTERVALS),
)
def test_candles_match_a_reference_resample(keep: list[bool], seed: int, interval: str) -> None:
    bars = march_bars(seed)
    # Drop bars in blocks of ~20 minutes so some buckets are partial or missing.
    mask = np.repeat(np.array(keep), -(-len(bars) // 40))[: len(bars)]
    bars = bars[mask].reset_index(drop=True)
    with tempfile.TemporaryDirectory() as root:
        store = BarStore(root)
        if bars.empty:
            assert candles(store, "NSE:TEST", interval).empty
            return
        store.write("NSE:TEST", bars)
        got = candles(store, "NSE:TEST", interval)

    expected = reference_candles(bars, interval)
    assert list(got["time"]) == list(expected.index)
    for column in ["open", "high", "low", "close", "volume"]:
        assert list(got[column]) == list(expected[column]), column
    assert got["volume"].sum() == bars["volume"].sum()
    assert (got["high"] >= got[["open", "close"]].max(axis=1)).all()
    assert (got["low"] <= got[["open", "close"]].min(axis=1)).all()


@functools.cache
def march_bars(seed: int) -> pd.DataFrame:
    """Bars over a special Saturday (2024-03-02, with its mid-session break) and a weekend."""
    return generate_bars("NSE:TEST", date(2024, 3, 1), date(2024, 3, 4), seed=seed)


def reference_candles(bars: pd.DataFrame, interval: str) -> pd.DataFrame:
    calendar = get_calendar("NSE")
    local = bars["timestamp"].dt.tz_convert(IST)
    sessions = {
        s.date: s.open for s in calendar.sessions_in_range(date(2024, 3, 1), date(2024, 3, 8))
    }
    opens = pd.Series([sessions[d] for d in local.dt.date], index=bars.index)
    opens = pd.to_datetime(opens, utc=True)
    if interval in STEP_MINUTES:
        step = pd.Timedelta(minutes=STEP_MINUTES[interval])
        key = opens + ((bars["timestamp"] - opens) // step) * step
    elif interval == "1d":
        key = opens
    else:
        week = local.dt.tz_localize(None).dt.to_period("W-SUN")
        key = opens.groupby(week).transform("min")
    grouped = bars.groupby(key.astype("datetime64[us, UTC]"))
    return grouped.agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
    )
