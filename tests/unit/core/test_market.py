"""Quotes, bars and tick rounding in the pure core."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantdesk.core.market import (
    Bar,
    Quote,
    bar_path,
    is_on_tick,
    quote_channel,
    quotes_from_bar,
    round_to_tick,
)

T0 = datetime(2024, 1, 2, 3, 45, tzinfo=UTC)
IST = timezone(timedelta(hours=5, minutes=30))

ticks = st.sampled_from([Decimal(t) for t in ("0.01", "0.05", "0.1", "0.25", "1", "5", "0.0025")])
prices = st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False, allow_infinity=False)


def quote(**overrides: object) -> Quote:
    values: dict[str, object] = {
        "symbol": "NSE:INFY",
        "last": Decimal("1500.05"),
        "bid": Decimal("1500.00"),
        "ask": Decimal("1500.10"),
        "volume": 1200,
        "ts": T0,
    }
    values.update(overrides)
    return Quote(**values)  # type: ignore[arg-type]


@given(price=prices, tick=ticks)
def test_rounded_price_is_on_tick_and_within_half_a_tick(price: Decimal, tick: Decimal) -> None:
    rounded = round_to_tick(price, tick)
    assert is_on_tick(rounded, tick)
    assert abs(rounded - price) <= tick / 2


@given(price=prices, tick=ticks)
def test_rounding_down_and_up_bracket_the_price(price: Decimal, tick: Decimal) -> None:
    down, up = round_to_tick(price, tick, "down"), round_to_tick(price, tick, "up")
    assert down <= price <= up
    assert up - down in (0, tick)
    assert is_on_tick(down, tick)
    assert is_on_tick(up, tick)


@given(price=prices, tick=ticks)
def test_rounding_a_price_already_on_tick_changes_nothing(price: Decimal, tick: Decimal) -> None:
    once = round_to_tick(price, tick)
    assert round_to_tick(once, tick) == once


def test_rounding_to_nearest_goes_half_up_and_keeps_the_ticks_precision() -> None:
    assert str(round_to_tick(Decimal("100.025"), Decimal("0.05"))) == "100.05"
    assert str(round_to_tick(Decimal("100.02"), Decimal("0.05"))) == "100.00"
    assert str(round_to_tick(Decimal("101"), Decimal("0.05"))) == "101.00"
    assert str(round_to_tick(Decimal("1234.4"), Decimal("5"))) == "1235"


@pytest.mark.parametrize("tick", [Decimal(0), Decimal("-0.05"), Decimal("NaN")])
def test_tick_size_must_be_positive(tick: Decimal) -> None:
    with pytest.raises(ValueError, match="tick size"):
        round_to_tick(Decimal(1), tick)


def test_off_tick_price_is_detected() -> None:
    assert not is_on_tick(Decimal("100.03"), Decimal("0.05"))
    assert is_on_tick(Decimal("100.10"), Decimal("0.05"))


quotes = st.builds(
    Quote,
    symbol=st.from_regex(r"\A(NSE|BSE|NASDAQ):[A-Z0-9&-]{1,12}\Z"),
    last=prices,
    bid=prices,
    ask=prices,
    volume=st.integers(min_value=0, max_value=10**12),
    ts=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)


@given(q=quotes)
def test_quote_survives_a_json_round_trip(q: Quote) -> None:
    wire = json.loads(json.dumps(q.to_json()))
    assert Quote.from_json(wire) == q


def test_quote_json_has_decimal_strings_and_iso_utc_time() -> None:
    assert quote(ts=T0.astimezone(IST)).to_json() == {
        "symbol": "NSE:INFY",
        "last": "1500.05",
        "bid": "1500.00",
        "ask": "1500.10",
        "volume": 1200,
        "ts": "2024-01-02T03:45:00+00:00",
    }


def test_quote_time_is_normalised_to_utc() -> None:
    assert quote(ts=T0.astimezone(IST)).ts.tzinfo is UTC


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ts", datetime(2024, 1, 2, 9, 15)),
        ("symbol", "INFY"),
        ("symbol", ":INFY"),
        ("last", 1500.05),
        ("bid", Decimal("-1")),
        ("ask", Decimal("Infinity")),
        ("volume", -1),
        ("volume", 1.5),
    ],
)
def test_quote_refuses_bad_values(field: str, value: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        quote(**{field: value})


def test_quote_from_json_refuses_float_prices() -> None:
    wire = quote().to_json() | {"last": 1500.05}
    with pytest.raises(TypeError):
        Quote.from_json(wire)


def test_quote_channel_is_named_after_the_symbol() -> None:
    assert quote_channel("NSE:INFY") == "quotes:NSE:INFY"


def bar(o: str, h: str, lo: str, c: str, volume: int = 1000, ts: datetime = T0) -> Bar:
    return Bar(ts, "NSE:INFY", Decimal(o), Decimal(h), Decimal(lo), Decimal(c), volume)


def test_up_bar_visits_the_low_before_the_high() -> None:
    assert bar_path(bar("100", "105", "99", "104")) == tuple(
        Decimal(p) for p in ("100", "99", "105", "104")
    )


def test_down_bar_visits_the_high_before_the_low() -> None:
    assert bar_path(bar("104", "105", "99", "100")) == tuple(
        Decimal(p) for p in ("104", "105", "99", "100")
    )


def test_bar_with_inconsistent_prices_is_refused() -> None:
    with pytest.raises(ValueError, match="inconsistent"):
        bar("100", "99", "98", "100")


def test_quotes_from_a_bar_spread_over_its_interval_and_add_its_volume() -> None:
    qs = quotes_from_bar(
        bar("100", "105", "99", "104", volume=1001),
        tick=Decimal("0.05"),
        interval=timedelta(minutes=1),
        session_volume=5000,
    )
    assert [q.last for q in qs] == [Decimal(p) for p in ("100", "99", "105", "104")]
    assert [q.ts - T0 for q in qs] == [timedelta(seconds=s) for s in (0, 15, 30, 45)]
    assert [q.volume for q in qs] == [5250, 5500, 5750, 6001]
    assert all(q.bid == q.last - Decimal("0.05") and q.ask == q.last + Decimal("0.05") for q in qs)


def test_quotes_from_a_bar_are_on_tick_even_when_the_bar_is_not() -> None:
    qs = quotes_from_bar(
        bar("100.02", "100.12", "99.96", "100.07"), tick=Decimal("0.05"), interval=timedelta(0)
    )
    assert all(is_on_tick(p, Decimal("0.05")) for q in qs for p in (q.last, q.bid, q.ask))
