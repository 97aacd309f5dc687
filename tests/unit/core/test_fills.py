"""The fill model shared by the paper broker and the backtester."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.core import orders as o
from quantdesk.core.fills import FillModel, FillReason, Match, ProposedFill, match, volume_delta
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.core.market import Bar, Quote
from quantdesk.core.orders import Order, OrderType, Side, TimeInForce

D = Decimal
SYM = "NSE:INFY"
T0 = datetime(2025, 1, 2, 9, 15, tzinfo=UTC)
SPEC = InstrumentSpec(tick_size=D("0.05"))
UNCAPPED = FillModel(max_volume_share=None)


def order(
    order_type: OrderType = OrderType.MARKET,
    side: Side = Side.BUY,
    *,
    quantity: int = 100,
    limit: str | None = None,
    stop: str | None = None,
    tif: TimeInForce = TimeInForce.DAY,
) -> Order:
    new = Order(
        "o1",
        "c1",
        "a1",
        SYM,
        side,
        order_type,
        o.Product.MIS,
        tif,
        quantity,
        None if limit is None else D(limit),
        None if stop is None else D(stop),
    )
    return o.accept(new, at=T0)[0]


def quote(last: str, bid: str, ask: str, *, volume: int = 1000, at: datetime = T0) -> Quote:
    return Quote(SYM, D(last), D(bid), D(ask), volume, at)


def bar(op: str, hi: str, lo: str, cl: str, *, volume: int = 1000, at: datetime = T0) -> Bar:
    return Bar(at, SYM, D(op), D(hi), D(lo), D(cl), volume)


def run(o_: Order, update: Quote | Bar, model: FillModel = UNCAPPED, volume: int = 1000) -> Match:
    return match(o_, update, SPEC, accepted_at=T0, traded_volume=volume, model=model)


def only_fill(m: Match) -> ProposedFill:
    assert len(m.fills) == 1
    return m.fills[0]


# --- market orders ----------------------------------------------------------------------------


def test_market_buy_fills_at_the_ask_and_market_sell_at_the_bid() -> None:
    q = quote("100.00", "99.95", "100.05")
    assert only_fill(run(order(), q)) == ProposedFill(100, D("100.05"), FillReason.MARKET)
    assert only_fill(run(order(side=Side.SELL), q)).price == D("99.95")


def test_slippage_moves_the_price_against_the_order_and_onto_the_tick() -> None:
    q = quote("100.00", "99.95", "100.05")
    model = FillModel(slippage_ticks=2, slippage_bps=D("1"), max_volume_share=None)
    # 100.05 + 0.10 + 0.010005 -> rounded up to 100.20; 99.95 - 0.10 - 0.009995 -> down to 99.80.
    assert only_fill(run(order(), q, model)).price == D("100.20")
    assert only_fill(run(order(side=Side.SELL), q, model)).price == D("99.80")


def test_market_order_on_a_bar_fills_at_the_open() -> None:
    assert only_fill(run(order(), bar("101", "105", "99", "104"))).price == D("101.00")


def test_no_fill_without_anyone_on_the_other_side() -> None:
    assert run(order(), quote("100", "99.95", "0")).fills == ()


# --- limit orders -----------------------------------------------------------------------------


@pytest.mark.parametrize(("ask", "filled"), [("99.90", True), ("100.00", True), ("100.05", False)])
def test_limit_buy_on_a_quote_fills_when_the_ask_reaches_the_limit(ask: str, filled: bool) -> None:
    m = run(order(OrderType.LIMIT, limit="100.00"), quote(ask, "99.00", ask))
    assert bool(m.fills) is filled
    if filled:
        assert only_fill(m).price == D(ask)


def test_limit_fill_with_slippage_is_never_worse_than_the_limit() -> None:
    model = FillModel(slippage_ticks=5, max_volume_share=None)
    m = run(order(OrderType.LIMIT, limit="100.00"), quote("99.95", "99.90", "99.95"), model)
    assert only_fill(m).price == D("100.00")


def test_limit_buy_on_a_bar_needs_the_low_to_trade_through_the_limit() -> None:
    limit_buy = order(OrderType.LIMIT, limit="100.00")
    assert run(limit_buy, bar("101", "102", "100", "101")).fills == ()  # touched only
    assert only_fill(run(limit_buy, bar("101", "102", "99.95", "101"))).price == D("100.00")


def test_limit_sell_on_a_bar_needs_the_high_to_trade_through_the_limit() -> None:
    limit_sell = order(OrderType.LIMIT, Side.SELL, limit="100.00")
    assert run(limit_sell, bar("99", "100", "98", "99")).fills == ()
    assert only_fill(run(limit_sell, bar("99", "100.05", "98", "99"))).price == D("100.00")


def test_limit_on_a_bar_opening_through_the_limit_fills_at_the_better_open() -> None:
    m = run(order(OrderType.LIMIT, limit="100.00"), bar("98", "99", "97", "98.5"))
    assert only_fill(m).price == D("98.00")


# --- stop orders ------------------------------------------------------------------------------


def test_stop_market_buy_waits_for_the_last_price_to_reach_the_stop() -> None:
    stop_buy = order(OrderType.SL_M, stop="105.00")
    assert run(stop_buy, quote("104.95", "104.90", "105.00")) == Match()
    m = run(stop_buy, quote("105.00", "105.00", "105.10"))
    assert m.triggered
    assert only_fill(m) == ProposedFill(100, D("105.10"), FillReason.STOP_MARKET)


def test_triggered_stop_is_not_triggered_again() -> None:
    stop_sell = o.trigger(order(OrderType.SL_M, Side.SELL, stop="95.00"), at=T0)[0]
    m = run(stop_sell, quote("100", "99.95", "100.05"))
    assert not m.triggered
    assert only_fill(m).price == D("99.95")


def test_stop_market_on_a_bar_fills_at_the_stop_or_the_gap_open() -> None:
    stop_buy = order(OrderType.SL_M, stop="105.00")
    assert only_fill(run(stop_buy, bar("103", "106", "102", "105"))).price == D("105.00")
    assert only_fill(run(stop_buy, bar("107", "108", "106", "107"))).price == D("107.00")


def test_stop_limit_acts_as_a_limit_once_triggered() -> None:
    stop_limit = order(OrderType.SL, stop="105.00", limit="105.50")
    assert only_fill(run(stop_limit, quote("105", "105", "105.25"))).price == D("105.25")
    m = run(stop_limit, quote("105", "105", "105.55"))
    assert m.triggered
    assert m.fills == ()


def test_stop_limit_on_a_bar_that_gaps_past_the_limit_triggers_and_rests() -> None:
    m = run(order(OrderType.SL, stop="105.00", limit="105.50"), bar("106", "107", "104", "106"))
    assert m == Match(triggered=True)


# --- quantity, IOC, latency ---------------------------------------------------------------------


def test_fill_is_capped_by_a_share_of_traded_volume_in_whole_lots() -> None:
    spec = replace(SPEC, lot_size=10)
    model = FillModel(max_volume_share=D("0.25"))
    q = quote("100", "99.95", "100.05")
    m = match(order(), q, spec, accepted_at=T0, traded_volume=150, model=model)
    assert only_fill(m).quantity == 30  # 37.5 -> 37 -> 30 in lots of 10
    m = match(order(), q, spec, accepted_at=T0, traded_volume=30, model=model)
    assert m.fills == ()


def test_ioc_cancels_what_the_first_opportunity_does_not_fill() -> None:
    ioc = order(tif=TimeInForce.IOC)
    model = FillModel(max_volume_share=D("0.1"))
    q = quote("100", "99.95", "100.05")
    partial = run(ioc, q, model, volume=500)
    assert only_fill(partial).quantity == 50
    assert partial.cancel_remainder
    assert not run(ioc, q, model, volume=5000).cancel_remainder
    assert run(order(OrderType.LIMIT, limit="90", tif=TimeInForce.IOC), q).cancel_remainder


def test_order_is_eligible_only_from_accept_time_plus_latency() -> None:
    model = FillModel(latency=timedelta(milliseconds=250), max_volume_share=None)
    early = quote("100", "99.95", "100.05", at=T0 + timedelta(milliseconds=249))
    on_time = quote("100", "99.95", "100.05", at=T0 + timedelta(milliseconds=250))
    assert run(order(tif=TimeInForce.IOC), early, model) == Match()
    assert run(order(), on_time, model).fills


def test_an_order_not_yet_accepted_or_already_done_is_not_matched() -> None:
    q = quote("100", "99.95", "100.05")
    assert run(o.Order(**{**_fields(order()), "status": o.OrderStatus.NEW}), q) == Match()
    assert run(o.cancel(order(), at=T0)[0], q) == Match()


def _fields(o_: Order) -> dict[str, object]:
    return {f: getattr(o_, f) for f in o_.__dataclass_fields__}


def test_volume_delta_counts_volume_between_quotes_of_one_session() -> None:
    a, b = quote("1", "1", "1", volume=100), quote("1", "1", "1", volume=160)
    assert volume_delta(a, b) == 60
    assert volume_delta(None, b) == 0
    assert volume_delta(b, a) == 0  # a new session restarted the count


def test_random_slippage_needs_an_injected_random_and_repeats_for_a_seed() -> None:
    model = FillModel(random_slippage_ticks=5, max_volume_share=None)
    q = quote("100", "99.95", "100.05")
    with pytest.raises(ValueError, match="random"):
        run(order(), q, model)

    def prices(seed: int) -> list[Decimal]:
        rng = random.Random(seed)
        return [
            only_fill(
                match(order(), q, SPEC, accepted_at=T0, traded_volume=0, model=model, rng=rng)
            ).price
            for _ in range(20)
        ]

    assert prices(7) == prices(7)
    assert len(set(prices(7))) > 1


# --- properties ---------------------------------------------------------------------------------

TICKS = [D("0.05"), D("0.01"), D("1"), D("0.0025")]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Order, Quote | Bar, InstrumentSpec, FillModel, int]:
    tick = draw(st.sampled_from(TICKS))
    lot = draw(st.sampled_from([1, 5, 25]))
    spec = InstrumentSpec(tick_size=tick, lot_size=lot)
    on_tick = st.integers(min_value=1, max_value=4000).map(lambda n: n * tick)
    side = draw(st.sampled_from(Side))
    order_type = draw(st.sampled_from(OrderType))
    limit = draw(on_tick) if order_type in (OrderType.LIMIT, OrderType.SL) else None
    stop = draw(on_tick) if order_type in (OrderType.SL, OrderType.SL_M) else None
    new = Order(
        "o1",
        "c1",
        "a1",
        SYM,
        side,
        order_type,
        o.Product.MIS,
        draw(st.sampled_from(TimeInForce)),
        lot * draw(st.integers(min_value=1, max_value=40)),
        limit,
        stop,
    )
    live = o.accept(new, at=T0)[0]
    already = lot * draw(st.integers(min_value=0, max_value=live.quantity // lot - 1))
    if already:
        live = o.fill(live, already, draw(on_tick), "t0", at=T0)[0]
    if live.is_stop and draw(st.booleans()):
        live = o.trigger(live, at=T0)[0]
    prices = sorted(draw(st.lists(on_tick, min_size=4, max_size=4)))
    update: Quote | Bar
    if draw(st.booleans()):
        lo, bid, ask, hi = prices
        update = Quote(SYM, draw(st.sampled_from([bid, ask, lo, hi])), bid, ask, 10**6, T0)
    else:
        lo, a, b, hi = prices
        op, cl = (a, b) if draw(st.booleans()) else (b, a)
        update = Bar(T0, SYM, op, hi, lo, cl, 10**6)
    model = FillModel(
        slippage_ticks=draw(st.integers(min_value=0, max_value=3)),
        slippage_bps=D(draw(st.integers(min_value=0, max_value=50))),
        random_slippage_ticks=draw(st.integers(min_value=0, max_value=3)),
        max_volume_share=draw(st.sampled_from([None, D("0.1"), D("0.5"), D("1")])),
    )
    volume = draw(st.integers(min_value=0, max_value=2000))
    return live, update, spec, model, volume


@settings(max_examples=300)
@given(scenario=scenarios(), seed=st.integers(min_value=0, max_value=2**32))
def test_fills_respect_remaining_volume_share_limit_and_tick_and_repeat_for_a_seed(
    scenario: tuple[Order, Quote | Bar, InstrumentSpec, FillModel, int], seed: int
) -> None:
    live, update, spec, model, volume = scenario

    def once() -> Match:
        return match(
            live,
            update,
            spec,
            accepted_at=T0,
            traded_volume=volume,
            model=model,
            rng=random.Random(seed),
        )

    result = once()
    assert result == once()
    assert result.filled_quantity <= live.remaining_quantity
    if model.max_volume_share is not None:
        assert result.filled_quantity <= volume * model.max_volume_share
    for f in result.fills:
        assert f.quantity > 0
        assert f.quantity % spec.lot_size == 0
        assert f.price > 0
        assert spec.is_on_tick(f.price)
        if live.limit_price is not None:
            if live.side is Side.BUY:
                assert f.price <= live.limit_price
            else:
                assert f.price >= live.limit_price
    if live.is_stop and not live.triggered and not result.triggered:
        assert result.fills == ()
    if result.cancel_remainder:
        assert live.time_in_force is TimeInForce.IOC
