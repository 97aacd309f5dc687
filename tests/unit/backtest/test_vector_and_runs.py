"""The vectorized path equals the event-driven engine; runs are reproducible; money invariants
hold for any order sequence (hypothesis)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantdesk.backtest.costs import trade_date
from quantdesk.backtest.data import load_dataset
from quantdesk.backtest.engine import EventEngine
from quantdesk.backtest.runner import BacktestRequest, run_backtest
from quantdesk.backtest.vector import run_vector
from quantdesk.core.charges import CncFill, default_calculator
from quantdesk.core.positions import Fill, rebuild
from quantdesk.market.store import BarStore
from quantdesk.market.synthetic import generate_bars
from quantdesk.strategy.base import Strategy
from quantdesk.strategy.builtin import DonchianBreakout, RsiMeanReversion, SmaCross
from quantdesk.strategy.context import Context
from quantdesk.strategy.registry import Registry

from .conftest import SHARED, config, daily_frame, sessions, with_specs

SYM = "NSE:SYN"


@pytest.fixture(scope="module")
def minute_store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    store = BarStore(tmp_path_factory.mktemp("bars"))
    store.write(SYM, generate_bars(SYM, date(2024, 1, 1), date(2024, 3, 31), seed=3), "1m")
    return store


CASES = [
    (SmaCross, {"fast": 10, "slow": 50}),
    (SmaCross, {"fast": 3, "slow": 7}),
    (RsiMeanReversion, {"period": 14, "lower": 35, "upper": 65}),
    (DonchianBreakout, {"entry": 20, "exit": 10}),
]


def _fills(run: object) -> list[tuple[int, str, int, Decimal, Decimal]]:
    return [(f.index, str(f.side), f.quantity, f.price, f.fees) for f in run.book.fills]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("cls", "params"), CASES, ids=lambda v: getattr(v, "name", str(v)))
@pytest.mark.parametrize("costs", ["bps:3", "bps:0"])
def test_vector_and_event_give_the_same_fills_on_minute_bars(
    minute_store: BarStore, cls: type[Strategy], params: dict[str, int], costs: str
) -> None:
    data = load_dataset(minute_store, [SYM], "5m", date(2024, 1, 1), date(2024, 3, 31))
    cfg = with_specs(config(costs, slippage_ticks=1), data)
    event = EventEngine(cls(params), data, cfg).run()
    vector = run_vector(cls(params), data, cfg)
    assert len(event.book.fills) > 10
    assert _fills(event) == _fills(vector)
    assert event.book.cash == vector.book.cash


@pytest.fixture(scope="module")
def dated_store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    """Minute bars on dates the shipped charges schedule covers (from 2024-10-01)."""
    store = BarStore(tmp_path_factory.mktemp("dated"))
    store.write(SYM, generate_bars(SYM, date(2025, 1, 1), date(2025, 1, 31), seed=5), "1m")
    return store


def test_vector_and_event_recharge_a_cnc_buy_sold_the_same_day_as_intraday(
    dated_store: BarStore,
) -> None:
    data = load_dataset(dated_store, [SYM], "5m", date(2025, 1, 1), date(2025, 1, 31))
    cfg = with_specs(config("india", slippage_ticks=1), data)
    params = {"fast": 3, "slow": 7}
    event = EventEngine(SmaCross(params), data, cfg).run()
    vector = run_vector(SmaCross(params), data, cfg)
    assert _fills(event) == _fills(vector)
    assert event.book.cash == vector.book.cash
    # The fills carry their delivery charges; the cash also took each day's adjustment (the
    # same-day quantity recharged as intraday, as the OMS posts it).
    calc = default_calculator()
    days: dict[date, list[CncFill]] = {}
    for f in event.book.fills:
        days.setdefault(trade_date(f.time), []).append(
            CncFill(f.order_id, f.side, f.quantity, f.price)
        )
    adjustment = sum(
        (calc.cnc_day("NSE", d, fs).adjustment.total for d, fs in days.items()), Decimal(0)
    )
    assert adjustment < 0  # the strategy trades in and out within days: refunds
    gross = sum((-f.signed_quantity * f.price for f in event.book.fills), Decimal(0))
    fees = sum((f.fees for f in event.book.fills), Decimal(0))
    assert event.book.cash == Decimal(1_000_000) + gross - fees - adjustment


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/market is not present")
@pytest.mark.parametrize(("cls", "params"), CASES, ids=lambda v: getattr(v, "name", str(v)))
def test_vector_and_event_agree_on_real_nse_bars(
    tmp_path: Path, cls: type[Strategy], params: dict[str, int]
) -> None:
    frame = pd.read_parquet(SHARED / "nse_daily_nifty50_upstox.parquet")
    frame = frame[frame["symbol"] == "RELIANCE"].copy()
    frame["timestamp"] = frame["timestamp"].dt.tz_localize("Asia/Kolkata") + pd.Timedelta(
        hours=9, minutes=15
    )
    store = BarStore(tmp_path)
    store.write("NSE:RELIANCE", frame, "1d")
    data = load_dataset(store, ["NSE:RELIANCE"], "1d", date(2020, 10, 1), date(2025, 9, 30))
    cfg = with_specs(config("bps:5"), data)
    event = EventEngine(cls(params), data, cfg).run()
    vector = run_vector(cls(params), data, cfg)
    assert _fills(event) == _fills(vector)


def test_the_same_run_twice_gives_identical_results(minute_store: BarStore) -> None:
    request = BacktestRequest(
        strategy="sma_cross",
        symbols=[SYM],
        interval="15m",
        start=date(2024, 1, 1),
        end=date(2024, 3, 31),
        costs="bps:3",
        params={"fast": 5, "slow": 20},
    )
    first = run_backtest(request, store=minute_store, registry=Registry(None))
    second = run_backtest(request, store=minute_store, registry=Registry(None))
    assert first.fills_table() == second.fills_table()
    assert first.final_equity == second.final_equity
    assert first.equity.equals(second.equity)
    assert first.metrics == second.metrics
    for key in ("source_hash", "data_fingerprint", "code_version", "fill_model", "seed"):
        assert first.run[key] == second.run[key]
    assert first.run["run_id"] != second.run["run_id"]


def test_result_equity_is_cash_plus_positions_at_the_close(minute_store: BarStore) -> None:
    request = BacktestRequest(
        strategy="rsi_mean_reversion",
        symbols=[SYM],
        interval="15m",
        start=date(2024, 1, 1),
        end=date(2024, 2, 28),
        costs="bps:3",
    )
    result = run_backtest(request, store=minute_store, registry=Registry(None))
    assert len(result.fills) > 4
    assert result.equity.iloc[-1] == pytest.approx(float(result.final_equity), abs=1e-6)
    trips = result.round_trips
    net = sum((t.net_pnl for t in trips), Decimal(0))
    open_qty = result.positions[SYM].iloc[-1]
    if open_qty == 0:
        assert result.final_equity - Decimal(1_000_000) == net


class RandomOrders(Strategy):
    name = "random_orders"

    def __init__(self, moves: list[tuple[int, float, str]]) -> None:
        super().__init__({})
        self.moves = {bar: (pct, kind) for bar, pct, kind in moves}
        self.i = -1

    def on_bar(self, ctx: Context) -> None:
        self.i += 1
        move = self.moves.get(self.i)
        if move is None:
            return
        pct, kind = move
        if kind == "target":
            ctx.order_target_percent(SYM, pct)
        else:
            ctx.order_target_quantity(SYM, int(pct * 100))


moves = st.lists(
    st.tuples(
        st.integers(0, 39),
        st.floats(0, 1.5, allow_nan=False),
        st.sampled_from(["target", "qty"]),
    ),
    max_size=25,
)
prices = st.lists(
    st.floats(50, 150, allow_nan=False).map(lambda x: round(x, 1)), min_size=40, max_size=40
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(moves=moves, closes=prices, bps=st.sampled_from(["bps:0", "bps:3", "bps:25"]))
def test_money_invariants_hold_for_any_orders(
    tmp_path_factory: pytest.TempPathFactory, moves: list, closes: list[float], bps: str
) -> None:
    """Cash never goes negative; positions equal the fold of the fills; cash equals the initial
    cash plus every fill's cash flow less its fees."""
    store = BarStore(tmp_path_factory.mktemp("h"))
    days = sessions(date(2025, 1, 6), len(closes))
    opens = [closes[0], *closes[:-1]]
    rows = [(o, max(o, c) + 1, min(o, c) - 1, c) for o, c in zip(opens, closes, strict=True)]
    store.write(SYM, daily_frame(days, rows), "1d")
    data = load_dataset(store, [SYM], "1d", days[0], days[-1])
    r = EventEngine(RandomOrders(moves), data, with_specs(config(bps, cash=100_000), data)).run()
    book = r.book
    assert book.cash >= 0
    fills = [Fill(f.symbol, f.side, f.quantity, f.price, f.fees) for f in book.fills]
    pos = rebuild(SYM, fills)
    assert pos.quantity == book.net.get(SYM, 0) == book.position(SYM, "CNC").quantity  # type: ignore[arg-type]
    flows = sum((f.cash_flow - f.fees for f in fills), Decimal(0))
    assert book.cash == Decimal(100_000) + flows
    # Every fill's order went through the state machine to a consistent final state.
    for o in book.orders:
        filled = sum(f.quantity for f in book.fills if f.order_id == o.id)
        assert filled == o.filled_quantity
    assert np.all(np.asarray(r.dataset.present[SYM]))
