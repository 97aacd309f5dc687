"""Strategies and backtests over HTTP, on both backends: a run from request to tearsheet with
results that agree with each other, bad input refused with a code and nothing stored, access
rules, pagination, and the request schema kept equal to the runner's."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from quantdesk.backtest.artifacts import sample_indices
from quantdesk.backtest.models import BacktestRunRow
from quantdesk.backtest.runner import BacktestRequest
from quantdesk.backtest.schemas import BacktestIn, BacktestRequestOut
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.observability.audit import AuditLog
from quantdesk.settings import Settings
from tests.conftest import AuthedUser
from tests.integration.backtests.conftest import (
    BACKTESTS,
    SLEEPY,
    counts,
    queue,
    run_body,
    wait_for,
    write_strategy,
)


async def get(client: httpx.AsyncClient, user: AuthedUser, path: str) -> httpx.Response:
    return await client.get(path, headers=user.headers)


# --- a run end to end -------------------------------------------------------------------------


async def test_a_queued_run_succeeds_and_its_results_agree_with_each_other(
    client: httpx.AsyncClient, trader: AuthedUser, db_url: str
) -> None:
    queued = await queue(client, trader)
    assert queued["status"] == "queued" and queued["progress"] == 0
    assert queued["request"]["cash"] == "1000000" and queued["request"]["engine"] == "event"
    assert queued["summary"] is None and queued["error"] is None

    run = await wait_for(client, trader, queued["id"])
    assert run["status"] == "succeeded", run
    assert run["progress"] == 1
    assert run["started_at"] and run["finished_at"] and run["finished_at"] >= run["started_at"]
    summary = run["summary"]
    assert summary["run_id"] == run["id"] and summary["strategy"] == "sma_cross"
    assert summary["metrics"]["sharpe"] is not None and "max_drawdown" in summary["metrics"]
    assert summary["fills"] > 0 and summary["round_trips"] > 0

    trades = (await get(client, trader, f"{BACKTESTS}/{run['id']}/trades")).json()
    assert len(trades["fills"]) == summary["fills"]
    assert len(trades["round_trips"]) == summary["round_trips"]
    fill = trades["fills"][0]
    assert isinstance(fill["price"], str) and Decimal(fill["price"]) > 0
    net = sum(Decimal(t["net_pnl"]) for t in trades["round_trips"])
    assert float(net) == pytest.approx(summary["metrics"]["net_pnl"], abs=0.01)

    r = await get(client, trader, f"{BACKTESTS}/{run['id']}/equity")
    points = r.json()["points"]
    assert len(points) == summary["bars"]  # fewer than max_points: every bar
    assert Decimal(points[-1]["equity"]) == pytest.approx(
        Decimal(summary["final_equity"]), abs=Decimal("0.02")
    )
    assert all(p["drawdown"] <= 0 for p in points) and points[0]["benchmark"] is not None
    assert min(p["drawdown"] for p in points) == pytest.approx(
        summary["metrics"]["max_drawdown"], abs=1e-6
    )
    few = (await get(client, trader, f"{BACKTESTS}/{run['id']}/equity?max_points=7")).json()
    assert len(few["points"]) == 7 and few["points"][-1] == points[-1]

    r = await get(client, trader, f"{BACKTESTS}/{run['id']}/report")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "sma_cross" in r.text and "<svg" in r.text
    assert "sandbox" in r.headers["content-security-policy"]

    # A finished run cannot be cancelled; creating it was audited.
    r = await client.delete(f"{BACKTESTS}/{run['id']}", headers=trader.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "BACKTEST_FINISHED"
    engine = create_engine(db_url)
    try:
        async with create_sessionmaker(engine)() as db:
            audit = (
                await db.execute(select(AuditLog).where(AuditLog.target_id == run["id"]))
            ).scalar_one()
    finally:
        await engine.dispose()
    assert audit.action == "backtest.create" and audit.actor_id == trader.id


async def test_default_india_costs_run_inside_the_schedule(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    body = run_body(start="2024-10-01", end="2024-12-31", params={"fast": 3, "slow": 8})
    del body["costs"], body["cash"]
    run = await wait_for(client, trader, (await queue(client, trader, body))["id"])
    assert run["status"] == "succeeded", run
    assert run["request"]["costs"] == "india" and run["request"]["cash"] == "1000000"
    assert "stt" in run["summary"]["charges"]


async def test_results_of_an_unfinished_run_are_a_conflict(
    client: httpx.AsyncClient, trader: AuthedUser, settings: Settings
) -> None:
    write_strategy(settings, "sleepy", SLEEPY)
    queued = await queue(client, trader, run_body(strategy="sleepy", params={}, interval="1m"))
    for part in ("trades", "equity", "report"):
        r = await get(client, trader, f"{BACKTESTS}/{queued['id']}/{part}")
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "BACKTEST_NOT_SUCCEEDED"
    r = await client.delete(f"{BACKTESTS}/{queued['id']}", headers=trader.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"


# --- bad input --------------------------------------------------------------------------------

BAD = [
    pytest.param({"strategy": "nope"}, "STRATEGY_NOT_FOUND", id="unknown strategy"),
    pytest.param({"params": {"fast": 0, "slow": 20}}, "STRATEGY_BAD_PARAMS", id="param bounds"),
    pytest.param({"params": {"fastest": 3}}, "STRATEGY_BAD_PARAMS", id="unknown param"),
    pytest.param({"params": {"fast": 30, "slow": 20}}, "STRATEGY_BAD_PARAMS", id="fast >= slow"),
    pytest.param({"start": "2024-12-31", "end": "2023-01-01"}, "BACKTEST_BAD_RANGE", id="inverted"),
    pytest.param({"start": "2019-01-01", "end": "2019-12-31"}, "BACKTEST_NO_DATA", id="no data"),
    pytest.param({"symbols": ["NSE:NOPE"]}, "BACKTEST_UNKNOWN_SYMBOL", id="unknown symbol"),
    pytest.param({"symbols": ["INFY"]}, "BACKTEST_BAD_REQUEST", id="symbol without exchange"),
    pytest.param({"symbols": ["NSE:INFY", "nse:infy"]}, "BACKTEST_DUPLICATE_SYMBOL", id="twice"),
    pytest.param({"cash": "0"}, "BACKTEST_BAD_REQUEST", id="zero cash"),
    pytest.param({"cash": -5}, "BACKTEST_BAD_REQUEST", id="negative cash number"),
    pytest.param({"costs": "bps:x"}, "BACKTEST_BAD_REQUEST", id="bad costs"),
    pytest.param({"costs": "india"}, "BACKTEST_COSTS_UNAVAILABLE", id="outside india schedule"),
    pytest.param({"benchmark": "NSE:NOPE"}, "BACKTEST_BAD_BENCHMARK", id="bad benchmark"),
    pytest.param({"interval": "2h"}, "VALIDATION_ERROR", id="unknown interval"),
    pytest.param({"colour": "blue"}, "VALIDATION_ERROR", id="unknown field"),
    pytest.param(
        {"engine": "vector", "strategy": "momentum_rotation", "params": {}},
        "BACKTEST_VECTOR_UNSUPPORTED",
        id="no vector form",
    ),
]


@pytest.mark.parametrize(("change", "code"), BAD)
async def test_bad_requests_are_refused_with_a_code_and_store_nothing(
    client: httpx.AsyncClient, trader: AuthedUser, db_url: str, change: dict[str, Any], code: str
) -> None:
    before = await counts(db_url)
    r = await client.post(BACKTESTS, json=run_body(**change), headers=trader.headers)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    assert await counts(db_url) == before


async def test_bad_params_name_the_parameter(client: httpx.AsyncClient, trader: AuthedUser) -> None:
    r = await client.post(
        BACKTESTS, json=run_body(params={"fast": 0, "slow": 20}), headers=trader.headers
    )
    details = r.json()["error"]["details"]
    assert any(e["loc"] == ["fast"] for e in details["errors"]), details


async def test_a_strategy_whose_setup_raises_is_refused(
    client: httpx.AsyncClient, trader: AuthedUser, settings: Settings, db_url: str
) -> None:
    write_strategy(
        settings,
        "grumpy",
        "from quantdesk.strategy import Strategy\n\n\nclass Grumpy(Strategy):\n"
        "    name = 'grumpy'\n\n    def __init__(self, params=None):\n"
        "        raise ZeroDivisionError('no setup today')\n",
    )
    before = await counts(db_url)
    r = await client.post(BACKTESTS, json=run_body(strategy="grumpy"), headers=trader.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "BACKTEST_STRATEGY_FAILED"
    assert "no setup today" in r.json()["error"]["message"]
    assert await counts(db_url) == before


# --- strategies -------------------------------------------------------------------------------


async def test_strategies_list_built_ins_and_user_files_and_survives_a_broken_file(
    client: httpx.AsyncClient, viewer: AuthedUser, settings: Settings
) -> None:
    write_strategy(settings, "broken", "from quantdesk.strategy import Strategy\n\nclass (:\n")
    write_strategy(settings, "sleepy", SLEEPY)
    r = await get(client, viewer, "/api/v1/strategies")
    assert r.status_code == 200, r.text
    doc = r.json()
    by_name = {s["name"]: s for s in doc["strategies"]}
    assert {"sma_cross", "rsi_mean_reversion", "sleepy"} <= set(by_name)
    sma = by_name["sma_cross"]
    assert sma["source"] == "builtin" and sma["vectorized"] is True and sma["file"] is None
    assert sma["params_schema"]["properties"]["fast"]["default"] == 10
    assert by_name["sleepy"]["source"] == "user"
    assert by_name["sleepy"]["file"].endswith("sleepy.py")
    [error] = doc["errors"]
    assert error["file"].endswith("broken.py") and error["line"] == 3
    assert "SyntaxError" in error["message"]


async def test_strategies_need_a_login(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/strategies")
    assert r.status_code == 401 and r.json()["error"]["code"] == "AUTH_MISSING_TOKEN"


# --- access -----------------------------------------------------------------------------------


async def insert_run(db_url: str, user_id: int, at: datetime, status: str = "succeeded") -> str:
    run_id = secrets.token_hex(16)
    engine = create_engine(db_url)
    try:
        async with create_sessionmaker(engine)() as db:
            db.add(
                BacktestRunRow(
                    id=run_id,
                    user_id=user_id,
                    status=status,
                    progress=1.0 if status == "succeeded" else 0.0,
                    request=BacktestRequest.model_validate(run_body()).model_dump(mode="json"),
                    created_at=at,
                    finished_at=at if status not in ("queued", "running") else None,
                )
            )
            await db.commit()
    finally:
        await engine.dispose()
    return run_id


async def test_roles_traders_see_their_own_viewers_read_all_admins_cancel_all(
    client: httpx.AsyncClient,
    trader: AuthedUser,
    make_user: Any,
    viewer: AuthedUser,
    admin: AuthedUser,
    db_url: str,
) -> None:
    other = await make_user()
    r = await client.post(BACKTESTS, json=run_body(), headers=viewer.headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN_ROLE"
    assert (await client.get(BACKTESTS)).status_code == 401

    now = datetime.now(UTC)
    mine = await insert_run(db_url, trader.id, now)
    theirs = await insert_run(db_url, other.id, now, status="queued")

    for path in ("", "/trades", "/equity", "/report"):
        r = await get(client, other, f"{BACKTESTS}/{mine}{path}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "BACKTEST_NOT_FOUND", path
    r = await client.delete(f"{BACKTESTS}/{mine}", headers=other.headers)
    assert r.status_code == 404
    listed = {run["id"] for run in (await get(client, other, BACKTESTS)).json()["items"]}
    assert theirs in listed and mine not in listed

    for reader in (viewer, admin):
        assert (await get(client, reader, f"{BACKTESTS}/{mine}")).status_code == 200
        listed = {run["id"] for run in (await get(client, reader, BACKTESTS)).json()["items"]}
        assert {mine, theirs} <= listed
    # No result files for an inserted run: readable, but its results are missing.
    r = await get(client, viewer, f"{BACKTESTS}/{mine}/trades")
    assert r.status_code == 404 and r.json()["error"]["code"] == "BACKTEST_RESULT_MISSING"

    r = await client.delete(f"{BACKTESTS}/{theirs}", headers=viewer.headers)
    assert r.status_code == 403
    r = await client.delete(f"{BACKTESTS}/{theirs}", headers=admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert r.json()["finished_at"] is not None


async def test_the_list_pages_newest_first_with_a_before_cursor(
    client: httpx.AsyncClient, make_user: Any, db_url: str
) -> None:
    user = await make_user()
    base = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    ids = [await insert_run(db_url, user.id, base + timedelta(minutes=i)) for i in range(5)]
    ids.append(await insert_run(db_url, user.id, base + timedelta(minutes=4)))  # same time

    seen: list[str] = []
    url = f"{BACKTESTS}?limit=2"
    while True:
        page = (await get(client, user, url)).json()
        seen += [run["id"] for run in page["items"]]
        if page["next_cursor"] is None:
            break
        url = f"{BACKTESTS}?limit=2&before={page['next_cursor']}"
    tied = sorted(ids[4:], reverse=True)
    assert seen == [*tied, ids[3], ids[2], ids[1], ids[0]]

    r = await get(client, user, f"{BACKTESTS}?status=queued")
    assert r.json()["items"] == []
    r = await get(client, user, f"{BACKTESTS}?before=nonsense")
    assert r.status_code == 422
    r = await get(client, user, f"{BACKTESTS}?limt=2")
    assert r.json()["error"]["code"] == "UNKNOWN_QUERY_PARAMETER"


async def test_a_run_id_that_is_not_an_id_is_a_422(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    r = await get(client, trader, f"{BACKTESTS}/not-a-run")
    assert r.status_code == 422
    r = await get(client, trader, f"{BACKTESTS}/{'0' * 32}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "BACKTEST_NOT_FOUND"


# --- pure parts -------------------------------------------------------------------------------


def test_the_api_request_has_the_runner_request_fields_and_defaults() -> None:
    assert list(BacktestIn.model_fields) == list(BacktestRequest.model_fields)
    assert list(BacktestRequestOut.model_fields) == list(BacktestRequest.model_fields)
    body = BacktestIn(strategy="s", symbols=["NSE:INFY"], start="2024-01-01", end="2024-02-01")
    through_api = BacktestRequest.model_validate(body.model_dump())
    direct = BacktestRequest(
        strategy="s", symbols=["NSE:INFY"], start="2024-01-01", end="2024-02-01"
    )
    assert through_api == direct
    assert json.loads(direct.model_dump_json())["cash"] == "1000000"


def test_equity_sampling_keeps_each_buckets_last_point() -> None:
    assert sample_indices(5, 10).tolist() == [0, 1, 2, 3, 4]
    assert sample_indices(10, 5).tolist() == [1, 3, 5, 7, 9]
    assert sample_indices(10, 3).tolist() == [3, 6, 9]
    assert sample_indices(10, 1).tolist() == [9]
    many = sample_indices(1_000_003, 2000)
    assert len(many) == 2000 and many[-1] == 1_000_002 and (many[1:] > many[:-1]).all()
