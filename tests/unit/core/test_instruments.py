"""Instrument references, ISIN check digits and the tick/lot/band rules of the pure core."""

from __future__ import annotations

import string
from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from quantdesk.core.instruments import (
    InstrumentRef,
    InstrumentSpec,
    InvalidInstrumentRef,
    is_valid_isin,
)

ticks = st.sampled_from([Decimal(t) for t in ("0.01", "0.05", "0.1", "0.5", "1", "5", "0.0025")])
prices = st.decimals(min_value="0.01", max_value=10**7, places=4)
lots = st.integers(min_value=1, max_value=5000)
bands = st.sampled_from([Decimal(b) for b in ("2", "5", "10", "20", "0.5", "100")])
exchanges = st.from_regex(r"[A-Z][A-Z0-9_]{1,15}", fullmatch=True)
symbol_words = st.from_regex(r"[A-Z0-9][A-Z0-9&._-]{0,10}", fullmatch=True)
symbols = st.lists(symbol_words, min_size=1, max_size=3).map(" ".join)


# --- InstrumentRef ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "exchange", "symbol"),
    [
        ("NSE:INFY", "NSE", "INFY"),
        ("nse:infy", "NSE", "INFY"),
        ("  NSE:M&M ", "NSE", "M&M"),
        ("NSE:BAJAJ-AUTO", "NSE", "BAJAJ-AUTO"),
        ("NSE:NIFTY 50", "NSE", "NIFTY 50"),
        ("BSE:500325", "BSE", "500325"),
        ("NYSE:BRK.B", "NYSE", "BRK.B"),
    ],
)
def test_parse_accepts_real_symbols_and_folds_case(text: str, exchange: str, symbol: str) -> None:
    ref = InstrumentRef.parse(text)
    assert (ref.exchange, ref.symbol) == (exchange, symbol)
    assert str(ref) == f"{exchange}:{symbol}"


@pytest.mark.parametrize(
    "text",
    [
        "INFY",
        "NSE:",
        ":INFY",
        "NSE:NIFTY  50",
        "NSE:INFY:X",
        "N:INFY",
        "1NSE:INFY",
        "NSE:IN/FY",
        "NSE:-INFY",
        "NSE:" + "A" * 49,
        "NSE:ÏNFY",
    ],
)
def test_parse_rejects_malformed_references(text: str) -> None:
    with pytest.raises(InvalidInstrumentRef):
        InstrumentRef.parse(text)


def test_the_constructor_refuses_lower_case_instead_of_silently_folding() -> None:
    with pytest.raises(InvalidInstrumentRef):
        InstrumentRef("nse", "INFY")
    assert InstrumentRef.of("nse", " infy ") == InstrumentRef("NSE", "INFY")


@given(exchange=exchanges, symbol=symbols)
def test_format_then_parse_is_the_identity(exchange: str, symbol: str) -> None:
    assume(len(symbol) <= 48)
    ref = InstrumentRef(exchange, symbol)
    assert InstrumentRef.parse(str(ref)) == ref
    assert InstrumentRef.parse(str(ref).lower()) == ref


@given(text=st.text(max_size=60))
def test_parse_either_round_trips_or_raises_invalid_ref(text: str) -> None:
    try:
        ref = InstrumentRef.parse(text)
    except InvalidInstrumentRef:
        return
    assert InstrumentRef.parse(str(ref)) == ref
    assert str(ref) == str(ref).upper()


# --- ISIN -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "isin", ["INE002A01018", "INE237A01036", "INE296A01032", "US0378331005", "INE155A01022"]
)
def test_real_isins_pass_the_check_digit(isin: str) -> None:
    assert is_valid_isin(isin)


@given(isin=st.sampled_from(["INE002A01018", "INE237A01036", "INE009A01021"]), data=st.data())
def test_any_single_digit_typo_fails_the_check(isin: str, data: st.DataObject) -> None:
    pos = data.draw(st.integers(min_value=2, max_value=11))
    assume(isin[pos].isdigit())
    wrong = data.draw(st.sampled_from([d for d in string.digits if d != isin[pos]]))
    assert not is_valid_isin(isin[:pos] + wrong + isin[pos + 1 :])


