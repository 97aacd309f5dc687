"""Ingest, store and resample the real NSE data sets end to end."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from quantdesk.market.candles import candles
from quantdesk.market.ingest import ingest, load_bars
from quantdesk.market.store import BarStore

IST = ZoneInfo("Asia/Kolkata")
SPECIAL_SESSIONS = [
    date(2020, 11, 14),
    date(2023, 11, 12),
    date(2024, 1, 20),
    date(2024, 3, 2),
    date(2024, 5, 18),
    date(2025, 2, 1),
]


def month_of(minutes: pd.DataFrame, tmp_path: Path, month: str) -> Path:
    local_month = minutes["timestamp"].dt.strftime("%Y-%m")
    path = tmp_path / f"nifty-{month}.parquet"
    minutes[local_month == month].to_parquet(path)
    return path


def test_a_month_of_index_minutes_gives_375_bars_a_day(
    nifty_minutes: pd.DataFrame, tmp_path: Path, store: BarStore
) -> None:
    path = month_of(nifty_minutes, tmp_path, "2021-03")
    # The file also holds pre-open (09:08) and post-close (15:31..) bars: outside the session.
    strict = load_bars(path, "NSE:NIFTY50")
    assert not strict.accepted
    assert set(strict.issue_counts) == {"outside_session"}

    result = ingest(path, "NSE:NIFTY50", store, drop_bad=True)
    assert result.accepted
    assert result.label == "end"
    stored = store.read("NSE:NIFTY50")
    per_day = stored.groupby("session").size()
    assert (per_day == 375).all()
    assert len(per_day) == 21
    first = stored["timestamp"].dt.tz_convert(IST).dt.time
    assert first.min() == time(9, 15)
    assert first.max() == time(15, 29)


def test_daily_candles_equal_the_session_ohlc_of_the_source(
    nifty_minutes: pd.DataFrame, tmp_path: Path, store: BarStore
) -> None:
    ingest(month_of(nifty_minutes, tmp_path, "2022-06"), "NSE:NIFTY50", store, drop_bad=True)
    source = nifty_minutes[
        (nifty_minutes["symbol"] == "NIFTY50")
        & (nifty_minutes["session"] == "regular")
        & (nifty_minutes["timestamp"].dt.strftime("%Y-%m") == "2022-06")
    ]
    expected = source.groupby(source["timestamp"].dt.date).agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last")
    )
    daily = candles(store, "NSE:NIFTY50", "1d")
    assert list(daily["time"].dt.tz_convert(IST).dt.date) == list(expected.index)
    for column in ["open", "high", "low", "close"]:
        assert list(daily[column]) == list(expected[column]), column


def test_muhurat_minutes_are_accepted_only_inside_the_evening_session(
    nifty_minutes: pd.DataFrame, tmp_path: Path, store: BarStore
) -> None:
    path = month_of(nifty_minutes, tmp_path, "2021-11")
    result = ingest(path, "NSE:NIFTY50", store, drop_bad=True)
    muhurat = store.read("NSE:NIFTY50").query("session == @date(2021, 11, 4)")
    assert len(muhurat) == 60
    assert muhurat["timestamp"].dt.tz_convert(IST).dt.time.min() == time(18, 15)
    rejected = [i.message for i in result.issues if "2021-11-04" in i.message]
    assert rejected  # its pre-open and post-close bars
    hourly = candles(store, "NSE:NIFTY50", "1h")
    anchors = hourly["time"].dt.tz_convert(IST)
    assert (anchors[anchors.dt.date == date(2021, 11, 4)].dt.time == time(18, 15)).all()


def test_upstox_daily_set_with_special_sessions_is_accepted(
    market_data_dir: Path, store: BarStore
) -> None:
    path = market_data_dir / "nse_daily_nifty50_upstox.parquet"
    result = ingest(path, "NSE:RELIANCE", store)
    assert result.accepted, result.issues[:5]
    assert result.interval == "1d"
    assert result.rows_bad == 0
    sessions = set(store.read("NSE:RELIANCE", interval="1d")["session"])
    assert set(SPECIAL_SESSIONS) <= sessions
    weekly = candles(store, "NSE:RELIANCE", "1w")
    daily = candles(store, "NSE:RELIANCE", "1d")
    assert weekly["volume"].sum() == daily["volume"].sum()
    assert len(daily) == len(sessions)


@pytest.mark.parametrize("symbol", ["NSE:RELIANCE", "NSE:BAJAJ-AUTO"])
def test_bhav_daily_set_is_accepted_including_muhurat_days(
    market_data_dir: Path, store: BarStore, symbol: str
) -> None:
    result = ingest(market_data_dir / "nse_daily_nifty50_bhav.parquet", symbol, store)
    assert result.accepted, result.issues[:5]
    sessions = set(store.read(symbol, interval="1d")["session"])
    assert {date(2017, 10, 19), date(2018, 11, 7), date(2019, 10, 27), date(2020, 2, 1)} <= sessions


def test_yahoo_index_csv_round_trip(market_data_dir: Path, tmp_path: Path, store: BarStore) -> None:
    frame = pd.read_parquet(market_data_dir / "nifty50_index_daily_yahoo.parquet")
    frame = frame[frame["timestamp"].dt.year == 2019]
    csv = frame.rename(columns=str.title).rename(columns={"Timestamp": "Date"})
    csv["Adj Close"] = csv["Close"]
    path = tmp_path / "yahoo.csv"
    csv[["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]].to_csv(path, index=False)
    result = ingest(path, "NSE:NIFTY50", store, fmt="yahoo")
    assert result.accepted, result.issues[:5]
    assert len(store.read("NSE:NIFTY50", interval="1d")) == len(frame)
