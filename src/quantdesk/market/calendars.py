"""Exchange trading calendars (NSE, BSE, NYSE): sessions, holidays and open/close times.

Regular sessions and holidays come from the maintained ``exchange_calendars`` library. It has
no NSE calendar, so NSE is built from BSE's (XBOM): the two exchanges share the equity holiday
list and hours (09:15-15:30 Asia/Kolkata). ``exchange_calendars`` does not know India's special
sessions (Muhurat trading on Diwali, budget-day Saturdays, the 2024 disaster-recovery drills,
the 2021-02-24 outage), so they are kept here as data and merged on top.

All instants in and out of this module are timezone-aware UTC; the exchange time zone is used
only to turn local wall-clock times and dates into instants.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import numpy as np
import pandas as pd

__all__ = [
    "INDIA_SPECIAL_SESSIONS",
    "CalendarRangeError",
    "ExchangeCalendar",
    "Session",
    "SpecialSession",
    "available_calendars",
    "exchange_of",
    "get_calendar",
]


class CalendarRangeError(ValueError):
    """Raised when a date lies outside the range the calendar knows about."""

    code = "CALENDAR_OUT_OF_RANGE"


@dataclass(frozen=True, slots=True)
class SpecialSession:
    """A session the upstream library does not know, in exchange-local wall-clock times."""

    date: date
    open: time
    close: time
    reason: str
    break_start: time | None = None
    break_end: time | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """One trading session. Instants are UTC; ``date`` is the exchange-local session date."""

    date: date
    open: datetime
    close: datetime
    break_start: datetime | None = None
    break_end: datetime | None = None
    reason: str | None = None

    def contains(self, ts: datetime) -> bool:
        """True if the market is trading at ``ts``: [open, close) minus [break_start, break_end)."""
        if not (self.open <= ts < self.close):
            return False
        if self.break_start is not None and self.break_end is not None:
            return not (self.break_start <= ts < self.break_end)
        return True


# Sessions on days XBOM lists as holidays (or with other hours), for both NSE and BSE equities.
# Sources: NSE/BSE circulars for each event. Times are the normal-market window (pre-open
# excluded). Muhurat times 2021-11-04 and the 2021-02-24 restart agree with the shared 1-minute
# index data.
INDIA_SPECIAL_SESSIONS: tuple[SpecialSession, ...] = (
    SpecialSession(date(2015, 2, 28), time(9, 15), time(15, 30), "Union budget (Saturday)"),
    SpecialSession(date(2017, 10, 19), time(18, 30), time(19, 30), "Muhurat trading"),
    SpecialSession(date(2018, 11, 7), time(17, 30), time(18, 30), "Muhurat trading"),
    SpecialSession(date(2019, 10, 27), time(18, 15), time(19, 15), "Muhurat trading"),
    SpecialSession(date(2020, 2, 1), time(9, 15), time(15, 30), "Union budget (Saturday)"),
    SpecialSession(date(2020, 11, 14), time(18, 15), time(19, 15), "Muhurat trading"),
    SpecialSession(
        date(2021, 2, 24),
        time(9, 15),
        time(17, 0),
        "Outage: halted 11:40, resumed 15:45, extended to 17:00",
        break_start=time(11, 40),
        break_end=time(15, 45),
    ),
    SpecialSession(date(2021, 11, 4), time(18, 15), time(19, 15), "Muhurat trading"),
    SpecialSession(date(2022, 10, 24), time(18, 15), time(19, 15), "Muhurat trading"),
    SpecialSession(date(2023, 11, 12), time(18, 15), time(19, 15), "Muhurat trading"),
    SpecialSession(
        date(2024, 1, 20), time(9, 15), time(15, 30), "Saturday full session (22 Jan holiday)"
    ),
    SpecialSession(
        date(2024, 3, 2),
        time(9, 15),
        time(12, 30),
        "Saturday live session with DR-site switch",
        break_start=time(10, 0),
        break_end=time(11, 30),
    ),
    SpecialSession(
        date(2024, 5, 18),
        time(9, 15),
        time(12, 30),
        "Saturday live session with DR-site switch",
        break_start=time(10, 0),
        break_end=time(11, 30),
    ),
    SpecialSession(date(2024, 11, 1), time(18, 0), time(19, 0), "Muhurat trading"),
    SpecialSession(date(2025, 2, 1), time(9, 15), time(15, 30), "Union budget (Saturday)"),
    SpecialSession(date(2025, 10, 21), time(13, 45), time(14, 45), "Muhurat trading"),
)

# Our exchange code -> (exchange_calendars code, special sessions overlay).
_SOURCES: dict[str, tuple[str, Sequence[SpecialSession]]] = {
    "NSE": ("XBOM", INDIA_SPECIAL_SESSIONS),
    "BSE": ("XBOM", INDIA_SPECIAL_SESSIONS),
    "NYSE": ("XNYS", ()),
}
_ALIASES = {"XNSE": "NSE", "XBOM": "BSE", "XNYS": "NYSE"}


def available_calendars() -> list[str]:
    """Exchange codes accepted by :func:`get_calendar`."""
    return sorted(_SOURCES)


def exchange_of(symbol: str) -> str:
    """The exchange part of an ``EXCHANGE:SYMBOL`` instrument name (``NSE:INFY`` -> ``NSE``)."""
    exchange, sep, ticker = symbol.partition(":")
    if not sep or not exchange or not ticker:
        raise ValueError(f"instrument must be EXCHANGE:SYMBOL, got {symbol!r}")
    return exchange.upper()


def get_calendar(name: str) -> ExchangeCalendar:
    """The calendar of an exchange (``NSE``, ``BSE``, ``NYSE``); built once, then cached."""
    key = _ALIASES.get(name.upper(), name.upper())
    if key not in _SOURCES:
        raise ValueError(f"unknown exchange calendar {name!r}; known: {available_calendars()}")
    return _build_calendar(key)


@functools.cache
def _build_calendar(key: str) -> ExchangeCalendar:
    code, specials = _SOURCES[key]
    with warnings.catch_warnings():
        # exchange_calendars trips pandas deprecation warnings on construction; not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        upstream = xcals.get_calendar(code)
    return ExchangeCalendar(key, upstream, specials)


def _require_aware(ts: datetime) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp must be timezone-aware, got naive {ts!r}")
    return ts.astimezone(UTC)


def _utc_schedule(frame: pd.DataFrame) -> pd.DataFrame:
    """Schedule columns as datetime64[ns, UTC] and a naive datetime64[ns] date index, whatever
    resolution or tz-awareness the source used (breaks are all-NaT and naive in XBOM)."""
    out = frame.copy()
    for column in ("open", "break_start", "break_end", "close"):
        values = pd.to_datetime(out[column])
        if values.dt.tz is None:
            values = values.dt.tz_localize("UTC")
        out[column] = values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    out.index = pd.DatetimeIndex(out.index).tz_localize(None).astype("datetime64[ns]")
    return out


def _from_ns(ns: int) -> datetime:
    """UTC datetime from epoch nanoseconds (sub-microsecond part dropped)."""
    seconds, rest = divmod(ns, 10**9)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest // 1000)


def _to_utc_ns(values: pd.Series) -> np.ndarray:
    """UTC epoch nanoseconds; NaT becomes int64 min (compares below every real instant)."""
    return np.array(values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").array.asi8)


class ExchangeCalendar:
    """Sessions of one exchange: the upstream schedule with the special-session overlay merged.

    The whole schedule is materialised once as sorted numpy arrays so that scalar look-ups are
    a binary search and vectorised look-ups (validating a year of bars) stay in numpy.
    """

    def __init__(
        self,
        name: str,
        upstream: xcals.ExchangeCalendar,
        specials: Sequence[SpecialSession] = (),
    ) -> None:
        self.name = name
        self.tz = ZoneInfo(str(upstream.tz))
        frame = self._merge(_utc_schedule(upstream.schedule), specials)
        self._frame = frame
        self._dates: np.ndarray = frame.index.values.astype("datetime64[D]")
        self._open_ns = _to_utc_ns(frame["open"])
        self._close_ns = _to_utc_ns(frame["close"])
        self._break_start_ns = _to_utc_ns(frame["break_start"])
        self._break_end_ns = _to_utc_ns(frame["break_end"])

    def _merge(self, schedule: pd.DataFrame, specials: Sequence[SpecialSession]) -> pd.DataFrame:
        """The upstream schedule with special sessions added or replacing a day's hours."""
        schedule = schedule.assign(reason=None)
        if not specials:
            return schedule

        def at(d: date, t: time | None) -> pd.Timestamp:
            if t is None:
                return pd.NaT
            return pd.Timestamp(datetime.combine(d, t, self.tz)).tz_convert("UTC")

        overlay = pd.DataFrame(
            {
                "open": [at(s.date, s.open) for s in specials],
                "break_start": [at(s.date, s.break_start) for s in specials],
                "break_end": [at(s.date, s.break_end) for s in specials],
                "close": [at(s.date, s.close) for s in specials],
                "reason": [s.reason for s in specials],
            },
            index=pd.DatetimeIndex([pd.Timestamp(s.date) for s in specials]),
        )
        overlay = _utc_schedule(overlay)
        kept = schedule[~schedule.index.isin(overlay.index)]
        return pd.concat([kept, overlay]).sort_index()

    def __repr__(self) -> str:
        return f"ExchangeCalendar({self.name!r}, {self.first_session}..{self.last_session})"

    # -- range -------------------------------------------------------------------------------

    @property
    def first_session(self) -> date:
        return self._date_at(0)

    @property
    def last_session(self) -> date:
        return self._date_at(len(self._dates) - 1)

    def _check_range(self, d: date) -> None:
        if not (self.first_session <= d <= self.last_session):
            raise CalendarRangeError(
                f"{d} is outside the {self.name} calendar "
                f"({self.first_session}..{self.last_session})"
            )

    # -- sessions by date ----------------------------------------------------------------------

    def _date_at(self, i: int) -> date:
        return date.fromisoformat(str(self._dates[i]))

    def _index_of(self, d: date) -> int | None:
        key = np.datetime64(d, "D")
        i = int(np.searchsorted(self._dates, key))
        if i < len(self._dates) and self._dates[i] == key:
            return i
        return None

    def _session_at(self, i: int) -> Session:
        def instant(ns: np.ndarray) -> datetime | None:
            value = int(ns[i])
            if value == np.iinfo(np.int64).min:
                return None
            return _from_ns(value)

        opened, closed = instant(self._open_ns), instant(self._close_ns)
        assert opened is not None
        assert closed is not None
        reason = self._frame["reason"].iat[i]
        return Session(
            date=self._date_at(i),
            open=opened,
            close=closed,
            break_start=instant(self._break_start_ns),
            break_end=instant(self._break_end_ns),
            reason=reason if isinstance(reason, str) else None,
        )

    def is_session(self, d: date) -> bool:
        """True if the exchange trades on local date ``d`` (special sessions included)."""
        self._check_range(d)
        return self._index_of(d) is not None

    def session(self, d: date) -> Session | None:
        """The session on local date ``d``, or None on a holiday or weekend."""
        self._check_range(d)
        i = self._index_of(d)
        return None if i is None else self._session_at(i)

    def sessions_in_range(self, start: date, end: date) -> list[Session]:
        """Sessions with start <= date <= end (inclusive, local dates)."""
        lo, hi = self._slice(start, end)
        return [self._session_at(i) for i in range(lo, hi)]

    def _slice(self, start: date, end: date) -> tuple[int, int]:
        lo = int(np.searchsorted(self._dates, np.datetime64(start, "D"), side="left"))
        hi = int(np.searchsorted(self._dates, np.datetime64(end, "D"), side="right"))
        return lo, hi

    def sessions_frame(self, start: date, end: date) -> pd.DataFrame:
        """Sessions in [start, end] as a DataFrame: session (date), open, close, break_start,
        break_end (UTC) and reason. Meant for joins in SQL or pandas."""
        lo, hi = self._slice(start, end)
        frame = self._frame.iloc[lo:hi]
        out = frame[["open", "close", "break_start", "break_end", "reason"]].copy()
        out.insert(0, "session", frame.index.date)
        return out.reset_index(drop=True)

    def holidays(self, start: date, end: date) -> list[date]:
        """Weekdays in [start, end] on which the exchange does not trade."""
        days = pd.bdate_range(start, end)
        sessions = set(self._dates[slice(*self._slice(start, end))].tolist())
        return [d.date() for d in days if d.date() not in sessions]

    # -- sessions by instant -------------------------------------------------------------------

    def local_date(self, ts: datetime) -> date:
        """The exchange-local calendar date of an instant."""
        return _require_aware(ts).astimezone(self.tz).date()

    def session_for(self, ts: datetime) -> Session | None:
        """The session on the exchange-local date of ``ts`` (trading or not at that instant),
        or None if that date is not a session."""
        return self.session(self.local_date(ts))

    def is_open(self, ts: datetime) -> bool:
        """True if the market is in its continuous session at ``ts`` (close is exclusive)."""
        found = self.session_for(ts)
        return found is not None and found.contains(_require_aware(ts))

    def next_open(self, ts: datetime) -> datetime:
        """The first session open strictly after ``ts``."""
        value = pd.Timestamp(_require_aware(ts)).value
        i = int(np.searchsorted(self._open_ns, value, side="right"))
        if i >= len(self._open_ns):
            raise CalendarRangeError(f"no {self.name} session opens after {ts}")
        return _from_ns(int(self._open_ns[i]))

    def previous_close(self, ts: datetime) -> datetime:
        """The last session close strictly before ``ts``."""
        value = pd.Timestamp(_require_aware(ts)).value
        i = int(np.searchsorted(self._close_ns, value, side="left")) - 1
        if i < 0:
            raise CalendarRangeError(f"no {self.name} session closes before {ts}")
        return _from_ns(int(self._close_ns[i]))

    # -- vectorised helpers (ingest validation, synthetic data) --------------------------------

    def locate(self, instants: pd.DatetimeIndex) -> np.ndarray:
        """Session index for each tz-aware instant, by exchange-local date; -1 where that date
        is not a session. Indexes refer to :meth:`session_arrays`."""
        local = instants.tz_convert(self.tz).tz_localize(None).values.astype("datetime64[D]")
        idx = np.searchsorted(self._dates, local)
        clipped = np.minimum(idx, len(self._dates) - 1)
        found = (idx < len(self._dates)) & (self._dates[clipped] == local)
        return np.where(found, clipped, -1)

    def session_arrays(self) -> dict[str, np.ndarray]:
        """The whole schedule as arrays: date (datetime64[D]), open/close/break_start/break_end
        (UTC epoch ns; breaks are int64 min where there is no break)."""
        return {
            "date": self._dates,
            "open": self._open_ns,
            "close": self._close_ns,
            "break_start": self._break_start_ns,
            "break_end": self._break_end_ns,
        }
