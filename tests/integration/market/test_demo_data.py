"""First-start demo data (bootstrap.ensure_demo_data) against a real database, with the date
fixed so the history's sessions are known."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from quantdesk.bootstrap import bar_store, ensure_demo_data
from quantdesk.market.calendars import get_calendar
from quantdesk.market.candles import candles
from quantdesk.market.demo import history_window
from tests.conftest import make_settings

TODAY = date(2024, 1, 22)  # a Monday holiday; the Saturday before (2024-01-20) was a session


def test_the_history_ends_at_the_last_session_before_today() -> None:
    nse = get_calendar("NSE")
    assert history_window(nse, TODAY, 2, 4) == (
        date(2024, 1, 17),
        date(2024, 1, 19),
        date(2024, 1, 20),
    )
    # A session day is not part of its own history: it may still be trading.
    assert history_window(nse, date(2024, 1, 19), 1, 1)[2] == date(2024, 1, 18)
    with pytest.raises(ValueError, match="at least 1"):
        history_window(nse, TODAY, 0, 4)


async def test_ensure_demo_data_seeds_an_empty_store_once(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path)
    calls: list[tuple[str, int, int]] = []
    result = await ensure_demo_data(
        settings,
        sessions=2,
        daily_sessions=4,
        seed=5,
        today=TODAY,
        progress=lambda *call: calls.append(call),
    )
    history = result.history
    assert history is not None
    assert (history.first_daily_session, history.last_session) == (
        date(2024, 1, 17),
        date(2024, 1, 20),
    )
    assert history.symbols == 52
    assert history.minute_bars == 52 * (375 + 375)
    assert history.daily_bars == 52 * 4
    assert [c[1:] for c in calls] == [(n, 52) for n in range(1, 53)]

    store = bar_store(settings)
    saturday = candles(store, "NSE:NIFTY BANK", "1d", source="1m")
    assert list(saturday["time"].dt.tz_convert("Asia/Kolkata").dt.date) == [
        date(2024, 1, 19),
        date(2024, 1, 20),
    ]
    pd.testing.assert_frame_equal(
        saturday, candles(store, "NSE:NIFTY BANK", "1d", source="1d").tail(2).reset_index(drop=True)
    )

    again = await ensure_demo_data(settings, sessions=2, daily_sessions=4, today=TODAY)
    assert again.history is None
    assert again.existing_symbols == 52


async def test_force_replaces_only_the_demo_symbols_and_leaves_no_older_bars(
    db_url: str, tmp_path: Path
) -> None:
    settings = make_settings(db_url, tmp_path)
    await ensure_demo_data(settings, sessions=3, daily_sessions=3, seed=1, today=TODAY)
    store = bar_store(settings)
    other = store.read("NSE:INFY").assign(volume=1)
    store.write("NSE:OTHERCO", other, "1m")

    result = await ensure_demo_data(
        settings, sessions=1, daily_sessions=2, seed=2, today=TODAY, force=True
    )
    assert result.history is not None
    assert result.existing_symbols == 53
    assert store.coverage("NSE:INFY")["1m"].sessions == 1  # the 3-session seed is gone
    assert store.coverage("NSE:INFY")["1d"].sessions == 2
    assert store.coverage("NSE:OTHERCO")["1m"].rows == len(other)  # not a demo symbol
