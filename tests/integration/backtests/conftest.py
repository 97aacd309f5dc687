"""Backtest job fixtures: one bar store per test session (two years of synthetic 1-minute bars
of two NSE symbols), linked into each test's data dir; a strategy dir per test; helpers to
queue runs, wait for them and count rows; no run left queued or running after a test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from quantdesk.backtest.models import BacktestRunRow
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.market.store import BarStore
from quantdesk.market.synthetic import generate_bars
from quantdesk.observability.audit import AuditLog
from quantdesk.settings import Settings
from tests.conftest import AuthedUser, make_settings

BACKTESTS = "/api/v1/backtests"
SYMBOLS = ("NSE:INFY", "NSE:TCS")
FIRST, LAST = date(2023, 1, 2), date(2024, 12, 31)
# Strategies written into a test's QUANTDESK_STRATEGY_DIR.
BOOM = """
from quantdesk.strategy import Strategy


class Boom(Strategy):
    name = "boom"

    def on_bar(self, ctx):
        if ctx.position(ctx.symbols[0]) == 0:
            raise RuntimeError("kaboom on purpose")
"""
SLEEPY = '''
import time

from quantdesk.strategy import Strategy


class Sleepy(Strategy):
    """Far too slow: 5 ms a bar (only a kill stops it between progress reports)."""

    name = "sleepy"

    def on_bar(self, ctx):
        time.sleep(0.005)
'''
BUSY = '''
from quantdesk.strategy import Strategy


class Busy(Strategy):
    """About 20 microseconds of work a bar: a 1-minute run reports progress several times."""

    name = "busy"

    def on_bar(self, ctx):
        total = 0
        for k in range(600):
            total += k
        if total < 0:
            raise AssertionError
'''


@pytest.fixture(scope="session")
def market_bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two years of 1-minute bars of each symbol (daily candles are aggregated from them)."""
    root = tmp_path_factory.mktemp("backtest-bars") / "bars"
    store = BarStore(root)
    for seed, symbol in enumerate(SYMBOLS):
        store.write(symbol, generate_bars(symbol, FIRST, LAST, seed=seed), "1m")
    return root


@pytest.fixture
def settings(db_url: str, tmp_path: Path, market_bars: Path) -> Settings:
    (tmp_path / "bars").symlink_to(market_bars, target_is_directory=True)
    (tmp_path / "strategies").mkdir()
    return make_settings(db_url, tmp_path)


def write_strategy(settings: Settings, name: str, source: str) -> None:
    (settings.resolved_strategy_dir / f"{name}.py").write_text(source, encoding="utf-8")


@pytest.fixture(autouse=True)
async def _no_live_runs_left(db_url: str) -> AsyncIterator[None]:
    """A run a test leaves queued would be picked up by the next test's app: cancel them."""
    yield
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(BacktestRunRow)
                .where(BacktestRunRow.status.in_(("queued", "running")))
                .values(status="cancelled", finished_at=datetime.now(UTC))
            )
    finally:
        await engine.dispose()


def run_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "strategy": "sma_cross",
        "symbols": ["NSE:INFY"],
        "interval": "1d",
        "start": "2023-01-01",
        "end": "2024-12-31",
        "params": {"fast": 5, "slow": 20},
        "cash": "1000000",
        "costs": "bps:3",
    }
    body.update(overrides)
    return body


async def queue(
    client: httpx.AsyncClient, user: AuthedUser, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    r = await client.post(BACKTESTS, json=body or run_body(), headers=user.headers)
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"{BACKTESTS}/{r.json()['id']}"
    result: dict[str, Any] = r.json()
    return result


async def wait_for(
    client: httpx.AsyncClient,
    user: AuthedUser,
    run_id: str,
    statuses: tuple[str, ...] = ("succeeded", "failed", "cancelled"),
    within: float = 60,
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        r = await client.get(f"{BACKTESTS}/{run_id}", headers=user.headers)
        assert r.status_code == 200, r.text
        run: dict[str, Any] = r.json()
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, f"still {run['status']} after {within} s: {run}"
        await asyncio.sleep(0.1)


async def counts(db_url: str) -> tuple[int, int]:
    """(backtest rows, audit rows)."""
    engine = create_engine(db_url)
    try:
        async with create_sessionmaker(engine)() as db:
            runs = (await db.execute(select(func.count()).select_from(BacktestRunRow))).scalar_one()
            audits = (await db.execute(select(func.count()).select_from(AuditLog))).scalar_one()
            return int(runs), int(audits)
    finally:
        await engine.dispose()
