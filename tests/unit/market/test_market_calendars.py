"""NSE/BSE/NYSE calendars: regular hours, holidays and India's special sessions."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from quantdesk.market.calendars import (
    CalendarRangeError,
    ExchangeCalendar,
    exchange_of,
    get_calendar,
)

IST = ZoneInfo("Asia/Kolkata")


def ist(d: date, hh: int, mm: int) -> datetime:
    return datetime.combine(d, time(hh, mm), IST)


def test_get_calendar_is_cached_and_accepts_mic_aliases() -> None:
    assert get_calendar("NSE") is get_calendar("nse")
    assert get_calendar("XBOM") is get_calendar("BSE")
    assert get_calendar("XNYS").name == "NYSE"


def test_unknown_exchange_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown exchange"):
        get_calendar("LSE")


def test_regular_nse_session_runs_0915_to_1530_ist(nse: ExchangeCalendar) -> None:
    session = nse.session(date(2024, 1, 2))
    assert session is not None
    assert session.open == ist(date(2024, 1, 2), 9, 15).astimezone(UTC)
    assert session.close == ist(date(2024, 1, 2), 15, 30).astimezone(UTC)
    assert session.open.tzinfo is UTC


def test_weekends_and_exchange_holidays_are_not_sessions(nse: ExchangeCalendar) -> None:
    assert not nse.is_session(date(2024, 1, 6))  # Saturday
    assert not nse.is_session(date(2024, 1, 26))  # Republic Day
    assert not nse.is_session(date(2024, 1, 22))  # ad-hoc holiday (Ram Mandir)
    assert date(2024, 1, 26) in nse.holidays(date(2024, 1, 1), date(2024, 1, 31))


@pytest.mark.parametrize(
    ("day", "opens", "closes"),
    [
        (date(2020, 11, 14), time(18, 15), time(19, 15)),  # Muhurat, Saturday
        (date(2023, 11, 12), time(18, 15), time(19, 15)),  # Muhurat, Sunday
        (date(2024, 11, 1), time(18, 0), time(19, 0)),  # Muhurat
        (date(2024, 1, 20), time(9, 15), time(15, 30)),  # Saturday full session
        (date(2025, 2, 1), time(9, 15), time(15, 30)),  # budget day, Saturday
    ],
)
def test_special_sessions_are_sessions_with_their_own_hours(
    nse: ExchangeCalendar, day: date, opens: time, closes: time
) -> None:
    session = nse.session(day)
    assert session is not None
    assert session.reason
    assert session.open == datetime.combine(day, opens, IST)
    assert session.close == datetime.combine(day, closes, IST)


def test_bse_shares_nse_special_sessions() -> None:
    assert get_calendar("BSE").is_session(date(2023, 11, 12))


def test_muhurat_session_is_open_only_in_its_evening_hour(nse: ExchangeCalendar) -> None:
    day = date(2023, 11, 12)
    assert nse.is_open(ist(day, 18, 30))
    assert not nse.is_open(ist(day, 10, 0))
    assert not nse.is_open(ist(day, 19, 15))  # close is exclusive


def test_dr_drill_saturday_is_closed_during_the_site_switch(nse: ExchangeCalendar) -> None:
    day = date(2024, 3, 2)
    assert nse.is_open(ist(day, 9, 30))
    assert not nse.is_open(ist(day, 10, 30))
    assert nse.is_open(ist(day, 11, 45))
    assert not nse.is_open(ist(day, 12, 30))


def test_is_open_excludes_the_closing_instant_and_holidays(nse: ExchangeCalendar) -> None:
    day = date(2024, 1, 2)
    assert nse.is_open(ist(day, 9, 15))
    assert nse.is_open(ist(day, 15, 29))
    assert not nse.is_open(ist(day, 15, 30))
    assert not nse.is_open(ist(date(2024, 1, 26), 11, 0))


def test_naive_timestamps_are_refused(nse: ExchangeCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        nse.is_open(datetime(2024, 1, 2, 10, 0))


def test_session_for_uses_the_exchange_local_date(nse: ExchangeCalendar) -> None:
    # 2024-01-02 20:00 UTC is already 2024-01-03 01:30 in Mumbai.
    session = nse.session_for(datetime(2024, 1, 2, 20, 0, tzinfo=UTC))
    assert session is not None
    assert session.date == date(2024, 1, 3)
    assert nse.session_for(ist(date(2024, 1, 6), 10, 0)) is None


def test_next_open_skips_weekend_and_previous_close_is_strictly_before(
    nse: ExchangeCalendar,
) -> None:
    friday_evening = ist(date(2024, 1, 5), 16, 0)
    assert nse.next_open(friday_evening) == ist(date(2024, 1, 8), 9, 15)
    assert nse.previous_close(friday_evening) == ist(date(2024, 1, 5), 15, 30)
    assert nse.previous_close(ist(date(2024, 1, 5), 15, 30)) == ist(date(2024, 1, 4), 15, 30)
    assert nse.next_open(ist(date(2024, 1, 8), 9, 15)) == ist(date(2024, 1, 9), 9, 15)


def test_next_open_finds_a_sunday_muhurat_session(nse: ExchangeCalendar) -> None:
    assert nse.next_open(ist(date(2023, 11, 10), 16, 0)) == ist(date(2023, 11, 12), 18, 15)


def test_sessions_in_range_is_inclusive_and_ordered(nse: ExchangeCalendar) -> None:
    sessions = nse.sessions_in_range(date(2024, 1, 15), date(2024, 1, 23))
    days = [s.date for s in sessions]
    assert days == sorted(days)
    assert days[0] == date(2024, 1, 15)
    assert date(2024, 1, 20) in days  # the special Saturday
    assert date(2024, 1, 22) not in days
    assert days[-1] == date(2024, 1, 23)


def test_dates_outside_the_calendar_raise(nse: ExchangeCalendar) -> None:
    with pytest.raises(CalendarRangeError):
        nse.is_session(nse.last_session + timedelta(days=400))


def test_nyse_uses_new_york_time_and_its_early_closes() -> None:
    nyse = get_calendar("NYSE")
    session = nyse.session(date(2024, 7, 3))  # early close before Independence Day
    assert session is not None
    assert session.close.astimezone(ZoneInfo("America/New_York")).time() == time(13, 0)
    assert not nyse.is_session(date(2024, 7, 4))


def test_locate_maps_instants_to_sessions_vectorised(nse: ExchangeCalendar) -> None:
    instants = pd.DatetimeIndex(
        [ist(date(2024, 3, 2), 9, 20), ist(date(2024, 3, 3), 9, 20), ist(date(2024, 3, 4), 9, 20)]
    )
    found = nse.locate(instants)
    dates = nse.session_arrays()["date"]
    assert str(dates[found[0]]) == "2024-03-02"
    assert found[1] == -1
    assert str(dates[found[2]]) == "2024-03-04"


def test_exchange_of_requires_exchange_prefix() -> None:
    assert exchange_of("nse:INFY") == "NSE"
    with pytest.raises(ValueError, match="EXCHANGE:SYMBOL"):
        exchange_of("INFY")
