"""The point of the design: one strategy, backtested over a day of stored 1-minute bars and
deployed on the paper broker against a replay of that day, makes the same orders, the same
fills (price and quantity), the same charges and the same final P&L, to the paisa.

The deployment is created over the API on a server without a feed, then the server restarts
with ``QUANTDESK_FEED=replay``: the deployment survives the restart and trades the replay."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from quantdesk.api import create_app
from quantdesk.backtest.runner import BacktestRequest, run_backtest
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.deploy.models import DeploymentRow
from quantdesk.market.instruments import seed_demo_universe
from quantdesk.market.store import BarStore
from quantdesk.market.synthetic import generate_bars
from quantdesk.orders.models import OrderRow, TradeRow
from quantdesk.strategy.registry import Registry
from quantdesk.wallet import service as wallet_service
from tests.conftest import AuthedUser, UserFactory, client_for, make_settings

INFY = "NSE:INFY"  # demo universe: tick 0.10
DAY = date(2025, 6, 2)
CASH = "1000000"

STRATEGY = '''
from pydantic import Field
from quantdesk.strategy import Context, Strategy, StrategyParams


class Params(StrategyParams):
    fast: int = Field(5, ge=1)
    slow: int = Field(15, ge=2)
    weight: float = Field(0.5, gt=0, le=1)


class ParityCross(Strategy):
    """SMA cross on one symbol with a partial allocation (a paper buy holds its worst case)."""

    name = "parity_cross"
    Params = Params

    def on_start(self, ctx: Context) -> None:
        self.symbol = ctx.symbols[0]
        self.fast = ctx.sma(self.symbol, self.params.fast)
        self.slow = ctx.sma(self.symbol, self.params.slow)
        self.fills = 0

    def on_fill(self, ctx: Context, fill) -> None:
        self.fills += 1

    def on_bar(self, ctx: Context) -> None:
        f, s = self.fast.value, self.slow.value
        if f is None or s is None:
            return
        held = ctx.position(self.symbol)
        if held == 0 and f > s:
            ctx.order_target_percent(self.symbol, self.params.weight)
        elif held > 0 and f <= s:
            ctx.order_target_quantity(self.symbol, 0)
'''


@pytest.mark.slow
async def test_backtest_and_paper_replay_agree_to_the_paisa(
    db_url: str, tmp_path: Path, make_user: UserFactory, admin: AuthedUser
) -> None:
    strategies = tmp_path / "user-strategies"
    strategies.mkdir()
    (strategies / "parity.py").write_text(STRATEGY)
    store = BarStore(tmp_path / "bars")
    store.write(
        INFY, generate_bars(INFY, DAY, DAY, seed=11, start_price=1450.0, tick_size="0.10"), "1m"
    )

    engine = create_engine(db_url)
    sessions = create_sessionmaker(engine)
    async with sessions() as db:
        await seed_demo_universe(db)
    trader = await make_user()

    # 1. Deploy on a server with no feed (nothing trades yet).
    quiet = make_settings(db_url, tmp_path, strategy_dir=strategies)
    app = create_app(quiet)
    async with app.router.lifespan_context(app), client_for(app) as c:
        r = await c.post(
            f"/api/v1/admin/users/{trader.id}/deposits",
            json={"amount": CASH},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        r = await c.post(
            "/api/v1/strategies/parity_cross/deployments",
            json={"symbols": [INFY], "interval": "1m"},
            headers=trader.headers,
        )
        assert r.status_code == 201, r.text
        deployment_id = r.json()["id"]
        assert r.json()["status"] == "running"

    # 2. Restart on a replay of the day, quotes without spread (the backtest trades bar prices).
    replay = make_settings(
        db_url,
        tmp_path,
        strategy_dir=strategies,
        feed="replay",
        replay_speed=0,
        replay_sessions=1,
        replay_spread_ticks=0,
    )
    app = create_app(replay)
    async with app.router.lifespan_context(app), client_for(app) as c:
        feed = app.state.qd.extras["feed"]
        await asyncio.wait_for(feed.wait(), timeout=120)
        r = await c.get(f"/api/v1/deployments/{deployment_id}/activity", headers=trader.headers)
        assert r.status_code == 200, r.text
        activity = r.json()
        r = await c.get(f"/api/v1/deployments/{deployment_id}", headers=trader.headers)
        assert r.json()["status"] == "running", r.json()
        assert r.json()["bars"] == 375

    async with sessions() as db:
        trades = list(
            (
                await db.execute(
                    select(TradeRow).where(TradeRow.user_id == trader.id).order_by(TradeRow.at)
                )
            ).scalars()
        )
        orders = list(
            (
                await db.execute(
                    select(OrderRow)
                    .where(OrderRow.user_id == trader.id)
                    .order_by(OrderRow.created_at)
                )
            ).scalars()
        )
        wallet = (await wallet_service.wallet(db, trader.id))["INR"]
        row = await db.get(DeploymentRow, deployment_id)
        assert row is not None and row.seq == len(orders)
    await engine.dispose()

    # 3. The same strategy backtested over the same stored day.
    result = run_backtest(
        BacktestRequest(
            strategy="parity_cross",
            symbols=[INFY],
            interval="1m",
            start=DAY,
            end=DAY,
            cash=Decimal(CASH),
            costs="india",
        ),
        store=store,
        registry=Registry(strategies),
        paper_fill_model=replay.paper_fill_model(),
        specs={INFY: InstrumentSpec(Decimal("0.10"))},
    )

    assert len(result.fills) >= 6, "the day should trade several times"
    paper_fills = [(t.side, t.quantity, t.price, t.fees, t.at) for t in trades]
    backtest_fills = [(str(f.side), f.quantity, f.price, f.fees, f.time) for f in result.fills]
    assert paper_fills == backtest_fills
    # The same orders: sides and quantities in order (the last one may be left open in both).
    assert [(o.side, o.quantity, o.status) for o in orders] == [
        (o["side"], o["quantity"], o["status"]) for o in result.orders
    ]
    charges = sum((t.fees for t in trades), Decimal(0))
    assert charges == result.charges["total"]
    assert Decimal(activity["charges"]) == charges
    # Final P&L to the paisa: cash after every fill and charge, plus what is still held.
    assert wallet.total == result.final_cash
    held = result.positions[INFY].iloc[-1]
    assert activity["positions"] == ({INFY: int(held)} if held else {})
