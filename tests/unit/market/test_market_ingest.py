"""Ingest: formats, time zones, validation report, reject/drop policy, writing to the store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from quantdesk.market.ingest import ingest, load_bars
from quantdesk.market.store import BarStore

WriteCsv = Callable[[str, str], Path]

GOOD_GENERIC = """
Timestamp,Open,High,Low,Close,Volume
2024-01-02 09:15:00,100.00,101.00,99.50,100.50,1000
2024-01-02 09:16:00,100.50,100.90,100.10,100.20,800
2024-01-02 09:17:00,100.20,100.40,100.00,100.35,600
"""


def test_generic_csv_with_naive_times_is_read_in_exchange_time(write_csv: WriteCsv) -> None:
    result = load_bars(write_csv("bars.csv", GOOD_GENERIC), "NSE:INFY")
    assert result.accepted
    assert result.interval == "1m"
    assert result.label == "start"
    assert result.bars["timestamp"].iloc[0] == datetime(2024, 1, 2, 3, 45, tzinfo=UTC)
    assert result.bars["volume"].dtype == "int64"
    assert result.bars["close"].dtype == "float64"
    assert result.issues == []


def test_tz_option_sets_the_zone_of_naive_times(write_csv: WriteCsv) -> None:
    text = GOOD_GENERIC.replace("09:1", "03:4")  # the same bars written in UTC
    result = load_bars(write_csv("utc.csv", text), "NSE:INFY", tz="UTC")
    assert result.accepted
    assert result.bars["timestamp"].iloc[0] == datetime(2024, 1, 2, 3, 45, tzinfo=UTC)


def test_aliases_and_case_are_accepted_in_generic_format(write_csv: WriteCsv) -> None:
    text = """
DATETIME,o,h,l,c,vol
2024-01-02T09:15:00+05:30,100,101,99,100.5,10
"""
    result = load_bars(write_csv("alias.csv", text), "NSE:INFY")
    assert result.accepted, result.issues
    assert len(result.bars) == 1


def test_separate_date_and_time_columns_are_combined(write_csv: WriteCsv) -> None:
    text = """
date,time,open,high,low,close,volume
2024-01-02,09:15:00,100,101,99,100.5,10
2024-01-02,09:16:00,100,101,99,100.5,10
"""
    result = load_bars(write_csv("split.csv", text), "NSE:INFY")
    assert result.accepted, result.issues
    assert result.bars["timestamp"].iloc[1] == datetime(2024, 1, 2, 3, 46, tzinfo=UTC)


def test_kite_candles_with_0530_offsets(write_csv: WriteCsv) -> None:
    text = """
date,open,high,low,close,volume
2024-01-02T09:15:00+0530,1600.0,1602.5,1598.0,1601.0,12000
2024-01-02T09:16:00+0530,1601.0,1603.0,1600.0,1602.0,9000
"""
    result = load_bars(write_csv("kite.csv", text), "NSE:INFY", fmt="kite")
    assert result.accepted, result.issues
    assert result.bars["timestamp"].iloc[1] == datetime(2024, 1, 2, 3, 46, tzinfo=UTC)


def test_kite_daily_candles_are_stamped_at_the_session_open(write_csv: WriteCsv) -> None:
    text = """
