"""Signal thresholds, the Parquet signal store and the as-of signal reader."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantdesk.ml.signals import COLUMNS, SignalReader, SignalStore, Thresholds

T0 = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _rows(days: range, value: float = 0.5, version: int = 1) -> list[dict[str, object]]:
    return [
        {"time": T0 + d * DAY, "value": value + d / 100, "signal": 0, "model_version": version}
        for d in days
    ]


# -- thresholds -----------------------------------------------------------------------------


def test_thresholds_long_only_by_default() -> None:
    t = Thresholds()
    assert [t.signal(p) for p in (0.9, 0.56, 0.55, 0.5, 0.1, math.nan)] == [1, 1, 0, 0, 0, 0]


def test_thresholds_short_and_min_confidence() -> None:
    t = Thresholds(long=0.52, short=0.48, min_confidence=0.05)
    values = [0.60, 0.54, 0.53, 0.50, 0.47, 0.46, 0.40]
    # 0.54 and 0.46 pass long/short but are within 0.05 of a coin flip.
    np.testing.assert_array_equal(t.apply(values), [1, 0, 0, 0, 0, 0, -1])
    assert Thresholds.from_dict(t.to_dict()) == t


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError, match="short"):
        Thresholds(long=0.5, short=0.6)
    with pytest.raises(ValueError, match="min_confidence"):
        Thresholds(min_confidence=0.7)


# -- the store ------------------------------------------------------------------------------


def test_append_writes_sorted_parquet_under_model_and_quoted_symbol(tmp_path: Path) -> None:
    store = SignalStore(tmp_path)
    store.append("mom", "NSE:M&M", _rows(range(3, 6)))
    store.append("mom", "NSE:M&M", _rows(range(0, 3)))
    path = tmp_path / "mom" / "NSE%3AM%26M.parquet"
    assert store.path("mom", "NSE:M&M") == path and path.is_file()
    frame = pd.read_parquet(path)
    assert list(frame.columns) == list(COLUMNS)
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"
    assert frame["time"].is_monotonic_increasing and len(frame) == 6
    assert store.symbols("mom") == ["NSE:M&M"] and store.models() == ["mom"]


def test_append_is_idempotent_on_time(tmp_path: Path) -> None:
    store = SignalStore(tmp_path)
    store.append("m", "NSE:A", _rows(range(4)))
    assert store.append("m", "NSE:A", _rows(range(4))) == 4
    store.append("m", "NSE:A", _rows(range(2, 3), value=0.9, version=2))
    frame = store.read("m", "NSE:A")
    assert len(frame) == 4
    row = frame.iloc[2]
    assert row["value"] == pytest.approx(0.92) and row["model_version"] == 2
    assert frame["model_version"].tolist() == [1, 1, 2, 1]


def test_read_filters_inclusively_and_latest(tmp_path: Path) -> None:
    store = SignalStore(tmp_path)
    assert store.read("m", "NSE:A").empty and store.latest("m", "NSE:A") is None
    assert store.models() == [] and store.symbols("m") == []
    store.append("m", "NSE:A", _rows(range(10)))
    part = store.read("m", "NSE:A", start=T0 + 2 * DAY, end=(T0 + 4 * DAY).replace(tzinfo=None))
    assert part["time"].tolist() == [pd.Timestamp(T0 + d * DAY) for d in (2, 3, 4)]
    latest = store.latest("m", "NSE:A")
    assert latest is not None
    assert latest.time == pd.Timestamp(T0 + 9 * DAY) and latest.value == pytest.approx(0.59)


def test_naive_times_are_utc_and_other_zones_converted(tmp_path: Path) -> None:
    store = SignalStore(tmp_path)
    ist = pd.Timestamp("2024-01-01 15:30", tz="Asia/Kolkata")
    store.append(
        "m",
        "NSE:A",
        pd.DataFrame({"time": [ist], "value": [0.6], "signal": [1], "model_version": [1]}),
    )
    store.append(
        "m",
        "NSE:A",
        [{"time": datetime(2024, 1, 1, 10, 0), "value": 0.7, "signal": 1, "model_version": 1}],
    )
    frame = store.read("m", "NSE:A")
    assert frame["time"].tolist() == [pd.Timestamp("2024-01-01 10:00", tz="UTC")]
    assert frame["value"].tolist() == [0.7]  # 15:30 IST is 10:00 UTC: replaced


def test_rows_without_a_required_column_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="signal"):
        SignalStore(tmp_path).append("m", "NSE:A", [{"time": T0, "value": 0.5, "model_version": 1}])


# -- the reader -----------------------------------------------------------------------------


def test_reader_is_as_of_and_never_looks_ahead(tmp_path: Path) -> None:
    store = SignalStore(tmp_path)
    store.append("m", "NSE:A", _rows(range(5)))  # values 0.50 .. 0.54 at T0 + d days
    reader = SignalReader(store)
    assert reader("m", "NSE:A", T0 - timedelta(microseconds=1)) is None
    assert reader("m", "NSE:A", T0) == pytest.approx(0.50)  # known at exactly its time
    for d in range(5):
        just_before = T0 + d * DAY - timedelta(microseconds=1)
        expected = None if d == 0 else pytest.approx(0.50 + (d - 1) / 100)
        assert reader("m", "NSE:A", just_before) == expected  # never the row at T0 + d
        assert reader("m", "NSE:A", T0 + d * DAY + timedelta(hours=5)) == pytest.approx(
            0.50 + d / 100
        )
    assert reader("m", "NSE:A", T0 + 100 * DAY) == pytest.approx(0.54)
    assert reader("m", "NSE:B", T0 + DAY) is None and reader("other", "NSE:A", T0) is None


def test_reader_loads_each_series_once_until_refreshed(tmp_path: Path) -> None:
    store = SignalStore(tmp_path)
    store.append("m", "NSE:A", _rows(range(2)))
    reader = SignalReader(store)
    assert reader("m", "NSE:A", T0 + 10 * DAY) == pytest.approx(0.51)
    store.append("m", "NSE:A", _rows(range(2, 3)))
    assert reader("m", "NSE:A", T0 + 10 * DAY) == pytest.approx(0.51)  # a snapshot
    reader.refresh()
    assert reader("m", "NSE:A", T0 + 10 * DAY) == pytest.approx(0.52)


def test_reader_max_age_and_nan(tmp_path: Path) -> None:
    store = SignalStore(tmp_path)
    gap = {"time": T0 + DAY, "value": math.nan, "signal": 0, "model_version": 1}
    store.append("m", "NSE:A", [*_rows(range(1)), gap])
    reader = SignalReader(store, max_age=timedelta(hours=2))
    assert reader("m", "NSE:A", T0 + timedelta(hours=2)) == pytest.approx(0.5)
    assert reader("m", "NSE:A", T0 + timedelta(hours=3)) is None  # stale
    assert reader("m", "NSE:A", T0 + DAY) is None  # a NaN signal is no signal


def test_reader_from_frame_without_files() -> None:
    times = [T0 + d * DAY for d in (2, 0, 1)]  # unsorted on purpose
    index = pd.MultiIndex.from_arrays(
        [times + times, ["NSE:A"] * 3 + ["NSE:B"] * 3], names=["time", "symbol"]
    )
    frame = pd.DataFrame({"value": [0.2, 0.0, 0.1, 1.2, 1.0, 1.1]}, index=index)
    reader = SignalReader.from_frame("oos", frame)
    assert reader("oos", "NSE:A", T0 - DAY) is None
    assert reader("oos", "NSE:A", T0 + DAY + timedelta(hours=1)) == pytest.approx(0.1)
    assert reader("oos", "NSE:B", T0 + 2 * DAY - timedelta(seconds=1)) == pytest.approx(1.1)
    assert reader("oos", "NSE:B", T0 + 9 * DAY) == pytest.approx(1.2)
    assert reader("other", "NSE:A", T0 + 9 * DAY) is None
    with pytest.raises(ValueError, match="value"):
        SignalReader.from_frame("oos", frame.rename(columns={"value": "p"}))


def test_reader_works_as_the_engine_signal_callback(tmp_path: Path) -> None:
    from quantdesk.backtest.engine import SignalReader as EngineSignalReader

    store = SignalStore(tmp_path)
    store.append("m", "NSE:A", _rows(range(3)))
    callback: EngineSignalReader = SignalReader(store)
    assert callback("m", "NSE:A", T0 + DAY) == pytest.approx(0.51)
