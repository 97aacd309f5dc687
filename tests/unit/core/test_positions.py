"""Fills -> positions: average cost, realised and unrealised P&L, flips, fees, day P&L."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.core.errors import ErrorCode, InvalidInput
from quantdesk.core.orders import Side
from quantdesk.core.positions import Fill, Position, day_pnl, rebuild

D = Decimal
SYM = "NSE:INFY"


def buy(qty: int, price: str, fees: str = "0") -> Fill:
    return Fill(SYM, Side.BUY, qty, D(price), D(fees))


def sell(qty: int, price: str, fees: str = "0") -> Fill:
    return Fill(SYM, Side.SELL, qty, D(price), D(fees))


def test_buys_average_their_prices() -> None:
    p = rebuild(SYM, [buy(10, "100"), buy(30, "104")])
    assert p.quantity == 40
    assert p.average_price == D("103")
    assert p.realised_pnl == 0


def test_partial_close_of_a_long_realises_against_the_average() -> None:
    p = rebuild(SYM, [buy(10, "100"), buy(10, "110"), sell(5, "120")])
    assert p.quantity == 15
    assert p.average_price == D("105")
    assert p.realised_pnl == D("75")


def test_short_then_cover_realises_the_difference() -> None:
    p = rebuild(SYM, [sell(5, "110"), buy(2, "100")])
    assert p.quantity == -3
    assert p.average_price == D("110")
    assert p.realised_pnl == D("20")
    assert p.unrealised_pnl(D("111")) == D("-3")


def test_flip_through_zero_closes_at_the_average_and_opens_at_the_fill_price() -> None:
    p = rebuild(SYM, [buy(10, "100"), sell(15, "110")])
    assert p.quantity == -5
    assert p.realised_pnl == D("100")
    assert p.average_price == D("110")
    back = p.apply(buy(8, "100"))
    assert back.quantity == 3
    assert back.realised_pnl == D("150")
    assert back.average_price == D("100")


def test_flat_position_has_no_average_and_no_open_cost() -> None:
    p = rebuild(SYM, [buy(3, "100"), buy(3, "101"), buy(3, "103"), sell(9, "102")])
    assert p.quantity == 0
    assert p.average_price is None
    assert p.open_cost == 0
    assert p.realised_pnl == D("6")


def test_fees_are_kept_apart_from_the_average_price() -> None:
    p = rebuild(SYM, [buy(10, "100", fees="12.5"), sell(10, "101", fees="7.25")])
    assert p.realised_pnl == D("10")
    assert p.fees == D("19.75")
    assert p.net_realised_pnl == D("-9.75")
    assert rebuild(SYM, [buy(10, "100", fees="12.5")]).average_price == D("100")


def test_a_fill_of_another_symbol_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        Position("NSE:TCS").apply(buy(1, "1"))
    assert exc.value.code is ErrorCode.POSITION_SYMBOL_MISMATCH


def test_apply_leaves_the_original_position_unchanged() -> None:
    p = Position(SYM)
    p.apply(buy(1, "100"))
    assert p == Position(SYM)


def test_day_pnl_values_the_carried_quantity_from_the_previous_close() -> None:
    assert day_pnl(10, [], D("100"), D("103")) == D("30")
    # Carry 10 from 100, buy 5 at 104, sell 8 at 105, mark 106: cash -520 + 840, 7 held at 106
    # worth 742, against the 1000 carried in.
    assert day_pnl(10, [buy(5, "104"), sell(8, "105")], D("100"), D("106")) == D("62")


# --- properties ---------------------------------------------------------------------------------


def cents(low: int, high: int) -> st.SearchStrategy[Decimal]:
    """Decimals with two places, drawn as integers (much faster than ``st.decimals``)."""
    return st.integers(min_value=low, max_value=high).map(lambda n: D(n).scaleb(-2))


fills = st.lists(
    st.builds(
        Fill,
        symbol=st.just(SYM),
        side=st.sampled_from(Side),
        quantity=st.integers(min_value=1, max_value=500),
        price=cents(5, 2_000_000),
        fees=cents(0, 5_000),
    ),
    max_size=25,
)
marks = cents(5, 2_000_000)


@settings(max_examples=150)
@given(fills=fills, cut=st.integers(min_value=0, max_value=25))
def test_rebuilding_in_any_grouping_equals_incremental_application(
    fills: list[Fill], cut: int
) -> None:
    incremental = Position(SYM)
    for f in fills:
        incremental = incremental.apply(f)
    grouped = rebuild(SYM, fills[cut:], start=rebuild(SYM, fills[:cut]))
    assert grouped == incremental == rebuild(SYM, fills)


@settings(max_examples=150)
@given(fills=fills, mark=marks)
def test_realised_plus_unrealised_equals_mark_to_market_exactly(
    fills: list[Fill], mark: Decimal
) -> None:
    p = rebuild(SYM, fills)
    mtm = sum((f.cash_flow for f in fills), D(0)) + p.quantity * mark
    assert p.realised_pnl + p.unrealised_pnl(mark) == mtm
    assert p.quantity == sum(f.signed_quantity for f in fills)
    assert p.fees == sum((f.fees for f in fills), D(0))
    assert p.realised_pnl + p.unrealised_pnl(mark) == day_pnl(0, fills, D(0), mark)


@settings(max_examples=100)
@given(fills=fills)
def test_average_price_lies_within_the_prices_that_opened_the_position(fills: list[Fill]) -> None:
    p = rebuild(SYM, fills)
    if p.quantity == 0:
        assert p.open_cost == 0
        return
    assert p.average_price is not None
    prices = [f.price for f in fills]
    assert min(prices) - D("1E-9") <= p.average_price <= max(prices) + D("1E-9")
