"""The backtest's cash follows the OMS's CNC same-day rule: a CNC buy sold the same day is
recharged as intraday (the fills keep their delivery charges; the cash takes the adjustment)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quantdesk.backtest.costs import BpsCosts, IndiaCosts, SameDay
from quantdesk.core.orders import Side

D = Decimal
BEL = "NSE:BEL"
OPEN = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # 09:30 in India


def test_a_same_day_round_trip_moves_cash_by_the_oms_adjustment() -> None:
    # tests/integration/orders/test_cnc_same_day.py works this day out by hand: buy 100 BEL @
    # 400.00 and sell 100 @ 404.00 under CNC; the adjustment is -61.88 (a refund).
    same_day, costs = SameDay(), IndiaCosts()
    assert same_day.cash(costs, BEL, "b", Side.BUY, 100, D("400.00"), OPEN) == 0
    sell_at = OPEN + timedelta(hours=2)
    assert same_day.cash(costs, BEL, "s", Side.SELL, 60, D("404.00"), sell_at) < 0
    refund = same_day.cash(costs, BEL, "s", Side.SELL, 40, D("404.00"), sell_at)
    assert same_day.taken[BEL] == D("-61.88") and refund < 0
    # A new day starts afresh: a sell of holdings with no same-day buy is delivery.
    assert same_day.cash(costs, BEL, "t", Side.SELL, 10, D("404.00"), OPEN + timedelta(days=1)) == 0


def test_bps_costs_have_no_same_day_rule() -> None:
    same_day = SameDay()
    assert same_day.cash(BpsCosts(D(3)), BEL, "b", Side.BUY, 10, D("400"), OPEN) == 0
    assert same_day.cash(BpsCosts(D(3)), BEL, "s", Side.SELL, 10, D("401"), OPEN) == 0
    assert same_day.days == {}
