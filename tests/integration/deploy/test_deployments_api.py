"""Deployments over the API: validation, roles, pause/resume/stop, risk stops, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from quantdesk.api import create_app
from quantdesk.core.market import Bar
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.deploy.manager import DeploymentManager
from quantdesk.deploy.models import DeploymentRow
from quantdesk.market.instruments import seed_demo_universe
from quantdesk.settings import Settings
from tests.conftest import AuthedUser, client_for, make_settings

INFY = "NSE:INFY"
RAISES = """
from quantdesk.strategy import Context, Strategy


class Raises(Strategy):
    name = "raises"

    def on_bar(self, ctx: Context) -> None:
        raise RuntimeError("strategy bug on purpose")
"""
BUYER = """
from quantdesk.strategy import Context, Strategy


class Buyer(Strategy):
    name = "buyer"

    def on_bar(self, ctx: Context) -> None:
        ctx.buy(ctx.symbols[0], 1)
"""


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "raises.py").write_text(RAISES)
    (folder / "buyer.py").write_text(BUYER)
    return make_settings(db_url, tmp_path, strategy_dir=folder)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    engine = create_engine(settings.resolved_database_url)
    async with create_sessionmaker(engine)() as db:
        await seed_demo_universe(db)
    await engine.dispose()
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def manager(app: FastAPI) -> DeploymentManager:
    m = app.state.qd.extras["deployments"]
    assert isinstance(m, DeploymentManager)
    return m


def minute(k: int, price: str = "1500.00") -> Bar:
    ts = datetime(2025, 6, 2, 3, 45, tzinfo=UTC) + timedelta(minutes=k)
    p = Decimal(price)
    return Bar(ts, INFY, p, p, p, p, 100)


async def _count(settings: Settings) -> int:
    engine = create_engine(settings.resolved_database_url)
    async with create_sessionmaker(engine)() as db:
        n = (await db.execute(select(func.count()).select_from(DeploymentRow))).scalar_one()
    await engine.dispose()
    return int(n)


async def _deploy(
    c: httpx.AsyncClient, user: AuthedUser, name: str = "sma_cross", **body: object
) -> httpx.Response:
    payload = {"symbols": [INFY], "interval": "1m", **body}
    return await c.post(
        f"/api/v1/strategies/{name}/deployments", json=payload, headers=user.headers
    )


@pytest.mark.parametrize(
    ("name", "body", "status", "code"),
    [
        ("nope", {}, 404, "STRATEGY_NOT_FOUND"),
        ("sma_cross", {"params": {"fast": 0}}, 422, "STRATEGY_BAD_PARAMS"),
        ("sma_cross", {"params": {"speed": 1}}, 422, "STRATEGY_BAD_PARAMS"),
        ("sma_cross", {"symbols": ["NSE:NOPE"]}, 422, "DEPLOYMENT_UNKNOWN_SYMBOL"),
        ("sma_cross", {"interval": "2m"}, 422, "VALIDATION_ERROR"),
        ("sma_cross", {"symbols": []}, 422, "VALIDATION_ERROR"),
        ("sma_cross", {"colour": "red"}, 422, "VALIDATION_ERROR"),
    ],
)
async def test_bad_deployments_are_refused_and_store_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    trader: AuthedUser,
    settings: Settings,
    name: str,
    body: dict[str, object],
    status: int,
    code: str,
) -> None:
    before = await _count(settings)
    r = await _deploy(client, trader, name, **body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert await _count(settings) == before


async def test_roles(
    app: FastAPI,
    client: httpx.AsyncClient,
    trader: AuthedUser,
    viewer: AuthedUser,
    make_user: object,
) -> None:
    assert (await _deploy(client, viewer)).status_code == 403
    assert (
        await client.post("/api/v1/strategies/sma_cross/deployments", json={})
    ).status_code == 401
    r = await _deploy(client, trader)
    assert r.status_code == 201
    dep = r.json()["id"]
    other = await make_user()  # type: ignore[operator]
    assert (
        await client.get(f"/api/v1/deployments/{dep}", headers=other.headers)
    ).status_code == 404
    assert (
        await client.post(f"/api/v1/deployments/{dep}/stop", headers=other.headers)
    ).status_code == 404
    listed = (await client.get("/api/v1/deployments", headers=other.headers)).json()["items"]
    assert dep not in {d["id"] for d in listed}
    seen = (await client.get("/api/v1/deployments", headers=viewer.headers)).json()["items"]
    assert dep in {d["id"] for d in seen}  # viewers read everything


async def test_pause_resume_stop(
    app: FastAPI, client: httpx.AsyncClient, trader: AuthedUser, admin: AuthedUser
) -> None:
    await client.post(
        f"/api/v1/admin/users/{trader.id}/deposits",
        json={"amount": "100000"},
        headers=admin.headers,
    )
    dep = (await _deploy(client, trader, "buyer")).json()["id"]
    m = manager(app)
    r = await client.post(f"/api/v1/deployments/{dep}/pause", headers=trader.headers)
    assert r.json()["status"] == "paused"
    await m.deliver([minute(0)])
    assert (await client.get(f"/api/v1/deployments/{dep}", headers=trader.headers)).json()[
        "orders_sent"
    ] == 0  # paused: no orders
    r = await client.post(f"/api/v1/deployments/{dep}/resume", headers=trader.headers)
    assert r.json()["status"] == "running"
    await m.deliver([minute(1)])
    out = (await client.get(f"/api/v1/deployments/{dep}", headers=trader.headers)).json()
    assert out["orders_sent"] == 1 and out["bars"] == 1
    orders = (await client.get("/api/v1/orders", headers=trader.headers)).json()["items"]
    assert [o["client_order_id"] for o in orders] == [f"dep-{dep[:16]}-1"]
    r = await client.post(f"/api/v1/deployments/{dep}/stop", headers=trader.headers)
    assert r.json()["status"] == "stopped"
    await m.deliver([minute(2)])
    assert len((await client.get("/api/v1/orders", headers=trader.headers)).json()["items"]) == 1
    r = await client.post(f"/api/v1/deployments/{dep}/resume", headers=trader.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "DEPLOYMENT_ENDED"
    audit = await client.get(
        "/api/v1/admin/audit", params={"target_id": dep}, headers=admin.headers
    )
    assert audit.status_code == 200, audit.text
    actions = {e["action"] for e in audit.json()["items"]}
    assert {"deployment.create", "deployment.pause", "deployment.resume", "deployment.stop"} <= (
        actions
    )


async def test_a_kill_switch_stops_the_deployment(
    app: FastAPI, client: httpx.AsyncClient, trader: AuthedUser, admin: AuthedUser
) -> None:
    dep = (await _deploy(client, trader, "buyer")).json()["id"]
    r = await client.post(
        "/api/v1/risk/kill-switch",
        json={"scope": "account", "user_id": trader.id, "engaged": True, "reason": "test"},
        headers=admin.headers,
    )
    assert r.status_code in (200, 201), r.text
    await manager(app).deliver([minute(0)])
    out = (await client.get(f"/api/v1/deployments/{dep}", headers=trader.headers)).json()
    assert out["status"] == "stopped"
    assert out["error"]["code"] == "RISK_KILL_SWITCH"
    assert (await client.get("/api/v1/orders", headers=trader.headers)).json()["items"] == []


async def test_a_strategy_that_raises_fails_with_its_traceback(
    app: FastAPI, client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    dep = (await _deploy(client, trader, "raises")).json()["id"]
    await manager(app).deliver([minute(0)])
    out = (await client.get(f"/api/v1/deployments/{dep}", headers=trader.headers)).json()
    assert out["status"] == "failed"
    assert out["error"]["code"] == "STRATEGY_FAILED"
    assert "strategy bug on purpose" in out["error"]["trace"]
    assert (await client.get("/healthz")).status_code == 200  # the server goes on


async def test_a_running_deployment_survives_a_restart(
    settings: Settings, trader: AuthedUser, app: FastAPI, client: httpx.AsyncClient
) -> None:
    dep = (await _deploy(client, trader)).json()["id"]
    again = create_app(settings)
    async with again.router.lifespan_context(again), client_for(again) as c:
        await asyncio.wait_for(manager(again).restored.wait(), timeout=30)
        assert dep in manager(again).live
        r = await c.get(f"/api/v1/deployments/{dep}", headers=trader.headers)
        assert r.json()["status"] == "running"


async def test_a_deployment_trades_on_bars_built_from_live_quotes(
    app: FastAPI, client: httpx.AsyncClient, trader: AuthedUser, admin: AuthedUser
) -> None:
    """Without a replay, one-minute bars are built from the quotes on the bus."""
    from quantdesk.core.market import Quote, quote_channel

    await client.post(
        f"/api/v1/admin/users/{trader.id}/deposits",
        json={"amount": "100000"},
        headers=admin.headers,
    )
    dep = (await _deploy(client, trader, "buyer")).json()["id"]
    bus = app.state.qd.extras["bus"]
    cache = app.state.qd.extras["quote_cache"]
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    for k in range(4):  # 3 minutes close (the 4th is still open)
        px = Decimal("1500.00") + k
        q = Quote(INFY, px, px, px, 1000 * (k + 1), start + timedelta(minutes=k, seconds=5))
        await cache.set_many([q])
        await bus.publish(quote_channel(INFY), q.to_json())
    deadline = asyncio.get_running_loop().time() + 15
    out: dict[str, object] = {}
    while asyncio.get_running_loop().time() < deadline:
        out = (await client.get(f"/api/v1/deployments/{dep}", headers=trader.headers)).json()
        if out["bars"] >= 3:
            break
        await asyncio.sleep(0.1)
    assert out["bars"] >= 3, out
    assert out["orders_sent"] >= 3
