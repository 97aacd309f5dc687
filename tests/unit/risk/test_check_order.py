"""The pure pre-trade check: each limit at its boundary (exactly at passes, just over fails),
the override-over-defaults merge, and the loss and drawdown rules."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantdesk.core.risk import (
    OrderContext,
    RiskLimits,
    RiskViolation,
    check_order,
    drawdown_pct,
    loss_breached,
)

D = Decimal
BASE = OrderContext(
    exchange="NSE",
    product="CNC",
    quantity=10,
    limit_price=D("100.00"),
    value=D("1000.00"),
    reference=D("100.00"),
    position_value=D("1000.00"),
    gross_exposure=D("5000.00"),
    open_orders=2,
    orders_last_minute=4,
)


def ctx(**kw: object) -> OrderContext:
    values = {f: getattr(BASE, f) for f in BASE.__dataclass_fields__}
    values.update(kw)
    return OrderContext(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("limits", "at", "over", "code"),
    [
        (
            RiskLimits(max_order_quantity=10),
            ctx(quantity=10),
            ctx(quantity=11),
            "RISK_MAX_ORDER_QUANTITY",
        ),
        (
            RiskLimits(max_order_value=D("1000")),
            ctx(value=D("1000.00")),
            ctx(value=D("1000.01")),
            "RISK_MAX_ORDER_VALUE",
        ),
        (
            RiskLimits(max_position_value=D("1000")),
            ctx(position_value=D("1000")),
            ctx(position_value=D("1000.01")),
            "RISK_MAX_POSITION_VALUE",
        ),
        (
            RiskLimits(max_gross_exposure=D("5000")),
            ctx(gross_exposure=D("5000")),
            ctx(gross_exposure=D("5000.01")),
            "RISK_MAX_GROSS_EXPOSURE",
        ),
        # max_open_orders counts the new order: 2 open + 1 = 3 is at a limit of 3.
        (
            RiskLimits(max_open_orders=3),
            ctx(open_orders=2),
            ctx(open_orders=3),
            "RISK_MAX_OPEN_ORDERS",
        ),
        (
            RiskLimits(max_orders_per_minute=5),
            ctx(orders_last_minute=4),
            ctx(orders_last_minute=5),
            "RISK_ORDER_RATE",
        ),
        (
            RiskLimits(fat_finger_pct=D("5")),
            ctx(limit_price=D("105.00")),
            ctx(limit_price=D("105.01")),
            "RISK_FAT_FINGER",
        ),
        (
            RiskLimits(fat_finger_pct=D("5")),
            ctx(limit_price=D("95.00")),
            ctx(limit_price=D("94.99")),
            "RISK_FAT_FINGER",
        ),
        (
            RiskLimits(allowed_exchanges=frozenset({"NSE"})),
            ctx(exchange="NSE"),
            ctx(exchange="BSE"),
            "RISK_EXCHANGE_NOT_ALLOWED",
        ),
        (
            RiskLimits(allowed_products=frozenset({"CNC"})),
            ctx(product="CNC"),
            ctx(product="MIS"),
            "RISK_PRODUCT_NOT_ALLOWED",
        ),
    ],
)
def test_each_limit_passes_exactly_at_and_fails_just_over(
    limits: RiskLimits, at: OrderContext, over: OrderContext, code: str
) -> None:
    check_order(limits, at)
    with pytest.raises(RiskViolation) as err:
        check_order(limits, over)
    assert err.value.code == code
    assert set(err.value.details) == {"limit", "value", "allowed"}


def test_no_limits_let_anything_through_and_a_market_order_skips_the_band() -> None:
    check_order(RiskLimits(), ctx(quantity=10**9, value=D("1E12"), open_orders=10**6))
    check_order(RiskLimits(fat_finger_pct=D("1")), ctx(limit_price=None))


def test_an_override_wins_where_set_and_the_defaults_fill_the_rest() -> None:
    defaults = RiskLimits(max_order_quantity=100, max_open_orders=5)
    override = RiskLimits(max_order_quantity=10)
    merged = override.over(defaults)
    assert (merged.max_order_quantity, merged.max_open_orders) == (10, 5)
    assert merged.max_order_value is None


@given(limit=st.integers(1, 10**6), quantity=st.integers(1, 10**6))
def test_quantity_limit_is_exactly_quantity_at_most_limit(limit: int, quantity: int) -> None:
    try:
        check_order(RiskLimits(max_order_quantity=limit), ctx(quantity=quantity))
        passed = True
    except RiskViolation:
        passed = False
    assert passed == (quantity <= limit)


def test_loss_limit_halts_only_below_minus_the_limit() -> None:
    assert not loss_breached(D("-100.00"), D("100"))
    assert loss_breached(D("-100.01"), D("100"))
    assert not loss_breached(D("-1000000"), None)


@given(
    peak=st.decimals(min_value=1, max_value=10**9, places=2),
    equity=st.decimals(min_value=-(10**9), max_value=10**9, places=2),
)
def test_drawdown_is_the_fall_below_the_peak_in_percent(peak: Decimal, equity: Decimal) -> None:
    dd = drawdown_pct(equity, peak)
    assert dd >= 0
    if equity >= peak:
        assert dd == 0
    else:
        assert dd == (peak - equity) * 100 / peak