@pytest.mark.parametrize(
    "isin", ["", "INE002A0101", "ine002a01018", "INE002A0101X", "1NE002A01018"]
)
def test_malformed_isins_are_refused(isin: str) -> None:
    assert not is_valid_isin(isin)


# --- InstrumentSpec ---------------------------------------------------------------------------


@given(price=prices, tick=ticks, lot=lots)
def test_rounded_prices_are_on_tick(price: Decimal, tick: Decimal, lot: int) -> None:
    spec = InstrumentSpec(tick, lot)
    for mode in ("nearest", "down", "up"):
        assert spec.is_on_tick(spec.round_to_tick(price, mode))  # type: ignore[arg-type]
    assert spec.round_to_tick(price, "down") <= price <= spec.round_to_tick(price, "up")


@given(steps=st.integers(min_value=-(10**6), max_value=10**6), tick=ticks)
def test_whole_multiples_of_the_tick_are_on_tick(steps: int, tick: Decimal) -> None:
    spec = InstrumentSpec(tick)
    assert spec.is_on_tick(steps * tick)
    assert not spec.is_on_tick(steps * tick + tick / 2)


def test_nse_examples() -> None:
    spec = InstrumentSpec(Decimal("0.05"), 1, Decimal(20))
    assert spec.is_on_tick(Decimal("1500.05"))
    assert not spec.is_on_tick(Decimal("1500.03"))
    assert spec.round_to_tick(Decimal("1500.03")) == Decimal("1500.05")
    assert spec.round_to_tick(Decimal("1500.025")) == Decimal("1500.05")  # half up
    assert spec.round_to_tick(Decimal("1500.07"), "down") == Decimal("1500.05")
    assert spec.price_band(Decimal("1500")) == (Decimal("1200.00"), Decimal("1800.00"))


@given(qty=st.integers(min_value=-(10**6), max_value=10**6), lot=lots)
def test_valid_quantities_are_positive_whole_lots(qty: int, lot: int) -> None:
    spec = InstrumentSpec(Decimal("0.05"), lot)
    assert spec.is_valid_quantity(qty) == (qty > 0 and qty % lot == 0)


@pytest.mark.parametrize("qty", [True, 1.0, Decimal(1), "1", None])
def test_only_ints_are_quantities(qty: object) -> None:
    assert not InstrumentSpec(Decimal("0.05")).is_valid_quantity(qty)  # type: ignore[arg-type]


@given(reference=prices, tick=ticks, band=bands)
def test_the_band_is_on_tick_inside_the_percentage_and_holds_the_reference(
    reference: Decimal, tick: Decimal, band: Decimal
) -> None:
    spec = InstrumentSpec(tick, 1, band)
    limits = spec.price_band(reference)
    assert limits is not None
    low, high = limits
    ref = max(spec.round_to_tick(reference), tick)
    assert spec.is_on_tick(low) and spec.is_on_tick(high)
    assert tick <= low <= ref <= high
    assert high <= ref * (1 + band / 100)
    assert low >= ref * (1 - band / 100) or low == tick
    # The limits are the widest on-tick prices inside the band.
    assert high + tick > ref * (1 + band / 100)
    assert low == tick or low - tick < ref * (1 - band / 100)
    assert spec.is_within_band(low, reference) and spec.is_within_band(high, reference)
    assert not spec.is_within_band(high + tick, reference)


@given(price=prices, reference=prices)
def test_no_band_allows_any_price(price: Decimal, reference: Decimal) -> None:
    spec = InstrumentSpec(Decimal("0.05"), 1, None)
    assert spec.price_band(reference) is None
    assert spec.is_within_band(price, reference)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tick_size": Decimal(0)},
        {"tick_size": Decimal("-0.05")},
        {"tick_size": Decimal("NaN")},
        {"tick_size": 0.05},
        {"tick_size": Decimal("0.05"), "lot_size": 0},
        {"tick_size": Decimal("0.05"), "lot_size": True},
        {"tick_size": Decimal("0.05"), "price_band_pct": Decimal(0)},
        {"tick_size": Decimal("0.05"), "price_band_pct": Decimal(101)},
        {"tick_size": Decimal("0.05"), "currency": "inr"},
    ],
)
def test_invalid_specs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"tick_size|lot_size|price_band_pct|currency"):
        InstrumentSpec(**kwargs)  # type: ignore[arg-type]
