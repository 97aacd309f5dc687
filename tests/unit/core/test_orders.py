"""The order state machine, its events and the checks a new order must pass."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.core import orders as o
from quantdesk.core.errors import DomainError, ErrorCode, InvalidInput, InvalidState
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.core.orders import Order, OrderAction, OrderStatus, OrderType, Product, Side

T0 = datetime(2025, 1, 2, 9, 15, tzinfo=UTC)
SPEC = InstrumentSpec(tick_size=Decimal("0.05"), lot_size=1, price_band_pct=Decimal(20))
D = Decimal


def make(
    order_type: OrderType = OrderType.LIMIT,
    *,
    side: Side = Side.BUY,
    quantity: int = 10,
    limit: str | None = "100.00",
    stop: str | None = None,
    product: Product = Product.MIS,
    tif: o.TimeInForce = o.TimeInForce.DAY,
) -> Order:
    return Order(
        id="o1",
        client_order_id="c1",
        account="acc1",
        symbol="NSE:INFY",
        side=side,
        order_type=order_type,
        product=product,
        time_in_force=tif,
        quantity=quantity,
        limit_price=None if limit is None else D(limit),
        stop_price=None if stop is None else D(stop),
    )


def opened(**kw: object) -> Order:
    order, _ = o.accept(make(**kw), at=T0)  # type: ignore[arg-type]
    return order


def code_of(exc: pytest.ExceptionInfo[DomainError]) -> ErrorCode:
    return exc.value.code


# --- transitions ------------------------------------------------------------------------------


def test_accept_moves_new_to_open_and_records_time_and_reason() -> None:
    order, event = o.accept(make(), at=T0)
    assert order.status is OrderStatus.OPEN
    assert (event.from_status, event.to_status, event.action) == (
        OrderStatus.NEW,
        OrderStatus.OPEN,
        OrderAction.ACCEPT,
    )
    assert event.at == T0
    assert event.reason == "accepted"


def test_partial_then_full_fill_reaches_filled_with_exact_average() -> None:
    order = opened(quantity=3)
    order, e1 = o.fill(order, 1, D("100.00"), "t1", at=T0)
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert (e1.quantity, e1.price, e1.trade_id) == (1, D("100.00"), "t1")
    order, _ = o.fill(order, 1, D("100.00"), "t2", at=T0)
    order, e3 = o.fill(order, 1, D("101.00"), "t3", at=T0)
    assert order.status is OrderStatus.FILLED
    assert e3.from_status is OrderStatus.PARTIALLY_FILLED
    assert order.filled_value == D("301.00")
    assert order.average_fill_price == D("301.00") / 3


def test_fill_beyond_the_remaining_quantity_is_refused_as_overfill() -> None:
    order = opened(quantity=5)
    order, _ = o.fill(order, 3, D("99"), "t1", at=T0)
    with pytest.raises(InvalidState) as exc:
        o.fill(order, 3, D("99"), "t2", at=T0)
    assert code_of(exc) is ErrorCode.ORDER_OVERFILL
    assert exc.value.details["remaining"] == 2


def test_fill_before_accept_is_refused() -> None:
    with pytest.raises(InvalidState) as exc:
        o.fill(make(), 1, D("100"), "t1", at=T0)
    assert code_of(exc) is ErrorCode.ORDER_BAD_TRANSITION


@pytest.mark.parametrize(("qty", "price"), [(0, "1"), (-1, "1"), (1, "0"), (1, "-5")])
def test_fill_with_non_positive_quantity_or_price_is_refused(qty: int, price: str) -> None:
    with pytest.raises(InvalidInput):
        o.fill(opened(), qty, D(price), "t", at=T0)


def _terminal_orders() -> list[Order]:
    base = opened(quantity=2)
    filled, _ = o.fill(base, 2, D("100"), "t", at=T0)
    return [
        filled,
        o.cancel(base, at=T0)[0],
        o.expire(base, at=T0)[0],
        o.reject(base, at=T0, reason="risk")[0],
    ]


ACTIONS = {
    "accept": lambda order: o.accept(order, at=T0),
    "fill": lambda order: o.fill(order, 1, D("100"), "tx", at=T0),
    "cancel": lambda order: o.cancel(order, at=T0),
    "expire": lambda order: o.expire(order, at=T0),
    "reject": lambda order: o.reject(order, at=T0, reason="x"),
    "modify": lambda order: o.modify(order, at=T0, quantity=5),
    "trigger": lambda order: o.trigger(order, at=T0),
}


@pytest.mark.parametrize("order", _terminal_orders(), ids=lambda order: str(order.status))
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_terminal_orders_never_change(order: Order, action: str) -> None:
    with pytest.raises(InvalidState) as exc:
        ACTIONS[action](order)
    assert code_of(exc) is ErrorCode.ORDER_NOT_LIVE


def test_accepting_an_open_order_again_is_refused() -> None:
    with pytest.raises(InvalidState) as exc:
        o.accept(opened(), at=T0)
    assert code_of(exc) is ErrorCode.ORDER_BAD_TRANSITION


def test_reject_after_a_partial_fill_is_refused() -> None:
    order, _ = o.fill(opened(), 1, D("100"), "t", at=T0)
    with pytest.raises(InvalidState) as exc:
        o.reject(order, at=T0, reason="late")
    assert code_of(exc) is ErrorCode.ORDER_BAD_TRANSITION


def test_cancel_event_carries_the_unfilled_quantity_and_keeps_the_fills() -> None:
    order, _ = o.fill(opened(quantity=10), 4, D("100"), "t", at=T0)
    cancelled, event = o.cancel(order, at=T0 + timedelta(seconds=1), reason="user")
    assert cancelled.status is OrderStatus.CANCELLED
    assert cancelled.filled_quantity == 4
    assert event.quantity == 6
    assert event.reason == "user"


def test_new_order_can_be_cancelled_or_rejected_before_acceptance() -> None:
    assert o.cancel(make(), at=T0)[0].status is OrderStatus.CANCELLED
    assert o.reject(make(), at=T0, reason="funds")[0].status is OrderStatus.REJECTED


def test_naive_event_time_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        o.accept(make(), at=datetime(2025, 1, 2))
    assert code_of(exc) is ErrorCode.ORDER_BAD_TIME


def test_modify_changes_quantity_and_price_and_keeps_status() -> None:
    order, _ = o.fill(opened(quantity=10), 4, D("100"), "t", at=T0)
    modified, event = o.modify(order, at=T0, quantity=6, limit_price=D("101.00"))
    assert (modified.quantity, modified.limit_price) == (6, D("101.00"))
    assert modified.status is OrderStatus.PARTIALLY_FILLED
    assert event.action is OrderAction.MODIFY
    assert event.from_status is event.to_status


@pytest.mark.parametrize("quantity", [4, 3])
def test_modify_cannot_take_quantity_to_or_below_the_filled_quantity(quantity: int) -> None:
    order, _ = o.fill(opened(quantity=10), 4, D("100"), "t", at=T0)
    with pytest.raises(InvalidState) as exc:
        o.modify(order, at=T0, quantity=quantity)
    assert code_of(exc) is ErrorCode.ORDER_MODIFY_BELOW_FILLED


def test_modify_rechecks_prices() -> None:
    with pytest.raises(InvalidInput) as exc:
        o.modify(opened(), at=T0, limit_price=D("-1"))
    assert code_of(exc) is ErrorCode.ORDER_BAD_PRICE
    with pytest.raises(InvalidInput) as exc:
        o.modify(opened(order_type=OrderType.MARKET, limit=None), at=T0, limit_price=D("10"))
    assert code_of(exc) is ErrorCode.ORDER_PRICE_NOT_ALLOWED


def test_trigger_marks_a_stop_order_once() -> None:
    order = opened(order_type=OrderType.SL_M, limit=None, stop="105.00")
    triggered, event = o.trigger(order, at=T0)
    assert triggered.triggered
    assert event.action is OrderAction.TRIGGER
    with pytest.raises(InvalidState) as exc:
        o.trigger(triggered, at=T0)
    assert code_of(exc) is ErrorCode.ORDER_NOT_TRIGGERABLE


def test_trigger_is_refused_for_a_limit_order() -> None:
    with pytest.raises(InvalidState) as exc:
        o.trigger(opened(), at=T0)
    assert code_of(exc) is ErrorCode.ORDER_NOT_TRIGGERABLE


# --- construction and validation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_type", "limit", "stop", "code"),
    [
        (OrderType.LIMIT, None, None, ErrorCode.ORDER_PRICE_MISSING),
        (OrderType.SL, "100", None, ErrorCode.ORDER_PRICE_MISSING),
        (OrderType.SL, None, "100", ErrorCode.ORDER_PRICE_MISSING),
        (OrderType.SL_M, None, None, ErrorCode.ORDER_PRICE_MISSING),
        (OrderType.MARKET, "100", None, ErrorCode.ORDER_PRICE_NOT_ALLOWED),
        (OrderType.MARKET, None, "100", ErrorCode.ORDER_PRICE_NOT_ALLOWED),
        (OrderType.LIMIT, "100", "99", ErrorCode.ORDER_PRICE_NOT_ALLOWED),
        (OrderType.SL_M, "100", "99", ErrorCode.ORDER_PRICE_NOT_ALLOWED),
        (OrderType.LIMIT, "0", None, ErrorCode.ORDER_BAD_PRICE),
        (OrderType.LIMIT, "NaN", None, ErrorCode.ORDER_BAD_PRICE),
    ],
)
def test_order_type_and_prices_must_agree(
    order_type: OrderType, limit: str | None, stop: str | None, code: ErrorCode
) -> None:
    with pytest.raises(InvalidInput) as exc:
        make(order_type, limit=limit, stop=stop)
    assert code_of(exc) is code


@pytest.mark.parametrize("quantity", [0, -3])
def test_order_quantity_must_be_positive(quantity: int) -> None:
    with pytest.raises(InvalidInput) as exc:
        make(quantity=quantity)
    assert code_of(exc) is ErrorCode.ORDER_BAD_QUANTITY


def test_valid_order_passes_validation() -> None:
    o.validate_order(make(limit="100.05"), SPEC, reference_price=D("100"))


def test_quantity_must_be_whole_lots() -> None:
    spec = replace(SPEC, lot_size=25)
    o.validate_order(make(quantity=50), spec)
    with pytest.raises(InvalidInput) as exc:
        o.validate_order(make(quantity=30), spec)
    assert code_of(exc) is ErrorCode.ORDER_BAD_QUANTITY
    assert exc.value.details["lot_size"] == 25


def test_price_off_tick_is_refused_with_the_field_named() -> None:
    with pytest.raises(InvalidInput) as exc:
        o.validate_order(make(OrderType.SL, limit="100.05", stop="100.03"), SPEC)
    assert code_of(exc) is ErrorCode.ORDER_PRICE_OFF_TICK
    assert exc.value.details["field"] == "stop_price"


def test_price_outside_the_band_is_refused_and_no_band_without_a_reference() -> None:
    order = make(limit="130.00")
    o.validate_order(order, SPEC)
    with pytest.raises(InvalidInput) as exc:
        o.validate_order(order, SPEC, reference_price=D("100"))
    assert code_of(exc) is ErrorCode.ORDER_OUTSIDE_BAND
    assert exc.value.details["high"] == "120.00"


@pytest.mark.parametrize(
    ("side", "limit", "stop", "ok"),
    [
        (Side.BUY, "101", "100", True),
        (Side.BUY, "99", "100", False),
        (Side.SELL, "99", "100", True),
        (Side.SELL, "101", "100", False),
    ],
)
def test_stop_limit_price_must_not_be_on_the_wrong_side_of_the_stop(
    side: Side, limit: str, stop: str, ok: bool
) -> None:
    order = make(OrderType.SL, side=side, limit=limit, stop=stop)
    if ok:
        o.validate_order(order, SPEC)
        return
    with pytest.raises(InvalidInput) as exc:
        o.validate_order(order, SPEC)
    assert code_of(exc) is ErrorCode.ORDER_STOP_LIMIT_MISMATCH


def test_delivery_sell_only_against_free_holdings() -> None:
    sell = make(side=Side.SELL, quantity=10, product=Product.CNC)
    o.check_holdings(sell, 10)
    with pytest.raises(InvalidInput) as exc:
        o.check_holdings(sell, 9)
    assert code_of(exc) is ErrorCode.ORDER_INSUFFICIENT_HOLDINGS
    o.check_holdings(replace(sell, product=Product.MIS), 0)  # intraday short is allowed
    o.check_holdings(make(product=Product.CNC), 0)  # buys need no holdings


def test_worst_case_price_is_the_limit_or_the_protected_market_on_the_tick() -> None:
    assert o.worst_case_price(make(limit="99.50"), D("100"), SPEC) == D("99.50")
    market_buy = make(OrderType.MARKET, limit=None)
    assert o.worst_case_price(market_buy, D("100.01"), SPEC) == D("105.05")
    stop_buy = make(OrderType.SL_M, limit=None, stop="110.00")
    assert o.worst_case_price(stop_buy, D("100"), SPEC) == D("115.50")
    market_sell = make(OrderType.MARKET, side=Side.SELL, limit=None)
    assert o.worst_case_price(market_sell, D("100.01"), SPEC) == D("95.00")


# --- properties ---------------------------------------------------------------------------------

steps = st.lists(
    st.tuples(
        st.sampled_from(sorted(ACTIONS)),
        st.integers(min_value=1, max_value=12),
        st.decimals(min_value="0.05", max_value="5000", places=2),
    ),
    max_size=30,
)


@settings(max_examples=300)
@given(quantity=st.integers(min_value=1, max_value=10), steps=steps)
def test_random_sequences_keep_the_state_machine_and_exact_average(
    quantity: int, steps: list[tuple[str, int, Decimal]]
) -> None:
    order = make(OrderType.SL, quantity=quantity, limit="100", stop="100")
    fills: list[tuple[int, Decimal]] = []
    for action, n, price in steps:
        before = order
        try:
            if action == "fill":
                order, event = o.fill(order, n, price, f"t{len(fills)}", at=T0)
                fills.append((n, price))
            elif action == "modify":
                order, event = o.modify(order, at=T0, quantity=n, limit_price=price)
            else:
                order, event = ACTIONS[action](order)
        except DomainError as exc:
            error: ErrorCode | None = exc.code
        else:
            error = None
        if error is not None:
            assert order is before
            assert (error is ErrorCode.ORDER_NOT_LIVE) == (before.status in o.TERMINAL_STATUSES)
            continue
        assert before.status not in o.TERMINAL_STATUSES
        assert (event.from_status, event.to_status) == (before.status, order.status)
        assert 0 <= order.filled_quantity <= order.quantity
        assert (order.filled_quantity == order.quantity) == (order.status is OrderStatus.FILLED)
    assert order.filled_quantity == sum(n for n, _ in fills)
    assert order.filled_value == sum((n * p for n, p in fills), D(0))
    if fills:
        assert order.average_fill_price == order.filled_value / order.filled_quantity
        assert min(p for _, p in fills) <= order.average_fill_price <= max(p for _, p in fills)