date,open,high,low,close,volume
2024-01-19T00:00:00+0530,1600,1610,1590,1605,1000
2024-01-20T00:00:00+0530,1605,1615,1600,1610,500
"""
    result = load_bars(write_csv("kite_day.csv", text), "NSE:INFY", fmt="kite")
    assert result.accepted, result.issues
    assert result.interval == "1d"
    assert list(result.bars["timestamp"]) == [
        datetime(2024, 1, 19, 3, 45, tzinfo=UTC),
        datetime(2024, 1, 20, 3, 45, tzinfo=UTC),  # special Saturday session
    ]


def test_yahoo_daily_csv_stores_close_not_adj_close(write_csv: WriteCsv) -> None:
    text = """
Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,100,110,95,105,99.5,1000
2024-01-03,105,108,101,102,97.0,900
"""
    result = load_bars(write_csv("yahoo.csv", text), "NSE:INFY", fmt="yahoo")
    assert result.accepted, result.issues
    assert result.interval == "1d"
    assert list(result.bars["close"]) == [105.0, 102.0]


def test_format_specific_column_names_are_required(write_csv: WriteCsv) -> None:
    result = load_bars(write_csv("bars.csv", GOOD_GENERIC), "NSE:INFY", fmt="kite")
    assert not result.accepted
    assert result.issue_counts == {"missing_column": 1}
    assert "date" in result.issues[0].message


def test_missing_columns_reject_even_with_drop_bad(write_csv: WriteCsv) -> None:
    text = "timestamp,open,high,low,close\n2024-01-02 09:15,1,1,1,1\n"
    result = load_bars(write_csv("novol.csv", text), "NSE:INFY", drop_bad=True)
    assert not result.accepted
    assert result.issues[0].code == "missing_column"
    assert "volume" in result.issues[0].message
    assert result.bars.empty


BAD_ROWS = """
timestamp,open,high,low,close,volume
2024-01-02 09:15:00,100,101,99,100.5,10
not a time,100,101,99,100.5,10
2024-01-02 09:17:00,abc,101,99,100.5,10
2024-01-02 09:18:00,100,99.9,99,100.5,10
2024-01-02 09:19:00,100,101,100.2,100.5,10
2024-01-02 09:20:00,100,101,99,100.5,-5
2024-01-02 09:21:00,100,101,99,100.5,1.5
2024-01-02 09:15:00,100,101,99,100.5,10
2024-01-02 15:45:00,100,101,99,100.5,10
2024-01-06 10:00:00,100,101,99,100.5,10
2024-01-02 09:22:00,100,101,99,100.5,
2024-01-02 09:23:00,100,101,99,100.5,7
"""

EXPECTED_ROWS = {
    "bad_timestamp": 2,
    "bad_price": 3,
    "high_below_open_close": 4,
    "low_above_open_close": 5,
    "negative_volume": 6,
    "bad_volume": 7,
    "duplicate_timestamp": 8,
    "outside_session": 9,
}


def test_every_bad_row_is_reported_with_row_number_and_reason(write_csv: WriteCsv) -> None:
    result = load_bars(write_csv("bad.csv", BAD_ROWS), "NSE:INFY")
    rows_by_code: dict[str, list[int]] = {}
    for issue in result.issues:
        assert issue.row is not None
        rows_by_code.setdefault(issue.code, []).append(issue.row)
    for code, row in EXPECTED_ROWS.items():
        assert row in rows_by_code[code], (code, rows_by_code)
    assert 10 in rows_by_code["outside_session"]  # a Saturday with no session
    assert 11 in rows_by_code["bad_volume"]  # empty volume
    assert result.rows_bad == 10
    dup = next(i for i in result.issues if i.code == "duplicate_timestamp")
    assert "first at row 1" in dup.message


def test_default_policy_rejects_the_whole_file_and_writes_nothing(
    write_csv: WriteCsv, store: BarStore
) -> None:
    result = ingest(write_csv("bad.csv", BAD_ROWS), "NSE:INFY", store)
    assert not result.accepted
    assert result.bars.empty
    assert result.written is None
    assert store.symbols() == []


def test_drop_bad_keeps_good_rows_and_reports_the_rest(
    write_csv: WriteCsv, store: BarStore
) -> None:
    result = ingest(write_csv("bad.csv", BAD_ROWS), "NSE:INFY", store, drop_bad=True)
    assert result.accepted
    assert len(result.bars) == 2
    assert result.written is not None
    assert result.written.rows_written == 2
    assert len(store.read("NSE:INFY")) == 2
    assert "REJECTED" not in result.summary()


def test_high_below_low_is_its_own_reason(write_csv: WriteCsv) -> None:
    text = "timestamp,open,high,low,close,volume\n2024-01-02 09:15,100,99,101,100,1\n"
    result = load_bars(write_csv("hl.csv", text), "NSE:INFY")
    assert "high_below_low" in result.issue_counts


def test_end_labelled_bars_are_detected_and_shifted_to_bar_start(write_csv: WriteCsv) -> None:
    times = pd.date_range("2024-01-02 09:16", "2024-01-02 15:30", freq="1min")
    frame = pd.DataFrame(
        {"timestamp": times, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0}
    )
    path = write_csv("end.csv", frame.to_csv(index=False))
    result = load_bars(path, "NSE:NIFTY50")
    assert result.accepted, result.issues[:3]
    assert result.label == "end"
    assert len(result.bars) == 375
    assert result.bars["timestamp"].iloc[0] == datetime(2024, 1, 2, 3, 45, tzinfo=UTC)
    assert result.bars["timestamp"].iloc[-1] == datetime(2024, 1, 2, 9, 59, tzinfo=UTC)


def test_start_labelled_bar_at_the_close_is_outside_the_session(write_csv: WriteCsv) -> None:
    text = GOOD_GENERIC + "2024-01-02 15:30:00,100,101,99,100.5,1\n"
    result = load_bars(write_csv("close.csv", text), "NSE:INFY", label="start")
    assert result.issue_counts == {"outside_session": 1}


def test_five_minute_bars_are_refused_as_unsupported(write_csv: WriteCsv) -> None:
    times = pd.date_range("2024-01-02 09:15", periods=20, freq="5min")
    frame = pd.DataFrame(
        {"timestamp": times, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0}
    )
    result = load_bars(write_csv("five.csv", frame.to_csv(index=False)), "NSE:INFY")
    assert not result.accepted
    assert "unsupported_interval" in result.issue_counts


def test_parquet_with_symbol_column_reads_only_that_symbol(tmp_path: Path) -> None:
    stamps = pd.to_datetime(["2024-01-02 09:15", "2024-01-02 09:16"]).tz_localize("Asia/Kolkata")
    frame = pd.DataFrame(
        {
            "timestamp": list(stamps) * 2,
            "symbol": ["INFY", "INFY", "TCS", "TCS"],
            "open": 1.0,
            "high": 2.0,
            "low": 0.5,
            "close": 1.5,
            "volume": [1, 2, 3, 4],
        }
    )
    frame.to_parquet(tmp_path / "two.parquet")
    result = load_bars(tmp_path / "two.parquet", "NSE:TCS")
    assert result.accepted, result.issues
    assert list(result.bars["volume"]) == [3, 4]
    missing = load_bars(tmp_path / "two.parquet", "NSE:WIPRO")
    assert missing.issue_counts == {"symbol_not_in_file": 1}


def test_folder_is_one_unit_with_duplicates_across_files_found(
    tmp_path: Path, write_csv: WriteCsv
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_text(GOOD_GENERIC.lstrip())
    (folder / "b.csv").write_text(GOOD_GENERIC.lstrip().replace("09:15:00", "09:18:00"))
    (folder / "notes.md").write_text("ignored")
    result = load_bars(folder, "NSE:INFY")
    assert len(result.files) == 2
    assert result.issue_counts == {"duplicate_timestamp": 2}
    dup = result.issues[0]
    assert dup.file is not None
    assert dup.file.endswith("b.csv")


def test_progress_callback_reports_each_stage(write_csv: WriteCsv, store: BarStore) -> None:
    seen: list[tuple[str, int, int]] = []
    ingest(
        write_csv("bars.csv", GOOD_GENERIC),
        "NSE:INFY",
        store,
        progress=lambda stage, done, total: seen.append((stage, done, total)),
    )
    assert ("read", 1, 1) in seen
    assert ("validate", 1, 1) in seen
    assert seen[-1] == ("write", 1, 1)


def test_reingesting_a_corrected_file_replaces_the_stored_bars(
    write_csv: WriteCsv, store: BarStore
) -> None:
    ingest(write_csv("v1.csv", GOOD_GENERIC), "NSE:INFY", store)
    fixed = GOOD_GENERIC.replace(",800", ",850")
    result = ingest(write_csv("v2.csv", fixed), "NSE:INFY", store)
    assert result.written is not None
    assert result.written.rows_replaced == 3
    assert list(store.read("NSE:INFY")["volume"]) == [1000, 850, 600]


def test_issue_details_are_capped_but_counts_are_complete(write_csv: WriteCsv) -> None:
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"2024-01-02 10:{i:02d}:00,x,1,1,1,1" for i in range(50)]
    result = load_bars(write_csv("many.csv", "\n".join(lines)), "NSE:INFY", max_issues=5)
    assert len(result.issues) == 5
    assert result.issue_counts["bad_price"] == 50


def test_unsupported_and_missing_paths_are_file_issues(tmp_path: Path) -> None:
    (tmp_path / "bars.xlsx").write_text("")
    assert load_bars(tmp_path / "bars.xlsx", "NSE:INFY").issue_counts == {"unsupported_file": 1}
    assert load_bars(tmp_path / "nope.csv", "NSE:INFY").issue_counts == {"unreadable_file": 1}


def test_unknown_format_is_a_programming_error(write_csv: WriteCsv) -> None:
    with pytest.raises(ValueError, match="format"):
        load_bars(write_csv("bars.csv", GOOD_GENERIC), "NSE:INFY", fmt="excel")  # type: ignore[arg-type]


def test_epoch_second_timestamps_are_understood(tmp_path: Path) -> None:
    epoch = int(datetime(2024, 1, 2, 3, 45, tzinfo=UTC).timestamp())
    frame = pd.DataFrame(
        {"ts": [epoch], "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "volume": [1]}
    )
    frame.to_parquet(tmp_path / "epoch.parquet")
    result = load_bars(tmp_path / "epoch.parquet", "NSE:INFY")
    assert result.accepted, result.issues
    assert result.bars["timestamp"].iloc[0].date() == date(2024, 1, 2)
