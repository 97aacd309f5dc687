"""The event-driven engine's conventions, each on hand-made bars with hand-computed results."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, time
from decimal import Decimal
from typing import Any

import pytest

from quantdesk.backtest.engine import EventEngine, StrategyFailed
from quantdesk.core.charges import default_calculator
from quantdesk.core.orders import OrderStatus
from quantdesk.market.store import BarStore
from quantdesk.strategy.base import Strategy, at
from quantdesk.strategy.context import Context, FillEvent, OrderUpdate

from .conftest import Loader, config, daily_frame, minute_frame, sessions, with_specs

SYM = "NSE:TEST"
Action = Callable[[Context], Any]


class Script(Strategy):
    """Runs ``actions[i]`` at bar i; records what it saw."""

    name = "script"

    def __init__(self, actions: dict[int, Action]) -> None:
        super().__init__({})
        self.actions = actions
        self.i = -1
        self.seen: list[tuple[float, int, Decimal]] = []
        self.fills: list[FillEvent] = []
        self.updates: list[OrderUpdate] = []
        self.results: dict[int, Any] = {}

    def on_bar(self, ctx: Context) -> None:
        self.i += 1
        self.seen.append((ctx.close(SYM), ctx.position(SYM), ctx.cash))
        if self.i in self.actions:
            self.results[self.i] = self.actions[self.i](ctx)

    def on_fill(self, ctx: Context, fill: FillEvent) -> None:
        self.fills.append(fill)

    def on_order_update(self, ctx: Context, order: OrderUpdate) -> None:
        self.updates.append(order)


def _daily(store: BarStore, rows: list[tuple[float, float, float, float]]) -> list[date]:
    days = sessions(date(2025, 1, 6), len(rows))
    store.write(SYM, daily_frame(days, rows), "1d")
    return days


ROWS = [
    (100.0, 101.0, 99.0, 100.0),
    (102.0, 104.0, 101.0, 103.0),
    (103.0, 106.0, 102.0, 105.0),
    (104.0, 105.0, 95.0, 96.0),
    (97.0, 99.0, 96.0, 98.0),
]


def run(store: BarStore, load: Loader, strategy: Strategy, rows: list[Any], cfg: Any = None) -> Any:
    days = _daily(store, rows)
    data = load([SYM], "1d", days[0], days[-1])
    engine_run = EventEngine(strategy, data, with_specs(cfg or config(), data)).run()
    return engine_run


def test_market_order_fills_at_next_bars_open(store: BarStore, load: Loader) -> None:
    s = Script({0: lambda ctx: ctx.buy(SYM, 10)})
    r = run(store, load, s, ROWS)
    (fill,) = r.book.fills
    assert (fill.index, fill.quantity, fill.price) == (1, 10, Decimal("102.00"))
    assert s.seen[0][1] == 0 and s.seen[1][1] == 10  # the position shows at the next on_bar
    assert r.book.cash == Decimal(1_000_000) - 10 * Decimal("102.00")


def test_order_on_last_bar_of_data_stays_open(store: BarStore, load: Loader) -> None:
    s = Script({4: lambda ctx: ctx.buy(SYM, 10)})
    r = run(store, load, s, ROWS)
    assert r.book.fills == []
    assert [o.status for o in r.book.orders] == [OrderStatus.OPEN]


def test_limit_buy_fills_only_when_a_later_bar_trades_through(
    store: BarStore, load: Loader
) -> None:
    # Placed at bar 1's close with limit 96: bar 2's low 102 does not reach it; bar 3's low 95
    # trades through, so it fills at the limit. Its own bar (1, low 101) never counts.
    s = Script(
        {1: lambda ctx: ctx.buy(SYM, 5, order_type="LIMIT", limit_price=96, time_in_force="DAY")}
    )
    r = run(store, load, s, ROWS)
    # Daily bars: a DAY order placed on a session's last bar carries to the next session only;
    # it expires at bar 2's close, before bar 3.
    assert r.book.fills == []
    assert r.book.orders[0].status is OrderStatus.EXPIRED


def test_limit_fills_at_the_limit_on_the_next_bar(store: BarStore, load: Loader) -> None:
    s = Script({2: lambda ctx: ctx.buy(SYM, 5, order_type="LIMIT", limit_price=Decimal("96.50"))})
    r = run(store, load, s, ROWS)
    (fill,) = r.book.fills
    assert (fill.index, fill.price) == (3, Decimal("96.50"))
    assert s.updates[-1].status == "FILLED"


def test_limit_opening_through_fills_at_the_open(store: BarStore, load: Loader) -> None:
    s = Script(
        {3: lambda ctx: ctx.sell(SYM, 0) or ctx.buy(SYM, 5, order_type="LIMIT", limit_price=99)}
    )
    r = run(store, load, s, ROWS)
    (fill,) = r.book.fills
    assert (fill.index, fill.price) == (4, Decimal("97.00"))  # opened below the limit


def test_stop_market_triggers_on_the_path(store: BarStore, load: Loader) -> None:
    def enter(ctx: Context) -> None:
        ctx.buy(SYM, 10)

    def protect(ctx: Context) -> None:
        ctx.sell(SYM, 10, order_type="SL-M", stop_price=Decimal("100"), time_in_force="DAY")

    s = Script({0: enter, 2: protect})
    r = run(store, load, s, ROWS)
    buy, sell = r.book.fills
    assert (buy.index, buy.price) == (1, Decimal("102.00"))
    # Bar 3 opens at 104 and trades down to 95: the stop at 100 triggers and fills at 100.
    assert (sell.index, sell.price, sell.quantity) == (3, Decimal("100.00"), 10)


def test_order_target_percent_sizes_at_the_close_with_the_cost_rate(
    store: BarStore, load: Loader
) -> None:
    s = Script({0: lambda ctx: ctx.order_target_percent(SYM, 0.5)})
    r = run(store, load, s, ROWS, config("bps:10"))
    (fill,) = r.book.fills
    # floor(1,000,000 * 0.5 / (100 * 1.001)) = 4995
    assert fill.quantity == 4995
    assert fill.fees == (Decimal("102.00") * 4995 * Decimal("0.001")).quantize(Decimal("0.01"))
    assert r.book.cash == Decimal(1_000_000) - Decimal("102.00") * 4995 - fill.fees


def test_a_buy_the_cash_cannot_pay_is_reduced_at_the_fill_price(
    store: BarStore, load: Loader
) -> None:
    # Sized at bar 0's close 100 for all the equity; bar 1 opens at 102: only what the cash
    # affords at 102 (with 3 bps) fills.
    s = Script({0: lambda ctx: ctx.order_target_percent(SYM, 1.0)})
    r = run(store, load, s, ROWS, config("bps:3"))
    (fill,) = r.book.fills
    assert fill.quantity == int(Decimal(1_000_000) / (Decimal("102.00") * Decimal("1.0003")))
    assert r.book.orders[0].quantity == fill.quantity  # the order was reduced, then filled
    assert r.book.orders[0].status is OrderStatus.FILLED
    assert r.book.cash >= 0


def test_bps_costs_are_rounded_half_up_to_the_paisa(store: BarStore, load: Loader) -> None:
    s = Script({0: lambda ctx: ctx.buy(SYM, 7), 2: lambda ctx: ctx.sell(SYM, 7)})
    r = run(store, load, s, ROWS, config("bps:2.5"))
    buy, sell = r.book.fills
    # 7 x 102 x 0.00025 = 0.1785 -> 0.18; 7 x 104 x 0.00025 = 0.182 -> 0.18
    assert (buy.fees, sell.fees) == (Decimal("0.18"), Decimal("0.18"))
    assert r.book.cash == Decimal(1_000_000) - 714 - Decimal("0.18") + 728 - Decimal("0.18")


def test_india_costs_match_the_charges_calculator(store: BarStore, load: Loader) -> None:
    # Dates inside the shipped schedule (from 2024-10-01).
    rows = ROWS
    days = sessions(date(2025, 3, 3), len(rows))
    store.write(SYM, daily_frame(days, rows), "1d")
    data = load([SYM], "1d", days[0], days[-1])
    s = Script({0: lambda ctx: ctx.buy(SYM, 100), 2: lambda ctx: ctx.sell(SYM, 100)})
    r = EventEngine(s, data, with_specs(config("india"), data)).run()
    buy, sell = r.book.fills
    calc = default_calculator()
    breakdown = calc.estimate("equity_delivery", "NSE", buy.price, sell.price, 100, days[1])
    # The round trip's statutory charges equal the calculator's, the DP charge included.
    total = buy.fees + sell.fees
    assert buy.charges.stamp_duty > 0 and sell.charges.dp_charge > 0
    assert abs(total - breakdown.charges.total) <= Decimal("1.00")  # STT/stamp round per order
    assert sell.charges.dp_charge == calc.dp_charges(days[3]).total


def test_a_strategy_cannot_see_the_future(store: BarStore, load: Loader) -> None:
    seen: list[tuple[int, float]] = []

    class Peek(Strategy):
        name = "peek"

        def on_bar(self, ctx: Context) -> None:
            hist = ctx.history(SYM, 1000)
            assert hist["time"].iloc[-1] == ctx.time
            seen.append((len(hist), float(hist["close"].iloc[-1])))

    run(store, load, Peek(), ROWS)
    assert seen == [(k + 1, ROWS[k][3]) for k in range(len(ROWS))]


def test_decisions_do_not_depend_on_later_bars(tmp_path: Any) -> None:
    """Two datasets equal up to bar 3 and different after: the same orders up to bar 3."""
    from quantdesk.backtest.data import load_dataset
    from quantdesk.strategy.builtin import SmaCross

    outcomes = []
    for tail in ([(98.0, 99.0, 97.0, 98.0)] * 6, [(150.0, 160.0, 140.0, 155.0)] * 6):
        st = BarStore(tmp_path / f"s{len(outcomes)}")
        rows = [*ROWS, *ROWS, *tail]
        days = sessions(date(2025, 1, 6), len(rows))
        st.write(SYM, daily_frame(days, rows), "1d")
        data = load_dataset(st, [SYM], "1d", days[0], days[-1])
        r = EventEngine(SmaCross({"fast": 2, "slow": 3}), data, with_specs(config(), data)).run()
        outcomes.append([(f.index, f.side, f.quantity) for f in r.book.fills if f.index <= 10])
    assert outcomes[0] == outcomes[1]


def test_order_on_a_sessions_last_bar_fills_at_the_next_sessions_open(
    store: BarStore, load: Loader
) -> None:
    d1, d2 = sessions(date(2025, 1, 6), 2)
    store.write(SYM, minute_frame(d1, [100.0, 101.0, 102.0], start=time(15, 27)), "1m")
    store.write(SYM, minute_frame(d2, [110.0, 111.0]), "1m")
    data = load([SYM], "1m", d1, d2)
    s = Script({2: lambda ctx: ctx.buy(SYM, 3)})  # at the 15:29 bar, the session's last
    r = EventEngine(s, data, with_specs(config(), data)).run()
    (fill,) = r.book.fills
    assert fill.index == 3 and fill.price == Decimal("110.00")  # next session's first open
    assert fill.time.astimezone(minute_frame(d2, [1.0]).timestamp[0].tzinfo).time() == time(9, 15)


def test_day_orders_placed_before_the_last_bar_expire_at_the_close(
    store: BarStore, load: Loader
) -> None:
    d1, d2 = sessions(date(2025, 1, 6), 2)
    store.write(SYM, minute_frame(d1, [100.0, 101.0, 102.0], start=time(15, 27)), "1m")
    store.write(SYM, minute_frame(d2, [90.0, 89.0]), "1m")
    data = load([SYM], "1m", d1, d2)
    s = Script({0: lambda ctx: ctx.buy(SYM, 3, order_type="LIMIT", limit_price=95)})
    r = EventEngine(s, data, with_specs(config(), data)).run()
    assert r.book.fills == []  # would have filled next morning, but it expired at the close
    assert r.book.orders[0].status is OrderStatus.EXPIRED
    assert s.updates[-1].reason == "expired at the session close"


def test_mis_positions_are_squared_off_at_the_cutoff(store: BarStore, load: Loader) -> None:
    (d1,) = sessions(date(2025, 1, 6), 1)
    closes = [100.0 + k for k in range(12)]  # 15:15 .. 15:26
    store.write(SYM, minute_frame(d1, closes, start=time(15, 15)), "1m")
    data = load([SYM], "1m", d1, d1)
    s = Script(
        {
            0: lambda ctx: ctx.buy(SYM, 10, product="MIS"),
            8: lambda ctx: ctx.buy(SYM, 1, product="MIS"),  # after the 15:20 cut-off
        }
    )
    r = EventEngine(s, data, with_specs(config(), data)).run()
    buy, square = r.book.fills
    assert (buy.index, buy.price) == (1, Decimal("100.00"))
    # The 15:19 bar ends at the 15:20 cut-off (close - 10 min): closed at its close, 104.
    assert (square.index, square.side.value, square.price, square.tag) == (
        4,
        "SELL",
        Decimal("104.00"),
        "square-off",
    )
    assert r.book.net[SYM] == 0
    assert s.results[8] is None  # refused after the square-off
    assert s.updates[-1].status == "REJECTED"


def test_cnc_sell_without_holding_is_rejected(store: BarStore, load: Loader) -> None:
    s = Script({0: lambda ctx: ctx.sell(SYM, 5)})
    r = run(store, load, s, ROWS)
    assert r.book.fills == [] and s.results[0] is None
    assert s.updates[0].status == "REJECTED"


def test_scheduled_callbacks_run_once_per_session(store: BarStore, load: Loader) -> None:
    d1, d2 = sessions(date(2025, 1, 6), 2)
    store.write(SYM, minute_frame(d1, [100.0] * 5, start=time(15, 8)), "1m")
    store.write(SYM, minute_frame(d2, [100.0] * 5, start=time(15, 8)), "1m")
    data = load([SYM], "1m", d1, d2)
    calls: list[str] = []

    class Timed(Strategy):
        name = "timed"

        @at("15:10")
        def late(self, ctx: Context) -> None:
            calls.append(ctx.time.astimezone(data.calendar.tz).strftime("%d %H:%M"))

    EventEngine(Timed(), data, with_specs(config(), data)).run()
    # The first bar ending at or after 15:10 starts at 15:09.
    assert calls == [f"{d1:%d} 15:09", f"{d2:%d} 15:09"]


def test_a_strategy_that_raises_stops_the_run_with_its_traceback(
    store: BarStore, load: Loader
) -> None:
    def boom(ctx: Context) -> None:
        raise ZeroDivisionError("bad math")

    with pytest.raises(StrategyFailed) as caught:
        run(store, load, Script({2: boom}), ROWS)
    assert "ZeroDivisionError: bad math" in caught.value.trace
    assert "boom" in caught.value.trace


def test_indicators_are_created_in_on_start_only(store: BarStore, load: Loader) -> None:
    with pytest.raises(StrategyFailed, match="on_start"):
        run(store, load, Script({1: lambda ctx: ctx.sma(SYM, 2)}), ROWS)
