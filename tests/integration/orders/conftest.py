"""Order test helpers: the demo universe, funded traders, quotes, and the app's OMS and paper
broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.brokers.paper import PaperBroker
from quantdesk.core.market import Quote
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.market.instruments import seed_demo_universe
from quantdesk.orders.service import Oms
from quantdesk.settings import Settings
from quantdesk.wallet import service as wallet_service
from tests.conftest import AuthedUser

ORDERS = "/api/v1/orders"
INFY = "NSE:INFY"  # demo universe: tick 0.10, lot 1, band 10%, last 1441.80


@pytest.fixture
async def universe(settings: Settings) -> None:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            await seed_demo_universe(db)
    finally:
        await engine.dispose()


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(db_url)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def paper(app: FastAPI, universe: None) -> PaperBroker:
    broker = app.state.qd.extras["paper_broker"]
    assert isinstance(broker, PaperBroker)
    return broker


@pytest.fixture
def oms(paper: PaperBroker) -> Oms:
    """The paper broker's OMS: the app's bus and quote cache."""
    return paper.oms


def quote(
    last: str,
    *,
    symbol: str = INFY,
    spread: str = "0.10",
    volume: int = 1000,
    ts: datetime | None = None,
) -> Quote:
    px, half = Decimal(last), Decimal(spread)
    return Quote(symbol, px, px - half, px + half, volume, ts or datetime.now(UTC))


async def fund(client: httpx.AsyncClient, admin: AuthedUser, user: AuthedUser, amount: str) -> None:
    r = await client.post(
        f"/api/v1/admin/users/{user.id}/deposits", json={"amount": amount}, headers=admin.headers
    )
    assert r.status_code == 201, r.text


async def wallet_of(client: httpx.AsyncClient, user: AuthedUser) -> dict[str, Decimal]:
    r = await client.get("/api/v1/wallet", headers=user.headers)
    assert r.status_code == 200, r.text
    return {k: Decimal(v) for k, v in r.json()["balances"]["INR"].items()}


async def verify_ok(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as db:
        report = await wallet_service.verify(db)
    assert report.ok, report.discrepancy


def limit_buy(qty: int = 10, price: str = "1440.00", **extra: object) -> dict[str, object]:
    return {
        "symbol": INFY,
        "side": "BUY",
        "quantity": qty,
        "order_type": "LIMIT",
        "limit_price": price,
        "product": "CNC",
        **extra,
    }
