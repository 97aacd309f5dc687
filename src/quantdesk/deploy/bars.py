"""Bars for deployed strategies: one-minute bars from the feed, grouped into the strategy's
interval exactly as the backtester's candles are (buckets anchored at each session's open; a
daily bar is one session), and one-minute bars built from quotes for feeds that have no bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from quantdesk.core.market import Bar, Quote
from quantdesk.market.calendars import CalendarRangeError, ExchangeCalendar

from .live import LiveBar

__all__ = ["STEP", "IntervalBars", "QuoteBars"]

STEP = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600}


@dataclass
class _Open:
    key: datetime
    end: datetime
    time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int


class IntervalBars:
    """Groups one symbol's one-minute bars into ``interval`` bars; :meth:`add` returns the bar
    that the given one-minute bar completes."""

    def __init__(self, symbol: str, interval: str, calendar: ExchangeCalendar) -> None:
        if interval not in STEP and interval != "1d":
            raise ValueError(f"interval must be one of {', '.join([*STEP, '1d'])}")
        self.symbol = symbol
        self.interval = interval
        self.calendar = calendar
        self.current: _Open | None = None

    def _bounds(self, ts: datetime) -> tuple[datetime, datetime, datetime]:
        """(bucket key, bucket end, session close) of a bar starting at ``ts``."""
        try:
            session = self.calendar.session_for(ts)
        except CalendarRangeError:
            session = None
        if session is None:  # an always-open demo session: anchor at local midnight
            local = ts.astimezone(self.calendar.tz)
            opened = datetime.combine(local.date(), time(0), self.calendar.tz).astimezone(UTC)
            closes = opened + timedelta(days=1)
        else:
            opened, closes = session.open, session.close
        if self.interval == "1d":
            return opened, closes, closes
        step = timedelta(seconds=STEP[self.interval])
        key = opened + (ts - opened) // step * step
        return key, min(key + step, closes), closes

    def add(self, bar: Bar, end: datetime | None = None) -> list[LiveBar]:
        """Closed bars after ``bar`` (usually none or one; two after a gap in the data)."""
        key, bucket_end, _ = self._bounds(bar.ts)
        bar_end = end or bar.ts + timedelta(minutes=1)
        out: list[LiveBar] = []
        cur = self.current
        if cur is not None and cur.key != key:
            out.append(self._emit(cur))  # a bucket left before its end (a gap in the data)
            cur = None
        if cur is None:
            cur = _Open(key, bucket_end, key, bar.open, bar.high, bar.low, bar.close, bar.volume)
        else:
            cur.high = max(cur.high, bar.high)
            cur.low = min(cur.low, bar.low)
            cur.close = bar.close
            cur.volume += bar.volume
        if bar_end >= cur.end:
            out.append(self._emit(cur))
            cur = None
        self.current = cur
        return out

    def _emit(self, cur: _Open) -> LiveBar:
        return LiveBar(
            self.symbol,
            cur.time,
            cur.end,
            float(cur.open),
            float(cur.high),
            float(cur.low),
            float(cur.close),
            float(cur.volume),
        )


class QuoteBars:
    """One-minute bars of one symbol built from its quotes (last price; volume from the
    cumulative session volume). A minute closes when a quote of a later minute arrives or when
    :meth:`flush` is called after the minute ended."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.minute: datetime | None = None
        self.bar: list[Decimal] = []
        self.volume0 = 0
        self.volume = 0

    def add(self, quote: Quote) -> Bar | None:
        minute = quote.ts.replace(second=0, microsecond=0)
        done = None
        if self.minute is not None and minute > self.minute:
            done = self.flush()
        if self.minute is None:
            self.minute = minute
            self.bar = [quote.last] * 4
            self.volume0 = self.volume = quote.volume
        else:
            o, h, lo, _ = self.bar
            self.bar = [o, max(h, quote.last), min(lo, quote.last), quote.last]
            self.volume = quote.volume
        return done

    def flush(self, now: datetime | None = None) -> Bar | None:
        """The open minute as a bar (if it ended before ``now``, when given)."""
        if self.minute is None:
            return None
        if now is not None and now < self.minute + timedelta(minutes=1):
            return None
        o, h, lo, c = self.bar
        bar = Bar(self.minute, self.symbol, o, h, lo, c, max(self.volume - self.volume0, 0))
        self.minute = None
        return bar
