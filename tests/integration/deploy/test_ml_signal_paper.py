"""A model's signals traded on paper: ``ml_signal`` deployed against a replay of a stored day
trades from the inference service's predictions (features on each closed bar, the champion
model, signals stored with its version), and a backtest of the same day over the stored
signals makes the same fills, to the paisa."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from quantdesk.api import create_app
from quantdesk.backtest.runner import BacktestRequest, run_backtest
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.market.instruments import seed_demo_universe
from quantdesk.market.store import BarStore
from quantdesk.market.synthetic import generate_bars
from quantdesk.ml.dataset import LabelSpec, load_bars
from quantdesk.ml.pipeline import TrainRequest, train
from quantdesk.ml.serving import load_bundle
from quantdesk.ml.signals import SignalReader, SignalStore
from quantdesk.ml.tracking import Tracker
from quantdesk.orders.models import TradeRow
from quantdesk.strategy.registry import Registry
from tests.conftest import AuthedUser, UserFactory, client_for, make_settings

INFY = "NSE:INFY"  # demo universe: tick 0.10
HISTORY = (date(2025, 5, 19), date(2025, 5, 30))
DAY = date(2025, 6, 2)
MODEL = "infy-1m"
PARAMS = {"model": MODEL, "allocation": 0.5}
OHLCV = ("open", "high", "low", "close", "volume")


@pytest.mark.slow
async def test_ml_signal_on_paper_trades_the_models_signals_like_the_backtest(
    db_url: str, tmp_path: Path, make_user: UserFactory, admin: AuthedUser, monkeypatch
) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    store = BarStore(tmp_path / "bars")
    store.write(
        INFY,
        generate_bars(INFY, HISTORY[0], DAY, seed=11, start_price=1450.0, tick_size="0.10"),
        "1m",
    )
    quiet = make_settings(db_url, tmp_path, ml_workers=0)
    tracker = Tracker.from_settings(quiet)
    trained = train(
        TrainRequest(
            model="xgboost",
            symbols=[INFY],
            interval="1m",
            start=HISTORY[0],
            end=HISTORY[1],
            label=LabelSpec("forward", 5),
            folds=3,
            name=MODEL,
            costs="bps:3",
            params={"n_estimators": 60, "max_depth": 3},
        ),
        store=store,
        tracker=tracker,
    )
    tracker.set_alias(MODEL, "champion", trained.version)  # serving, not the promotion gate
    # Thresholds at the median of what the champion will say over the day (batch features equal
    # the streaming ones), so its signals cross them and the day trades.
    bundle = load_bundle(tracker, MODEL, alias="champion", dst=tmp_path / "bundle")
    bars, _ = load_bars(store, [INFY], "1m", HISTORY[0], DAY)
    panel = bundle.feature_set.compute_panel({INFY: bars[INFY][list(OHLCV)]})
    day = panel[panel.index.get_level_values("timestamp") >= pd.Timestamp(DAY, tz="Asia/Kolkata")]
    said = bundle.model.predict(day[bundle.columns].dropna())
    # Between the two distinct values around the median (a small model says few values).
    levels = np.unique(said)
    assert len(levels) >= 2, "the champion should not say one thing all day"
    k = int(np.clip(np.searchsorted(levels, np.median(said)), 1, len(levels) - 1))
    middle = float((levels[k - 1] + levels[k]) / 2)
    params = {**PARAMS, "long_threshold": middle, "exit_threshold": middle}

    engine = create_engine(db_url)
    sessions = create_sessionmaker(engine)
    async with sessions() as db:
        await seed_demo_universe(db)
    trader = await make_user()
    app = create_app(quiet)
    async with app.router.lifespan_context(app), client_for(app) as c:
        r = await c.post(
            f"/api/v1/admin/users/{trader.id}/deposits",
            json={"amount": "1000000"},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        r = await c.post(
            "/api/v1/strategies/ml_signal/deployments",
            json={"symbols": [INFY], "interval": "1m", "params": params},
            headers=trader.headers,
        )
        assert r.status_code == 201, r.text
        deployment_id = r.json()["id"]
        assert r.json()["status"] == "running", r.json()

    replay = make_settings(
        db_url,
        tmp_path,
        feed="replay",
        replay_speed=0,
        replay_sessions=1,
        replay_spread_ticks=0,
        ml_workers=0,
    )
    app = create_app(replay)
    async with app.router.lifespan_context(app), client_for(app) as c:
        feed = app.state.qd.extras["feed"]
        await asyncio.wait_for(feed.wait(), timeout=180)
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
    await engine.dispose()

    # Every bar of the day got a prediction from the champion, stored at the bar's close.
    signals = SignalStore(tmp_path / "signals").read(MODEL, INFY)
    assert len(signals) == 375
    assert set(signals["model_version"]) == {trained.version}
    assert signals["value"].between(0, 1).all()
    # The served version was checked for drift against its training distributions.
    drift = json.loads((tmp_path / "ml" / "drift" / f"{MODEL}.json").read_text())
    assert drift["version"] == trained.version
    assert drift["samples"] >= 200
    assert set(drift["psi"]) == set(trained.features)

    result = run_backtest(
        BacktestRequest(
            strategy="ml_signal",
            symbols=[INFY],
            interval="1m",
            start=DAY,
            end=DAY,
            cash=Decimal("1000000"),
            costs="india",
            params=params,
        ),
        store=store,
        registry=Registry(None),
        paper_fill_model=replay.paper_fill_model(),
        specs={INFY: InstrumentSpec(Decimal("0.10"))},
        signals=SignalReader(SignalStore(tmp_path / "signals")),
    )
    assert len(result.fills) >= 2, "the model's signals should trade the day"
    paper = [(t.side, t.quantity, t.price, t.fees, t.at) for t in trades]
    backtest = [(str(f.side), f.quantity, f.price, f.fees, f.time) for f in result.fills]
    assert paper == backtest
