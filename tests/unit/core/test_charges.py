"""Indian equity charges in the pure core: the reference's worked examples, the dated schedule,
swappable broker tariffs, per-order charges applied fill by fill, and input validation."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantdesk.core.charges import (
    COMPONENT_PRECISION,
    COMPONENTS,
    MAX_QUANTITY,
    BrokerTariff,
    Charges,
    ChargesCalculator,
    ChargeSchedule,
    ChargesError,
    CncFill,
    Exchange,
    ExecutedOrder,
    Segment,
    Side,
    default_calculator,
    estimate,
    india_schedule,
    india_tariffs,
    match_same_day,
    parse_price,
    parse_schedule_file,
    parse_trade_date,
    segment_for,
    split_same_day,
)

D = Decimal
DAY = date(2025, 6, 2)
FIRST_DAY = date(2024, 10, 1)
RESPLIT_DAY = date(2026, 3, 1)
INTRADAY, DELIVERY = Segment.EQUITY_INTRADAY, Segment.EQUITY_DELIVERY
NSE, BSE = Exchange.NSE, Exchange.BSE

# shared/reference/india-charges.md, "Worked examples": every component, total, P&L, break-even.
WORKED_EXAMPLES = [
    pytest.param(
        (INTRADAY, NSE, "1000.00", "1100.00", 100),
        {
            "brokerage": "40.00",
            "stt": "28.00",
            "exchange_charge": "6.45",
            "sebi_fee": "0.21",
            "stamp_duty": "3.00",
            "gst": "8.40",
            "dp_charge": "0.00",
        },
        ("86.06", "10000.00", "9913.94", "0.86"),
        id="1-intraday-NSE",
    ),
    pytest.param(
        (DELIVERY, NSE, "1000.00", "1100.00", 100),
        {
            "brokerage": "0.00",
            "stt": "210.00",
            "exchange_charge": "6.45",
            "sebi_fee": "0.21",
            "stamp_duty": "15.00",
            "gst": "1.20",
            "dp_charge": "15.34",
        },
        ("248.20", "10000.00", "9751.80", "2.48"),
        id="2-delivery-NSE",
    ),
    pytest.param(
        (INTRADAY, BSE, "250.35", "248.10", 500),
        {
            "brokerage": "40.00",
            "stt": "31.00",
            "exchange_charge": "9.35",
            "sebi_fee": "0.25",
            "stamp_duty": "4.00",
            "gst": "8.93",
            "dp_charge": "0.00",
        },
        ("93.53", "-1125.00", "-1218.53", "0.19"),
        id="3-intraday-BSE",
    ),
]

segments = st.sampled_from(list(Segment))
exchanges = st.sampled_from(list(Exchange))
prices = st.decimals(min_value=D("0.05"), max_value=D(200_000), places=2)
quantities = st.integers(min_value=1, max_value=200_000)
trade_dates = st.dates(min_value=FIRST_DAY, max_value=date(2032, 12, 31))
sides = st.sampled_from(list(Side))


def paisa(amount: Decimal) -> Decimal:
    return amount.quantize(D("0.01"), ROUND_HALF_UP)


def tariff_swapped(per_order: str = "20", dp: str = "0") -> ChargesCalculator:
    return ChargesCalculator(
        india_schedule(), BrokerTariff.flat_fee("flat", D(per_order), dp_charge=D(dp))
    )


# --- the worked examples ----------------------------------------------------------------------


@pytest.mark.parametrize(("trade", "components", "summary"), WORKED_EXAMPLES)
@pytest.mark.parametrize("day", [DAY, RESPLIT_DAY + timedelta(days=1)], ids=str)
def test_worked_examples_match_every_component_exactly(
    trade: tuple[Segment, Exchange, str, str, int],
    components: dict[str, str],
    summary: tuple[str, str, str, str],
    day: date,
) -> None:
    segment, exchange, buy, sell, qty = trade
    result = estimate(segment, exchange, D(buy), D(sell), qty, day)
    assert {k: str(v) for k, v in result.charges.as_dict().items()} == components
    total, gross, net, breakeven = summary
    assert str(result.total) == total
    assert str(result.gross_pnl) == gross
    assert str(result.net_pnl) == net
    assert str(result.breakeven_points) == breakeven
    assert result.broker == "zerodha"
    assert result.turnover == D(buy) * qty + D(sell) * qty


def test_estimate_accepts_enum_values_as_text() -> None:
    result = estimate("equity_intraday", "nse", D("1000"), D("1100"), 100, DAY)
    assert result.segment is INTRADAY and result.exchange is NSE
    assert str(result.total) == "86.06"


# --- the dated schedule -----------------------------------------------------------------------


def test_a_date_before_the_first_schedule_row_raises_a_clear_error() -> None:
    with pytest.raises(ChargesError, match=r"no charge schedule for 2024-09-30.*2024-10-01") as e:
        estimate(INTRADAY, NSE, D(100), D(101), 1, FIRST_DAY - timedelta(days=1))
    assert e.value.code == "CHARGES_NO_SCHEDULE"


def test_the_schedule_row_in_force_is_chosen_by_trade_date() -> None:
    schedule = india_schedule()
    assert schedule.rates_on(FIRST_DAY).effective_from == FIRST_DAY
    assert schedule.rates_on(RESPLIT_DAY - timedelta(days=1)).effective_from == FIRST_DAY
    assert schedule.rates_on(RESPLIT_DAY).effective_from == RESPLIT_DAY
    assert schedule.rates_on(date(2099, 1, 1)).effective_from == RESPLIT_DAY
    before = schedule.rates_on(FIRST_DAY).exchanges[NSE]
    after = schedule.rates_on(RESPLIT_DAY).exchanges[NSE]
    assert before.transaction_pct != after.transaction_pct
    assert before.total_pct == after.total_pct == D("0.00307")


@given(segments, exchanges, prices, prices, quantities)
def test_nse_resplit_of_2026_03_01_leaves_every_charge_unchanged(
    segment: Segment, exchange: Exchange, buy: Decimal, sell: Decimal, qty: int
) -> None:
    before = estimate(segment, exchange, buy, sell, qty, RESPLIT_DAY - timedelta(days=1))
    after = estimate(segment, exchange, buy, sell, qty, RESPLIT_DAY)
    assert before.charges == after.charges
    assert after.schedule_from == RESPLIT_DAY


def test_the_shipped_file_parses_and_holds_only_the_dated_rows() -> None:
    text = resources.files("quantdesk.core").joinpath("data/charges_india.json").read_text()
    schedule, tariffs = parse_schedule_file(text)
    assert [r.effective_from for r in schedule.rows] == [FIRST_DAY, RESPLIT_DAY]
    assert set(tariffs) == {"zerodha"} == set(india_tariffs())
    assert tariffs["zerodha"].rates_on(DAY).dp_charge == D("15.34")


def _file(**changes: object) -> str:
    text = resources.files("quantdesk.core").joinpath("data/charges_india.json").read_text()
    data = json.loads(text)
    rows = data["statutory"]
    for key, value in changes.items():
        index, field = key.split("__")
        rows[int(index)][field] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    "changes",
    [
        {"1__effective_from": "2026-02-01"},  # overlaps the row before
        {"1__effective_from": "2024-09-01"},  # out of order
        {"0__effective_to": "2024-09-01"},  # ends before it starts
        {"0__gst_pct": "NaN"},
        {"0__gst_pct": 18},  # rates are decimal strings, never JSON numbers (floats)
        {"0__sebi_fee_pct": "-1"},
        {"0__segments": {"equity_delivery": {}}},
        {"0__exchanges": {"NSE": {"transaction_pct": "0.1", "ipf_pct": "0"}}},  # BSE missing
        {"0__effective_from": "1st October"},
    ],
)
def test_a_malformed_schedule_file_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ChargesError) as e:
        parse_schedule_file(_file(**changes))
    assert e.value.code == "CHARGES_BAD_SCHEDULE"


def test_a_gap_between_rows_has_no_rates() -> None:
    schedule, _ = parse_schedule_file(_file(**{"0__effective_to": "2025-12-31"}))
    assert schedule.rates_on(date(2025, 12, 31)).effective_from == FIRST_DAY
    with pytest.raises(ChargesError, match="ended on 2025-12-31"):
        schedule.rates_on(date(2026, 1, 15))
    assert isinstance(schedule, ChargeSchedule)


# --- properties of every estimate -------------------------------------------------------------


@given(segments, exchanges, prices, prices, quantities, trade_dates)
def test_total_is_the_sum_of_components_each_non_negative_and_rounded(
    segment: Segment, exchange: Exchange, buy: Decimal, sell: Decimal, qty: int, day: date
) -> None:
    result = estimate(segment, exchange, buy, sell, qty, day)
    parts = result.charges.as_dict()
    assert result.total == sum(parts.values())
    for name, value in parts.items():
        assert value >= 0, name
        assert value % COMPONENT_PRECISION[name] == 0, (name, value)
    assert result.net_pnl == result.gross_pnl - result.total
    assert result.breakeven_points == paisa(result.total / qty)
    if segment is DELIVERY:
        assert result.charges.brokerage == 0 and result.charges.dp_charge == D("15.34")
    else:
        assert result.charges.dp_charge == 0


@given(exchanges, prices, prices, quantities, trade_dates)
def test_intraday_brokerage_is_at_most_rs_20_per_order(
    exchange: Exchange, buy: Decimal, sell: Decimal, qty: int, day: date
) -> None:
    calc = default_calculator()
    result = calc.estimate(INTRADAY, exchange, buy, sell, qty, day)
    assert result.charges.brokerage <= 40
    for side, price in ((Side.BUY, buy), (Side.SELL, sell)):
        order = ExecutedOrder.start(INTRADAY, exchange, side, day).fill(price, qty)
        assert calc.order_charges(order).brokerage <= 20
        expected = paisa(min(price * qty * D("0.0003"), D(20)))
        assert calc.order_charges(order).brokerage == expected


@given(segments, exchanges, prices, prices, quantities, st.integers(1, 10_000), trade_dates)
def test_charges_never_fall_as_quantity_grows(
    segment: Segment,
    exchange: Exchange,
    buy: Decimal,
    sell: Decimal,
    qty: int,
    more: int,
    day: date,
) -> None:
    small = estimate(segment, exchange, buy, sell, qty, day).charges
    large = estimate(segment, exchange, buy, sell, qty + more, day).charges
    assert large.total >= small.total
    for name in COMPONENTS:
        assert getattr(large, name) >= getattr(small, name), name


@given(segments, exchanges, prices, prices, quantities, trade_dates)
def test_a_swapped_broker_tariff_changes_only_brokerage_dp_and_gst(
    segment: Segment, exchange: Exchange, buy: Decimal, sell: Decimal, qty: int, day: date
) -> None:
    zerodha = default_calculator().estimate(segment, exchange, buy, sell, qty, day).charges
    flat = tariff_swapped("20", "0").estimate(segment, exchange, buy, sell, qty, day).charges
    for name in ("stt", "exchange_charge", "sebi_fee", "stamp_duty"):
        assert getattr(flat, name) == getattr(zerodha, name), name
    assert flat.brokerage == 40 and flat.dp_charge == 0
    gst_base = flat.brokerage + flat.exchange_charge + flat.sebi_fee
    assert flat.gst == paisa(gst_base * D("0.18"))
    assert flat.gst - zerodha.gst in {
        paisa((flat.brokerage - zerodha.brokerage) * D("0.18")) + d
        for d in (D("-0.01"), D(0), D("0.01"))
    }


def test_zero_brokerage_tariff_charges_only_statutory_costs() -> None:
    result = tariff_swapped("0").estimate(INTRADAY, NSE, D(1000), D(1100), 100, DAY)
    assert result.broker == "flat"
    assert result.charges == Charges(
        stt=D("28.00"),
        exchange_charge=D("6.45"),
        sebi_fee=D("0.21"),
        stamp_duty=D("3.00"),
        gst=D("1.20"),
    )


# --- per-order charges for the OMS ------------------------------------------------------------

fills = st.lists(st.tuples(prices, st.integers(1, 5_000)), min_size=1, max_size=8)


@given(segments, exchanges, sides, fills, trade_dates)
def test_posting_cumulative_differences_fill_by_fill_adds_up_to_the_whole_order(
    segment: Segment,
    exchange: Exchange,
    side: Side,
    order_fills: list[tuple[Decimal, int]],
    day: date,
) -> None:
    calc = default_calculator()
    order = ExecutedOrder.start(segment, exchange, side, day)
    posted = calc.order_charges(order)
    assert posted == Charges()
    for price, qty in order_fills:
        order = order.fill(price, qty)
        delta = calc.order_charges(order) - posted
        assert all(v >= 0 for v in delta.as_dict().values()), delta
        posted = posted + delta
    whole = ExecutedOrder(
        segment,
        exchange,
        side,
        day,
        quantity=sum(q for _, q in order_fills),
        turnover=sum((p * q for p, q in order_fills), D(0)),
        fills=len(order_fills),
    )
    assert posted == calc.order_charges(whole)
    assert order.fills == len(order_fills)
    if segment is INTRADAY:
        assert posted.brokerage <= 20  # one executed order, however many fills


def test_a_partly_filled_order_pays_brokerage_once_not_per_fill() -> None:
    calc = default_calculator()
    order = ExecutedOrder.start(INTRADAY, NSE, Side.SELL, DAY)
    for _ in range(3):
        order = order.fill(D("1100.00"), 100)
    charges = calc.order_charges(order)
    assert charges.brokerage == D("20.00")
    assert charges.stt == D("83.00")  # 0.025% of 330,000 = 82.5, rounded once for the order
    assert charges.stamp_duty == 0  # sells pay no stamp duty
    assert charges.dp_charge == 0  # DP is per scrip per day, posted separately


def test_order_charges_of_a_delivery_buy_and_the_daily_dp_charge() -> None:
    calc = default_calculator()
    buy = ExecutedOrder.start("equity_delivery", "NSE", "buy", DAY).fill(D("1000.00"), 100)
    assert calc.order_charges(buy) == Charges(
        stt=D("100.00"),
        exchange_charge=D("3.07"),
        sebi_fee=D("0.10"),
        stamp_duty=D("15.00"),
        gst=D("0.57"),
    )
    assert calc.dp_charges(DAY) == Charges(dp_charge=D("15.34"))
    assert tariff_swapped(dp="13.5").dp_charges(DAY).dp_charge == D("13.50")


def test_estimate_brokerage_equals_the_two_executed_orders_brokerage() -> None:
    calc = default_calculator()
    result = calc.estimate(INTRADAY, NSE, D("50.00"), D("51.00"), 300, DAY)
    buy = ExecutedOrder.start(INTRADAY, NSE, Side.BUY, DAY).fill(D("50.00"), 300)
    sell = ExecutedOrder.start(INTRADAY, NSE, Side.SELL, DAY).fill(D("51.00"), 300)
    assert result.charges.brokerage == (
        calc.order_charges(buy).brokerage + calc.order_charges(sell).brokerage
    )
    assert result.charges.brokerage == D("9.09")  # 0.03% of 15,000 and 15,300: under the cap


# --- the same-day CNC rule --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("product", "same_day", "expected"),
    [
        ("MIS", False, INTRADAY),
        ("MIS", True, INTRADAY),
        ("CNC", False, DELIVERY),
        ("cnc", True, INTRADAY),
    ],
)
def test_segment_for_product(product: str, same_day: bool, expected: Segment) -> None:
    assert segment_for(product, same_day_square_off=same_day) is expected


def test_segment_for_an_unknown_product_is_refused() -> None:
    with pytest.raises(ChargesError, match="CNC or MIS"):
        segment_for("NRML")


@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_same_day_split_charges_the_matched_quantity_as_intraday(bought: int, sold: int) -> None:
    split = split_same_day(bought, sold)
    assert split.intraday == min(bought, sold)
    assert split.intraday + split.delivery_buy == bought
    assert split.intraday + split.delivery_sell == sold
    assert split.delivery_buy == 0 or split.delivery_sell == 0


def test_same_day_split_refuses_negative_quantities() -> None:
    with pytest.raises(ChargesError):
        split_same_day(-1, 5)


# --- a CNC buy sold the same day --------------------------------------------------------------


def buy_(qty: int, px: str, order: str = "b") -> CncFill:
    return CncFill(order, Side.BUY, qty, D(px))


def sell_(qty: int, px: str, order: str = "s") -> CncFill:
    return CncFill(order, Side.SELL, qty, D(px))


def test_a_cnc_round_trip_of_one_day_is_recharged_as_intraday_worked_example() -> None:
    # Buy 100 @ 500.00 and sell 100 @ 505.00 under CNC on one day (NSE): turnover 50,000 and
    # 50,500. By hand, each order rounded on its own (STT and stamp duty to the rupee, the
    # rest to the paisa, half up; GST on the rounded brokerage + exchange charge + SEBI fee):
    #   as delivery   buy: STT 50, exchange 1.535 -> 1.54, SEBI 0.05, stamp 7.5 -> 8,
    #                      GST 18% x 1.59 = 0.2862 -> 0.29                      = 59.88
    #                 sell: STT 50.5 -> 51, exchange 1.55035 -> 1.55, SEBI 0.05,
    #                      GST 18% x 1.60 = 0.288 -> 0.29, DP 15.34             = 68.23
    #   as intraday   buy: brokerage 15.00, exchange 1.54, SEBI 0.05, stamp 1.5 -> 2,
    #                      GST 18% x 16.59 = 2.9862 -> 2.99                     = 21.58
    #                 sell: brokerage 15.15, STT 12.625 -> 13, exchange 1.55, SEBI 0.05,
    #                      GST 18% x 16.75 = 3.015 -> 3.02                      = 32.77
    #   adjustment 54.35 - 128.11 = -73.76: brokerage +30.15, STT 13 - 101 = -88, stamp 2 - 8
    #   = -6, GST 6.01 - 0.58 = +5.43, DP -15.34; exchange charge and SEBI fee unchanged.
    day = default_calculator().cnc_day(NSE, DAY, [buy_(100, "500.00"), sell_(100, "505.00")])
    assert day.intraday_quantity == 100
    assert day.delivery == Charges(
        D("0.00"), D("101"), D("3.09"), D("0.10"), D("8"), D("0.58"), D("15.34")
    )
    assert day.delivery.total == D("128.11")
    assert day.reclassified == Charges(D("30.15"), D("13"), D("3.09"), D("0.10"), D("2"), D("6.01"))
    assert day.reclassified.total == D("54.35")
    assert day.adjustment.as_dict() == {
        "brokerage": D("30.15"),
        "stt": D("-88"),
        "exchange_charge": D("0"),
        "sebi_fee": D("0"),
        "stamp_duty": D("-6"),
        "gst": D("5.43"),
        "dp_charge": D("-15.34"),
    }
    # The round-trip calculator rounds GST once for both sides (6.00, not 3.02 + 2.99).
    assert estimate(INTRADAY, NSE, D("500"), D("505"), 100, DAY).total == D("54.34")


def test_each_sell_closes_the_days_earlier_buys_first_bought_first_closed() -> None:
    fills = [
        sell_(5, "100", "s0"),  # before any buy of the day: sells holdings
        buy_(10, "100", "b1"),
        buy_(10, "101", "b2"),
        sell_(15, "102", "s1"),  # closes b1, then half of b2
        buy_(4, "103", "b3"),
        sell_(10, "104", "s2"),  # closes the rest of b2 and b3; 1 from holdings
    ]
    assert match_same_day(fills) == [0, 10, 10, 15, 4, 9]


def test_a_day_without_a_same_day_square_off_needs_no_adjustment() -> None:
    calc = default_calculator()
    for fills in (
        [buy_(10, "100"), buy_(5, "101", "b2")],
        [sell_(10, "100")],
        [sell_(10, "100"), buy_(10, "99")],  # sold holdings, then bought anew
    ):
        day = calc.cnc_day(NSE, DAY, fills)
        assert day.intraday_quantity == 0
        assert day.reclassified == day.delivery
        assert day.adjustment.total == 0


def test_a_part_sold_from_holdings_keeps_delivery_charges_and_the_dp_charge() -> None:
    calc = default_calculator()
    day = calc.cnc_day(NSE, DAY, [buy_(100, "400.00"), sell_(120, "404.00")])
    assert day.intraday_quantity == 100
    assert day.reclassified.dp_charge == day.delivery.dp_charge == calc.dp_charges(DAY).total
    start = ExecutedOrder.start
    intraday_sell = start(INTRADAY, NSE, Side.SELL, DAY).fill(D("404.00"), 100)
    delivery_sell = start(DELIVERY, NSE, Side.SELL, DAY).fill(D("404.00"), 20)
    intraday_buy = start(INTRADAY, NSE, Side.BUY, DAY).fill(D("400.00"), 100)
    assert day.reclassified == (
        calc.order_charges(intraday_buy)
        + calc.order_charges(intraday_sell)
        + calc.order_charges(delivery_sell)
        + calc.dp_charges(DAY)
    )


ROUND_TRIP = st.lists(
    st.tuples(
        st.integers(1, 5000),
        st.integers(1, 200000),
        st.integers(1, 200000),
        st.booleans(),
    ),
    min_size=1,
    max_size=4,
)


@given(ROUND_TRIP, st.sampled_from(list(Exchange)))
def test_a_full_same_day_round_trip_costs_exactly_the_intraday_orders(
    lots: list[tuple[int, int, int, bool]], exchange: Exchange
) -> None:
    # Lots bought then sold (each sell possibly in two fills of one order): every share is
    # intraday, so the day costs what the same orders cost as MIS, and the adjustment is the
    # difference to the delivery charges already posted.
    calc = default_calculator()
    fills: list[CncFill] = []
    expected = Charges()
    for n, (qty, buy_paise, sell_paise, split) in enumerate(lots):
        bp, sp = D(buy_paise) / 100, D(sell_paise) / 100
        fills.append(CncFill(f"b{n}", Side.BUY, qty, bp))
        parts = [qty // 2, qty - qty // 2] if split and qty > 1 else [qty]
        fills += [CncFill(f"s{n}", Side.SELL, part, sp) for part in parts]
        for side, px in ((Side.BUY, bp), (Side.SELL, sp)):
            expected += calc.order_charges(
                ExecutedOrder.start(INTRADAY, exchange, side, DAY).fill(px, qty)
            )
    day = calc.cnc_day(exchange, DAY, fills)
    assert day.intraday_quantity == sum(q for q, *_ in lots)
    assert day.reclassified == expected
    assert day.delivery + day.adjustment == expected


def test_a_bad_cnc_fill_is_refused() -> None:
    with pytest.raises(ChargesError):
        CncFill("o", "HOLD", 1, D("1"))  # type: ignore[arg-type]
    with pytest.raises(ChargesError):
        CncFill("o", Side.BUY, 0, D("1"))
    with pytest.raises(ChargesError):
        CncFill("o", Side.BUY, 1, D("-1"))
    assert CncFill("o", "sell", 1, D("1")).side is Side.SELL  # type: ignore[arg-type]


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "price",
    [D(0), D(-1), D("NaN"), D("Infinity"), D("1e10"), D("1.00001"), 1000.0, "1000", True],
    ids=repr,
)
def test_bad_prices_are_refused(price: object) -> None:
    with pytest.raises(ChargesError) as e:
        estimate(INTRADAY, NSE, price, D(100), 1, DAY)  # type: ignore[arg-type]
    assert e.value.code == "CHARGES_BAD_PRICE"


@pytest.mark.parametrize("qty", [0, -1, MAX_QUANTITY + 1, True, 1.0, "10"], ids=repr)
def test_bad_quantities_are_refused(qty: object) -> None:
    with pytest.raises(ChargesError) as e:
        estimate(INTRADAY, NSE, D(100), D(100), qty, DAY)  # type: ignore[arg-type]
    assert e.value.code == "CHARGES_BAD_QUANTITY"


def test_largest_inputs_stay_exact() -> None:
    result = estimate(DELIVERY, BSE, D("999999999.9999"), D("1000000000"), MAX_QUANTITY, DAY)
    assert result.total == sum(result.charges.as_dict().values())
    assert result.gross_pnl == D("100000.0000")


def test_unknown_segment_exchange_or_side_is_refused() -> None:
    for bad in (
        lambda: estimate("futures", NSE, D(1), D(1), 1, DAY),
        lambda: estimate(INTRADAY, "MCX", D(1), D(1), 1, DAY),
        lambda: ExecutedOrder.start(INTRADAY, NSE, "HOLD", DAY),
    ):
        with pytest.raises(ChargesError) as e:
            bad()
        assert e.value.code == "CHARGES_BAD_ORDER"


def test_a_datetime_is_not_a_trade_date() -> None:
    with pytest.raises(ChargesError) as e:
        estimate(INTRADAY, NSE, D(1), D(1), 1, datetime(2025, 6, 2, 10, 0))
    assert e.value.code == "CHARGES_BAD_DATE"


@pytest.mark.parametrize(
    ("text", "expected"), [("1000", D(1000)), (" 1000.50 ", D("1000.50")), ("0.05", D("0.05"))]
)
def test_parse_price_accepts_plain_decimals(text: str, expected: Decimal) -> None:
    assert parse_price(text) == expected


@pytest.mark.parametrize(
    "text", ["NaN", "nan", "Infinity", "-5", "+5", "1e5", "1,000", "", "0", "0.00", "1.12345"]
)
def test_parse_price_refuses_anything_else(text: str) -> None:
    with pytest.raises(ChargesError) as e:
        parse_price(text, "buy price")
    assert e.value.code == "CHARGES_BAD_PRICE"
    assert "buy price" in str(e.value)


def test_parse_trade_date_is_strict_iso() -> None:
    assert parse_trade_date("2025-06-02") == DAY
    for text in ("0", "20250602", "2025-6-2", "2025-02-30", "1717286400", ""):
        with pytest.raises(ChargesError) as e:
            parse_trade_date(text)
        assert e.value.code == "CHARGES_BAD_DATE"
