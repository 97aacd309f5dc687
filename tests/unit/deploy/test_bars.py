"""Bars for deployed strategies: one-minute bars grouped like the backtester's candles, and
one-minute bars built from quotes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from quantdesk.core.market import Bar, Quote
from quantdesk.deploy.bars import IntervalBars, QuoteBars
from quantdesk.market.calendars import get_calendar

SYM = "NSE:INFY"
OPEN = datetime(2025, 6, 2, 3, 45, tzinfo=UTC)  # 09:15 IST, a Monday session


def minute(k: int, price: float, volume: int = 10) -> Bar:
    p = Decimal(str(price))
    return Bar(OPEN + timedelta(minutes=k), SYM, p, p + 1, p - 1, p, volume)


def test_five_minute_bars_are_anchored_at_the_session_open() -> None:
    agg = IntervalBars(SYM, "5m", get_calendar("NSE"))
    out = []
    for k in range(12):
        out += agg.add(minute(k, 100 + k))
    assert [b.time for b in out] == [OPEN, OPEN + timedelta(minutes=5)]
    first = out[0]
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        100.0,
        105.0,
        99.0,
        104.0,
        50.0,
    )
    assert first.end == OPEN + timedelta(minutes=5)
    assert agg.current is not None  # 10..11 still open


def test_a_gap_closes_the_unfinished_bucket_first() -> None:
    agg = IntervalBars(SYM, "5m", get_calendar("NSE"))
    assert agg.add(minute(0, 100)) == []
    out = agg.add(minute(7, 107))  # minutes 1..6 missing
    assert [b.time for b in out] == [OPEN]
    assert out[0].close == 100.0


def test_daily_bars_close_at_the_session_close() -> None:
    agg = IntervalBars(SYM, "1d", get_calendar("NSE"))
    closes = [agg.add(minute(k, 100 + k)) for k in range(375)]
    assert all(c == [] for c in closes[:-1])
    (day,) = closes[-1]
    assert day.open == 100.0 and day.close == 474.0 and day.volume == 3750.0
    assert day.end == OPEN + timedelta(minutes=375)


def test_unknown_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        IntervalBars(SYM, "2m", get_calendar("NSE"))


def q(seconds: int, last: str, volume: int) -> Quote:
    p = Decimal(last)
    return Quote(SYM, p, p, p, volume, OPEN + timedelta(seconds=seconds))


def test_quotes_make_one_minute_bars() -> None:
    qb = QuoteBars(SYM)
    assert qb.add(q(0, "100", 1000)) is None
    assert qb.add(q(20, "103", 1100)) is None
    assert qb.add(q(40, "99", 1300)) is None
    bar = qb.add(q(61, "101", 1400))  # the next minute closes the first
    assert bar is not None
    assert (bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        OPEN,
        Decimal(100),
        Decimal(103),
        Decimal(99),
        Decimal(99),
        300,
    )
    assert qb.flush(OPEN + timedelta(seconds=90)) is None  # the minute is not over
    late = qb.flush(OPEN + timedelta(seconds=121))
    assert late is not None and late.close == Decimal(101)
