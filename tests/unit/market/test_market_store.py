"""Parquet bar store: round trips, replace-on-overlap, atomic files, listing."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantdesk.market.store import BarStore
from quantdesk.market.synthetic import generate_bars

BAR_FIELDS = ["timestamp", "open", "high", "low", "close", "volume"]


def as_stored(bars: pd.DataFrame) -> pd.DataFrame:
    out = bars[BAR_FIELDS].reset_index(drop=True)
    return out.astype({"timestamp": "datetime64[us, UTC]"})


def test_round_trip_returns_the_same_bars_sorted_in_utc(
    store: BarStore, week_of_bars: pd.DataFrame
) -> None:
    shuffled = week_of_bars.sample(frac=1.0, random_state=1)
    result = store.write("NSE:TEST", shuffled)
    assert result.rows_written == len(week_of_bars)
    assert result.rows_replaced == 0
    back = store.read("NSE:TEST")
    pd.testing.assert_frame_equal(back[BAR_FIELDS], as_stored(week_of_bars))
    assert str(back["timestamp"].dt.tz) == "UTC"
    assert back["volume"].dtype == "int64"


def test_partitions_are_hive_style_by_symbol_and_month(
    store: BarStore, week_of_bars: pd.DataFrame
) -> None:
    store.write("NSE:M&M", week_of_bars)
    files = store.files("NSE:M&M", "1m")
    assert [f.relative_to(store.root).as_posix() for f in files] == [
        "interval=1m/symbol=NSE_M%26M/month=2024-01/part.parquet"
    ]
    assert store.symbols() == ["NSE:M&M"]


def test_rewriting_an_overlapping_range_replaces_without_duplicates(
    store: BarStore, week_of_bars: pd.DataFrame
) -> None:
    store.write("NSE:TEST", week_of_bars)
    day = week_of_bars["timestamp"].dt.tz_convert("Asia/Kolkata").dt.date == date(2024, 1, 3)
    corrected = week_of_bars[day].assign(close=lambda b: b["close"], volume=1)
    result = store.write("NSE:TEST", corrected)
    assert result.rows_replaced == int(day.sum())
    back = store.read("NSE:TEST")
    assert len(back) == len(week_of_bars)
    assert not back["timestamp"].duplicated().any()
    on_day = back["session"] == date(2024, 1, 3)
    assert (back.loc[on_day, "volume"] == 1).all()
    assert (back.loc[~on_day, "volume"] > 1).any()


def test_new_data_is_the_truth_for_its_whole_range(
    store: BarStore, week_of_bars: pd.DataFrame
) -> None:
    store.write("NSE:TEST", week_of_bars)
    first, last = week_of_bars.iloc[0], week_of_bars.iloc[-1]
    # Two bars spanning the whole range: everything stored between them goes.
    store.write("NSE:TEST", pd.DataFrame([first, last]))
    assert len(store.read("NSE:TEST")) == 2


def test_replacing_across_months_touches_only_the_range(store: BarStore) -> None:
    bars = generate_bars("NSE:TEST", date(2024, 1, 25), date(2024, 2, 6), seed=3)
    store.write("NSE:TEST", bars)
    later = generate_bars("NSE:TEST", date(2024, 2, 1), date(2024, 2, 2), seed=99)
    store.write("NSE:TEST", later)
    back = store.read("NSE:TEST")
    assert len(back) == len(bars)
    in_range = back["session"].isin([date(2024, 2, 1), date(2024, 2, 2)])
    pd.testing.assert_frame_equal(
        back.loc[in_range, BAR_FIELDS].reset_index(drop=True), as_stored(later)
    )


@functools.cache
def three_days(seed: int) -> pd.DataFrame:
    """1125 bars spanning a month boundary (2024-01-31 .. 2024-02-02)."""
    return generate_bars("NSE:TEST", date(2024, 1, 31), date(2024, 2, 2), seed=seed)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.integers(min_value=0, max_value=1100),
    length=st.integers(min_value=1, max_value=800),
    seed=st.integers(min_value=0, max_value=3),
)
def test_any_overlapping_rewrite_keeps_one_bar_per_minute(
    tmp_path_factory: pytest.TempPathFactory, first: int, length: int, seed: int
) -> None:
    store = BarStore(tmp_path_factory.mktemp("bars"))
    base = three_days(1)
    store.write("NSE:TEST", base)
    patch = three_days(seed + 100).iloc[first : first + length]
    store.write("NSE:TEST", patch)
    back = store.read("NSE:TEST")
    assert back["timestamp"].is_unique
    assert back["timestamp"].is_monotonic_increasing
    assert len(back) == len(base)


def test_writes_leave_no_temporary_files(store: BarStore, week_of_bars: pd.DataFrame) -> None:
    store.write("NSE:TEST", week_of_bars)
    store.write("NSE:TEST", week_of_bars.iloc[:100])
    leftovers = [p for p in store.root.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_failed_write_keeps_the_previous_file(
    store: BarStore, week_of_bars: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write("NSE:TEST", week_of_bars)
    before = store.read("NSE:TEST")

    def explode(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("quantdesk.market.store.pq.write_table", explode)
    with pytest.raises(OSError, match="disk full"):
        store.write("NSE:TEST", week_of_bars.iloc[:10].assign(volume=0))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(store.read("NSE:TEST"), before)
    assert not [p for p in store.root.rglob("*.tmp")]


def test_read_filters_by_half_open_time_range(store: BarStore, week_of_bars: pd.DataFrame) -> None:
    store.write("NSE:TEST", week_of_bars)
    start = datetime(2024, 1, 3, 3, 45, tzinfo=UTC)
    end = datetime(2024, 1, 4, 3, 45, tzinfo=UTC)
    got = store.read("NSE:TEST", start, end)
    assert len(got) == 375
    assert got["timestamp"].min() == start
    assert got["timestamp"].max() < end


def test_reads_see_writes_from_another_store_instance(
    store: BarStore, week_of_bars: pd.DataFrame
) -> None:
    store.write("NSE:TEST", week_of_bars)
    assert len(store.read("NSE:TEST")) == len(week_of_bars)  # now cached
    BarStore(store.root).write("NSE:TEST", week_of_bars.iloc[:375].assign(volume=5))
    assert (store.read("NSE:TEST").iloc[:375]["volume"] == 5).all()


def test_daily_bars_are_stored_apart_from_minute_bars(store: BarStore) -> None:
    opens = pd.to_datetime(["2024-01-19 03:45", "2024-01-20 03:45", "2024-01-23 03:45"], utc=True)
    daily = pd.DataFrame(
        {
            "timestamp": opens,
            "open": [10.0, 11.0, 12.0],
            "high": [11.0, 12.0, 13.0],
            "low": [9.0, 10.0, 11.0],
            "close": [10.5, 11.5, 12.5],
            "volume": [100, 200, 300],
        }
    )
    store.write("NSE:TEST", daily, "1d")
    assert store.read("NSE:TEST", interval="1m").empty
    assert list(store.read("NSE:TEST", interval="1d")["session"]) == [
        date(2024, 1, 19),
        date(2024, 1, 20),
        date(2024, 1, 23),
    ]
    coverage = store.coverage("NSE:TEST")
    assert set(coverage) == {"1d"}
    assert coverage["1d"].rows == 3
    assert coverage["1d"].sessions == 3
    assert coverage["1d"].first == opens[0]


def test_bars_on_a_non_session_date_are_refused(store: BarStore) -> None:
    sunday = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2024-01-07 04:00"], utc=True),
            "open": [1.0],
            "high": [1.0],
            "low": [1.0],
            "close": [1.0],
            "volume": [1],
        }
    )
    with pytest.raises(ValueError, match="not on a NSE session date"):
        store.write("NSE:TEST", sunday)


def test_coverage_and_symbols_of_an_empty_store(tmp_path: Path) -> None:
    store = BarStore(tmp_path / "nothing")
    assert store.symbols() == []
    assert store.coverage("NSE:TEST") == {}
    assert store.read("NSE:TEST").empty


def test_delete_removes_a_symbol(store: BarStore, week_of_bars: pd.DataFrame) -> None:
    store.write("NSE:TEST", week_of_bars)
    store.delete("NSE:TEST")
    assert store.symbols() == []
