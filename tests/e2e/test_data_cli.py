"""`quantdesk data ...` and `quantdesk demo seed` as a user runs them: real processes, a fresh
data directory per test, the store inspected afterwards."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pandas as pd
import pytest

from quantdesk.market.candles import candles
from quantdesk.market.store import BarStore

pytestmark = pytest.mark.e2e

QD = [sys.executable, "-m", "quantdesk.cli"]
IST = ZoneInfo("Asia/Kolkata")
SHARED = Path(
    os.environ.get("QUANTDESK_SHARED_DIR") or Path(__file__).resolve().parents[3] / "shared"
)
SHARED_MINUTES = SHARED / "data" / "market" / "nse_index_intraday_1min.parquet"


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QD, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180, check=False
    )


def clean_env(data_dir: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("QUANTDESK_")}
    e.update(
        QUANTDESK_DATA_DIR=str(data_dir),
        QUANTDESK_BCRYPT_ROUNDS="4",
        QUANTDESK_FEED="none",
        COLUMNS="200",
    )
    return e


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A fresh, empty installation."""
    return clean_env(tmp_path / "var")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated installation with the demo instruments and no bars, made once per module
    (each CLI start costs seconds): tests get a copy."""
    root = tmp_path_factory.mktemp("template")
    env = clean_env(root / "var")
    assert run(["db", "upgrade"], env, root).returncode == 0
    r = run(["instruments", "seed-demo"], env, root)
    assert r.returncode == 0, r.stderr
    return root / "var"


@pytest.fixture
def installed(template: Path, tmp_path: Path) -> dict[str, str]:
    """A fresh copy of the template installation."""
    shutil.copytree(template, tmp_path / "var")
    return clean_env(tmp_path / "var")


def store_of(env: dict[str, str]) -> BarStore:
    return BarStore(Path(env["QUANTDESK_DATA_DIR"]) / "bars")


def stored_files(env: dict[str, str]) -> list[Path]:
    return sorted((Path(env["QUANTDESK_DATA_DIR"]) / "bars").rglob("*.parquet"))


def minute_rows(day: date, start: str, count: int, base: float = 1500.0) -> list[list[str]]:
    """`count` clean 1-minute bars from `start` (HH:MM, IST) on `day`: timestamp, o, h, l, c, v."""
    first = datetime.combine(day, datetime.strptime(start, "%H:%M").time())
    rows = []
    for i in range(count):
        o = base + i * 0.5
        c = o + 0.25
        rows.append(
            [
                (first + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S"),
                f"{o:.2f}",
                f"{c + 1:.2f}",
                f"{o - 1:.2f}",
                f"{c:.2f}",
                str(100 + i),
            ]
        )
    return rows


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    return path


GENERIC = ["timestamp", "open", "high", "low", "close", "volume"]
DAY = date(2024, 1, 2)  # a Tuesday session on NSE


def candles_json(env: dict[str, str], cwd: Path, *args: str) -> list[dict[str, object]]:
    r = run(["data", "candles", *args, "--json"], env, cwd)
    assert r.returncode == 0, r.stderr
    return list(json.loads(r.stdout)["candles"])


# -- ingest ------------------------------------------------------------------------------------


def test_ingest_a_good_generic_csv_then_candles_show_it(
    installed: dict[str, str], tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "infy.csv", GENERIC, minute_rows(DAY, "09:15", 30))
    r = run(["data", "ingest", str(path), "--symbol", "nse:infy"], installed, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "NSE:INFY: stored" in r.stdout
    assert "rows read    30" in r.stdout
    assert "2024-01-02 09:15 .. 2024-01-02 09:44" in r.stdout
    assert "written      30 1m bars" in r.stdout

    minutes = candles_json(installed, tmp_path, "NSE:INFY", "-i", "1m", "--start", "2024-01-02")
    assert len(minutes) == 30
    assert minutes[0]["time"] == "2024-01-02T03:45:00+00:00"  # 09:15 IST, the bar's start
    assert minutes[0]["open"] == "1500.0"
    (daily,) = candles_json(installed, tmp_path, "NSE:INFY", "--start", "2024-01-02")
    assert daily["open"] == "1500.0"
    assert daily["close"] == str(1500 + 29 * 0.5 + 0.25)
    assert daily["volume"] == sum(range(100, 130))

    r = run(["data", "coverage"], installed, tmp_path)
    assert re.search(
        r"NSE:INFY\s*│ 1m\s*│ 2024-01-02 09:15 │ 2024-01-02 09:44 │ 1\s*│ 30", r.stdout
    )


def test_ingest_kite_candles_with_offsets(installed: dict[str, str], tmp_path: Path) -> None:
    rows = minute_rows(DAY, "15:00", 30, base=2500)  # 15:00..15:29, the session's last bars
    for row in rows:
        row[0] = row[0].replace(" ", "T") + "+0530"
    path = write_csv(tmp_path / "kite.csv", ["date", *GENERIC[1:]], rows)
    r = run(
        ["data", "ingest", str(path), "-s", "NSE:RELIANCE", "--format", "kite"], installed, tmp_path
    )
    assert r.returncode == 0, r.stdout + r.stderr
    hourly = candles_json(installed, tmp_path, "NSE:RELIANCE", "-i", "1h", "--start", "2024-01-02")
    # Hourly buckets are anchored at the 09:15 open: 14:15-15:15 and 15:15-15:30.
    assert [c["time"] for c in hourly] == ["2024-01-02T08:45:00+00:00", "2024-01-02T09:45:00+00:00"]
    assert hourly[0]["volume"] == sum(range(100, 115))


def test_a_bad_file_is_rejected_with_row_numbers_and_nothing_is_written(
    installed: dict[str, str], tmp_path: Path
) -> None:
    rows = minute_rows(DAY, "09:15", 12)
    rows[6][2], rows[6][3] = "1400.00", "1600.00"  # data row 7: high < low
    rows[9][0] = rows[8][0]  # data row 10 repeats row 9's time
    rows.append(["2024-01-02 16:05:00", "1500", "1501", "1499", "1500", "5"])  # row 13: closed
    path = write_csv(tmp_path / "bad.csv", GENERIC, rows)

    r = run(["data", "ingest", str(path), "--symbol", "NSE:INFY"], installed, tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stderr
    assert "REJECTED, nothing written" in out
    assert re.search(r"│ 7\s*│\s*│ high_below_low\s*│ high 1400.0 < low 1600.0", out), out
    assert re.search(r"│ 10\s*│ timestamp │ duplicate_timestamp\s*│ .*first at row 9", out), out
    assert re.search(r"│ 13\s*│ timestamp │ outside_session\s*│ 2024-01-02T16:05:00\+05:30", out)
    assert re.search(r"bad rows\s+3\b", out)
    assert stored_files(installed) == []
    assert "No bars stored" in run(["data", "coverage"], installed, tmp_path).stdout


def test_drop_bad_stores_the_good_rows_and_reports_the_rest(
    installed: dict[str, str], tmp_path: Path
) -> None:
    rows = minute_rows(DAY, "09:15", 12)
    rows[6][4] = "not-a-price"  # row 7: close unparsable
    rows.append(["2024-01-02 16:05:00", "1500", "1501", "1499", "1500", "5"])  # row 13
    path = write_csv(tmp_path / "some-bad.csv", GENERIC, rows)
    r = run(["data", "ingest", str(path), "-s", "NSE:INFY", "--drop-bad"], installed, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"│ 7\s*│ close\s*│ bad_price", r.stdout)
    assert re.search(r"│ 13\s*│ timestamp │ outside_session", r.stdout)
    assert "bad rows     2 (dropped)" in r.stdout
    stored = store_of(installed).read("NSE:INFY")
    assert len(stored) == 11
    assert pd.Timestamp("2024-01-02 09:21", tz=IST) not in set(stored["timestamp"])


def test_reingesting_an_overlapping_range_replaces_without_duplicates(
    installed: dict[str, str], tmp_path: Path
) -> None:
    first = write_csv(tmp_path / "a.csv", GENERIC, minute_rows(DAY, "09:15", 30, base=1000))
    second = write_csv(tmp_path / "b.csv", GENERIC, minute_rows(DAY, "09:30", 45, base=2000))
    assert run(["data", "ingest", str(first), "-s", "NSE:TCS"], installed, tmp_path).returncode == 0
    r = run(["data", "ingest", str(second), "-s", "NSE:TCS"], installed, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "replaced 15 stored bars in 2024-01-02 09:30 .. 2024-01-02 10:14" in r.stdout

    stored = store_of(installed).read("NSE:TCS")
    assert len(stored) == 60  # 09:15..10:14, each minute once
    assert stored["timestamp"].is_unique and stored["timestamp"].is_monotonic_increasing
    at_0930 = stored.set_index("timestamp").loc[pd.Timestamp("2024-01-02 09:30", tz=IST)]
    assert at_0930["open"] == 2000.0  # the second file wins in its range
    assert stored["open"].iloc[0] == 1000.0  # bars before its range are kept


def test_usage_errors_exit_2(installed: dict[str, str], tmp_path: Path) -> None:
    path = write_csv(tmp_path / "ok.csv", GENERIC, minute_rows(DAY, "09:15", 3))
    for args, reason in [
        (["data", "ingest", str(path), "--symbol", "INFY"], "expected EXCHANGE:SYMBOL"),
        (["data", "ingest", str(path), "--symbol", "LSE:VOD"], "no calendar for exchange"),
        (["data", "ingest", str(tmp_path / "missing.csv"), "-s", "NSE:INFY"], "does not exist"),
        (["data", "ingest", str(path), "-s", "NSE:INFYY"], "not in the instruments master"),
        (["data", "ingest", str(path), "-s", "NSE:INFY", "--tz", "Mars/Base"], "time zone"),
        (["data", "candles", "NSE:INFY", "--interval", "2h"], "--interval must be one of"),
    ]:
        r = run(args, installed, tmp_path)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert reason in " ".join(r.stderr.split()), (args, r.stderr)
    assert stored_files(installed) == []


def test_create_instrument_adds_an_unknown_symbol_once_the_file_is_accepted(
    installed: dict[str, str], tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "new.csv", GENERIC, minute_rows(DAY, "09:15", 5, base=100))
    args = ["data", "ingest", str(path), "-s", "NSE:NEWCO", "--create-instrument"]
    r = run([*args, "--tick-size", "0.01"], installed, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Added NSE:NEWCO to the instruments master (tick 0.01" in r.stdout
    r = run(["instruments", "search", "NSE:NEWCO"], installed, tmp_path)
    assert "NSE:NEWCO" in r.stdout


def test_one_month_of_real_nifty_minutes_through_the_cli(
    installed: dict[str, str], tmp_path: Path
) -> None:
    if not SHARED_MINUTES.exists():
        pytest.skip(f"shared market data not available ({SHARED_MINUTES} is absent)")
    frame = pd.read_parquet(SHARED_MINUTES, filters=[("symbol", "=", "NIFTY50")])
    month = frame[(frame["timestamp"] >= "2022-06-01") & (frame["timestamp"] < "2022-07-01")]
    # The vendor names the index NIFTY50; our master says "NIFTY 50": drop the symbol column.
    path = tmp_path / "nifty-2022-06.parquet"
    month.drop(columns=["symbol", "session"]).to_parquet(path)
    regular = month[month["session"] == "regular"]

    args = ["data", "ingest", str(path), "--symbol", "NSE:NIFTY 50"]
    r = run(args, installed, tmp_path)
    assert r.returncode == 1  # pre-open (09:08) and post-close (15:31+) bars are not session bars
    assert "outside_session" in r.stderr
    assert stored_files(installed) == []

    r = run([*args, "--drop-bad"], installed, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "timestamps labelled at bar end" in r.stdout
    assert f"bad rows     {len(month) - len(regular)} (dropped)" in r.stdout
    daily = candles_json(
        installed, tmp_path, "NSE:NIFTY 50", "--start", "2022-06-01", "--end", "2022-06-30"
    )
    expected = regular.groupby(regular["timestamp"].dt.date).agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last")
    )
    assert len(daily) == len(expected) == 22
    for candle, (_, want) in zip(daily, expected.iterrows(), strict=True):
        assert [float(str(candle[k])) for k in ("open", "high", "low", "close")] == list(want)


# -- demo seed ---------------------------------------------------------------------------------


def demo_instruments(env: dict[str, str]) -> dict[str, tuple[Decimal, str, Decimal]]:
    with sqlite3.connect(Path(env["QUANTDESK_DATA_DIR"]) / "quantdesk.db") as con:
        rows = con.execute(
            "SELECT exchange, symbol, tick_size, instrument_type, last_price FROM instruments"
        ).fetchall()
    return {f"{x}:{s}": (Decimal(t), kind, Decimal(p)) for x, s, t, kind, p in rows}


def test_demo_seed_fills_an_empty_installation_once(env: dict[str, str], tmp_path: Path) -> None:
    seed = ["demo", "seed", "--sessions", "3", "--daily-sessions", "25", "--seed", "7"]
    r = run(seed, env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Demo data: 52 instruments (52 added to the master)" in r.stdout

    instruments = demo_instruments(env)
    assert len(instruments) == 52
    store = store_of(env)
    assert store.symbols() == sorted(instruments)
    for symbol, (tick, kind, last_price) in instruments.items():
        coverage = store.coverage(symbol)
        assert coverage["1m"].sessions == 3
        assert coverage["1m"].rows == 3 * 375
        assert coverage["1d"].sessions == 25
        minutes = store.read(symbol)
        prices = minutes[["open", "high", "low", "close"]].to_numpy() / float(tick)
        assert np.allclose(prices, np.round(prices), atol=1e-6), f"{symbol} off its {tick} tick"
        assert (minutes["low"] <= minutes[["open", "close"]].min(axis=1)).all()
        assert (minutes["high"] >= minutes[["open", "close"]].max(axis=1)).all()
        assert (minutes["volume"] == 0).all() == (kind == "INDEX")
        assert minutes["close"].iloc[-1] == float(last_price)  # history runs into the live feed
        from_minutes = candles(store, symbol, "1d", source="1m")
        from_daily = candles(store, symbol, "1d", source="1d")
        assert len(from_minutes) == 3
        pd.testing.assert_frame_equal(
            from_minutes.reset_index(drop=True), from_daily.tail(3).reset_index(drop=True)
        )

    files = {p: p.stat().st_mtime_ns for p in stored_files(env)}
    again = run(seed, env, tmp_path)
    assert again.returncode == 0
    assert "nothing seeded" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in stored_files(env)} == files


def test_demo_seed_is_deterministic_and_force_reseeds(env: dict[str, str], tmp_path: Path) -> None:
    seed = ["demo", "seed", "--sessions", "2", "--daily-sessions", "5", "--seed", "3"]
    assert run(seed, env, tmp_path).returncode == 0
    before = store_of(env).read("NSE:INFY")
    r = run([*seed, "--force"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Demo data: 52 instruments (0 added to the master)" in r.stdout
    pd.testing.assert_frame_equal(store_of(env).read("NSE:INFY"), before)
    assert run([*seed[:-1], "4", "--force"], env, tmp_path).returncode == 0
    assert not store_of(env).read("NSE:INFY").equals(before)


def test_serve_seeds_demo_data_on_the_first_start_only(env: dict[str, str], tmp_path: Path) -> None:
    from tests.e2e.test_cli import start_server

    base, proc, log = start_server(env, tmp_path)
    try:
        first = log.read_text()
        password = re.search(r"│ admin\s+admin\s+(\S+)", first)
        assert password, first
        r = httpx.post(
            f"{base}/api/v1/auth/login", json={"username": "admin", "password": password[1]}
        )
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = httpx.get(
            f"{base}/api/v1/market/candles",
            params={"symbol": "NSE:INFY", "interval": "1d"},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        daily = r.json()["candles"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert "Seeding demo market data" in first
    assert re.search(r"Demo data: 52 instruments .* 1,170,000 1-minute bars", first)
    assert len(store_of(env).symbols()) == 52
    assert len(daily) == 500  # two years of daily candles for the charts
    assert Decimal(daily[-1]["close"]) == demo_instruments(env)["NSE:INFY"][2]

    base, proc, log = start_server(env, tmp_path)
    proc.terminate()
    proc.wait(timeout=20)
    assert "Seeding" not in log.read_text()
