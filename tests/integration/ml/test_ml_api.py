"""The ML API on both backends: a training run from request to registered version (result
contract, signal equity, importance, models list, promotion by an admin, audited; a version
without edge refused), bad input refused with a code and nothing stored, access rules
(another user's run is 404, a viewer cannot train), cancelling a queued run, stored signals
and drift reports.

Real parts throughout: the app and its job runner (a worker process), a Parquet bar store with
synthetic daily bars (an AR(1) pattern, and random walks), XGBoost, the embedded MLflow store
(one per module: creating it takes seconds) and the backtester for the signal backtest.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from quantdesk.auth.roles import Role
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.market.store import BarStore
from quantdesk.ml import registry
from quantdesk.ml.drift import DriftReport
from quantdesk.ml.honesty import synthetic_daily
from quantdesk.ml.models_db import MLRunRow
from quantdesk.ml.registry import drift_report_path, signals_root
from quantdesk.ml.signals import SignalStore
from quantdesk.observability.audit import AuditLog
from quantdesk.settings import Settings
from tests.conftest import AuthedUser, UserFactory, make_settings

ML = "/api/v1/ml"
PLANTED = ["NSE:PATA", "NSE:PATB", "NSE:PATC"]
NOISE = ["NSE:RWA", "NSE:RWB", "NSE:RWC"]
START, END = date(2019, 1, 1), date(2023, 12, 31)


# --- fixtures and helpers (test_ml_jobs imports them) -----------------------------------------


def write_bars(root: Path) -> Path:
    """A data dir with the bars of three AR(1) (phi 0.35) and three random-walk symbols (and,
    once a test trains, an MLflow store: one per module, as creating it takes seconds)."""
    store = BarStore(root / "bars")
    for k, symbol in enumerate(PLANTED):
        store.write(symbol, synthetic_daily(symbol, START, END, phi=0.35, seed=k), "1d")
    for k, symbol in enumerate(NOISE):
        store.write(symbol, synthetic_daily(symbol, START, END, phi=0.0, seed=100 + k), "1d")
    return root


@pytest.fixture(scope="module")
def ml_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bars(tmp_path_factory.mktemp("ml-api"))


@pytest.fixture
def ml_workers() -> int:
    """Parametrize it to 0 for an app that queues runs but never runs them."""
    return 1


@pytest.fixture
def settings(db_url: str, ml_data_dir: Path, ml_workers: int) -> Settings:
    return make_settings(db_url, ml_data_dir, ml_workers=ml_workers, backtest_workers=0)


@pytest.fixture(autouse=True)
async def _no_live_ml_runs_left(db_url: str) -> AsyncIterator[None]:
    """A run a test leaves queued would be picked up by the next test's app: cancel them."""
    yield
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(MLRunRow)
                .where(MLRunRow.status.in_(("queued", "running")))
                .values(status="cancelled", finished_at=datetime.now(UTC))
            )
    finally:
        await engine.dispose()


def model_name(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def train_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "xgboost",
        "symbols": PLANTED,
        "interval": "1d",
        "start": START.isoformat(),
        "end": END.isoformat(),
        "label": "forward:1",
        "folds": 4,
        "costs": "bps:3",
        "name": model_name(),
    }
    body.update(overrides)
    return body


async def queue(
    client: httpx.AsyncClient, user: AuthedUser, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    r = await client.post(f"{ML}/runs", json=body or train_body(), headers=user.headers)
    assert r.status_code == 202, r.text
    run: dict[str, Any] = r.json()
    assert r.headers["location"] == f"{ML}/runs/{run['id']}"
    return run


async def wait_for(
    client: httpx.AsyncClient,
    user: AuthedUser,
    run_id: str,
    statuses: tuple[str, ...] = ("succeeded", "failed", "cancelled"),
    within: float = 120,
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        r = await client.get(f"{ML}/runs/{run_id}", headers=user.headers)
        assert r.status_code == 200, r.text
        run: dict[str, Any] = r.json()
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, f"still {run['status']} after {within} s: {run}"
        await asyncio.sleep(0.1)


async def counts(db_url: str) -> tuple[int, int]:
    """(ML run rows, audit rows)."""
    engine = create_engine(db_url)
    try:
        async with create_sessionmaker(engine)() as db:
            runs = (await db.execute(select(func.count()).select_from(MLRunRow))).scalar_one()
            audits = (await db.execute(select(func.count()).select_from(AuditLog))).scalar_one()
            return int(runs), int(audits)
    finally:
        await engine.dispose()


async def audit_rows(db_url: str, action: str, target_id: str) -> list[AuditLog]:
    engine = create_engine(db_url)
    try:
        async with create_sessionmaker(engine)() as db:
            q = select(AuditLog).where(AuditLog.action == action, AuditLog.target_id == target_id)
            return list((await db.execute(q)).scalars())
    finally:
        await engine.dispose()


async def models(client: httpx.AsyncClient, user: AuthedUser) -> dict[str, dict[str, Any]]:
    r = await client.get(f"{ML}/models", headers=user.headers)
    assert r.status_code == 200, r.text
    return {m["name"]: m for m in r.json()["models"]}


def error_code(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    return code


# --- a run end to end -------------------------------------------------------------------------


async def test_a_training_run_registers_a_version_with_its_results_and_only_an_admin_promotes(
    client: httpx.AsyncClient,
    trader: AuthedUser,
    viewer: AuthedUser,
    admin: AuthedUser,
    make_user: UserFactory,
    db_url: str,
) -> None:
    planted = await queue(client, trader)
    noise = await queue(client, trader, train_body(symbols=NOISE, name=model_name("noise")))
    assert planted["status"] == "queued" and planted["user_id"] == trader.id
    assert planted["progress"] == {"stage": None, "done": 0, "total": 0, "fraction": 0.0}
    assert planted["result"] is None and planted["error"] is None
    request = planted["request"]
    assert request["label"] == "forward:1" and request["costs"] == "bps:3"
    assert request["threshold"] == 0.55 and request["trials"] == 0 and request["seed"] == 0

    run = await wait_for(client, trader, planted["id"])
    assert run["status"] == "succeeded", run
    assert run["progress"]["fraction"] == 1.0 and run["finished_at"] is not None
    result = run["result"]
    assert result["model_name"] == request["name"] and result["version"] == 1
    assert isinstance(result["run_id"], str) and result["run_id"]
    assert len(result["folds"]) == 4
    assert all({"auc", "start", "end", "rows"} <= set(f) for f in result["folds"])
    oos = result["oos"]
    assert oos["auc"] > 0.5 + 2 * oos["auc_se"]  # the planted pattern is found
    assert isinstance(oos["sharpe_net"], float) and oos["trades"] > 0
    assert result["checks"]["passed"] is True
    assert result["data"]["symbols"] == PLANTED

    # The signal backtest's equity curve, whole and sampled.
    r = await client.get(f"{ML}/runs/{run['id']}/equity", headers=trader.headers)
    assert r.status_code == 200, r.text
    equity = r.json()
    assert equity["run_id"] == result["run_id"] and len(equity["points"]) > 100
    assert all(isinstance(p["equity"], str) for p in equity["points"])
    r = await client.get(f"{ML}/runs/{run['id']}/equity?max_points=5", headers=trader.headers)
    sampled = r.json()["points"]
    assert len(sampled) == 5 and sampled[-1] == equity["points"][-1]

    r = await client.get(f"{ML}/runs/{run['id']}/importance", headers=trader.headers)
    assert r.status_code == 200, r.text
    ranked = r.json()["features"]
    assert {f["feature"]: f["importance"] for f in ranked} == result["importance"]
    assert [f["importance"] for f in ranked] == sorted(result["importance"].values(), reverse=True)

    # The registry, as any role sees it.
    model = (await models(client, viewer))[request["name"]]
    assert model["aliases"] == {}
    [version] = model["versions"]
    assert version["version"] == 1 and version["run_id"] == result["run_id"]
    assert version["checks"] == "passed" and version["aliases"] == []
    assert version["oos"]["auc"] == pytest.approx(oos["auc"])
    assert version["oos"]["sharpe_net"] == pytest.approx(oos["sharpe_net"])
    assert version["user_id"] == trader.id and version["job_id"] == run["id"]

    # Promotion: an admin's, audited; not a trader's.
    promote = f"{ML}/models/{request['name']}/promote"
    r = await client.post(promote, json={"version": 1}, headers=trader.headers)
    assert r.status_code == 403 and error_code(r) == "FORBIDDEN_ROLE"
    r = await client.post(promote, json={"version": 1, "alias": "champion"}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "name": request["name"],
        "alias": "champion",
        "version": 1,
        "previous_version": None,
    }
    assert (await models(client, trader))[request["name"]]["aliases"] == {"champion": 1}
    [entry] = await audit_rows(db_url, "ml.promote", request["name"])
    assert entry.actor_id == admin.id and entry.outcome == "success"
    assert entry.changes == {
        "model": request["name"],
        "version": 1,
        "alias": "champion",
        "previous_version": None,
    }
    r = await client.post(promote, json={"version": 1}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["previous_version"] == 1
    r = await client.post(promote, json={"version": 7}, headers=admin.headers)
    assert r.status_code == 404 and error_code(r) == "MODEL_VERSION_NOT_FOUND"
    r = await client.post(promote, json={"version": 1, "alias": "leader"}, headers=admin.headers)
    assert r.status_code == 422 and error_code(r) == "ML_BAD_REQUEST"
    r = await client.post(
        f"{ML}/models/{model_name()}/promote", json={"version": 1}, headers=admin.headers
    )
    assert r.status_code == 404 and error_code(r) == "MODEL_NOT_FOUND"

    # A version without an edge is registered but cannot take an alias.
    done = await wait_for(client, trader, noise["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["checks"]["passed"] is False
    noise_name = done["request"]["name"]
    r = await client.post(
        f"{ML}/models/{noise_name}/promote", json={"version": 1}, headers=admin.headers
    )
    assert r.status_code == 409 and error_code(r) == "ML_CHECKS_FAILED"
    assert (await models(client, admin))[noise_name]["aliases"] == {}
    assert (await models(client, admin))[noise_name]["versions"][0]["checks"] == "failed"
    assert await audit_rows(db_url, "ml.promote", noise_name) == []

    # Another user's run is not theirs to see; a finished run cannot be cancelled.
    other = await make_user(Role.TRADER)
    for path in ("", "/equity", "/importance"):
        r = await client.get(f"{ML}/runs/{run['id']}{path}", headers=other.headers)
        assert r.status_code == 404 and error_code(r) == "ML_RUN_NOT_FOUND", path
    r = await client.delete(f"{ML}/runs/{run['id']}", headers=other.headers)
    assert r.status_code == 404
    r = await client.get(f"{ML}/runs", headers=other.headers)
    assert r.json() == {"items": [], "next_cursor": None}
    r = await client.get(f"{ML}/runs?user_id={trader.id}", headers=other.headers)
    assert r.status_code == 403 and error_code(r) == "ML_RUNS_FORBIDDEN"
    r = await client.get(f"{ML}/runs?user_id={trader.id}", headers=admin.headers)
    assert [x["id"] for x in r.json()["items"]] == [noise["id"], planted["id"]]
    assert (await client.get(f"{ML}/runs/{run['id']}", headers=admin.headers)).status_code == 200
    r = await client.delete(f"{ML}/runs/{run['id']}", headers=trader.headers)
    assert r.status_code == 409 and error_code(r) == "ML_RUN_FINISHED"


# --- bad input --------------------------------------------------------------------------------


BAD_REQUESTS: list[tuple[dict[str, Any], int, str]] = [
    ({"model": "forest"}, 422, "ML_BAD_REQUEST"),
    ({"label": "backward:3"}, 422, "ML_BAD_REQUEST"),
    ({"label": "forward:0"}, 422, "ML_BAD_REQUEST"),
    ({"folds": 1}, 422, "ML_BAD_REQUEST"),
    ({"folds": 21}, 422, "ML_BAD_REQUEST"),
    ({"trials": -1}, 422, "ML_BAD_REQUEST"),
    ({"trials": 501}, 422, "ML_BAD_REQUEST"),
    ({"threshold": 1.5}, 422, "ML_BAD_REQUEST"),
    ({"dead_zone": -0.1}, 422, "ML_BAD_REQUEST"),
    ({"embargo": 1.5}, 422, "ML_BAD_REQUEST"),
    ({"costs": "cheap"}, 422, "ML_BAD_REQUEST"),
    ({"symbols": ["INFY"]}, 422, "ML_BAD_REQUEST"),
    ({"symbols": []}, 422, "ML_BAD_DATA"),
    ({"symbols": ["NSE:PATA", "nse:pata"]}, 422, "ML_BAD_DATA"),
    ({"symbols": ["NSE:PATA", "NSE:NOPE"]}, 422, "ML_UNKNOWN_SYMBOL"),
    ({"start": "2023-12-31", "end": "2019-01-01"}, 422, "ML_BAD_DATA"),
    ({"interval": "2h"}, 422, "ML_BAD_DATA"),
    ({"start": "2019-13-01"}, 422, "VALIDATION_ERROR"),
    ({"name": "../escape"}, 422, "VALIDATION_ERROR"),
    ({"folds": "many"}, 422, "VALIDATION_ERROR"),
    ({"unknown": 1}, 422, "VALIDATION_ERROR"),
]


@pytest.mark.parametrize("ml_workers", [0])
async def test_bad_training_requests_are_refused_with_a_code_and_store_nothing(
    client: httpx.AsyncClient, trader: AuthedUser, db_url: str
) -> None:
    before = await counts(db_url)
    for overrides, status, code in BAD_REQUESTS:
        r = await client.post(f"{ML}/runs", json=train_body(**overrides), headers=trader.headers)
        assert (r.status_code, error_code(r)) == (status, code), (overrides, r.text)
        if code.startswith("ML_BAD"):
            assert r.json()["error"]["details"], r.text
    assert await counts(db_url) == before


@pytest.mark.parametrize("ml_workers", [0])
async def test_without_the_ml_extra_ml_endpoints_answer_503_with_the_pip_command(
    client: httpx.AsyncClient, trader: AuthedUser, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "_ML_MODULES", (*registry._ML_MODULES, "qd_not_installed"))
    before = await counts(db_url)
    r = await client.post(f"{ML}/runs", json=train_body(), headers=trader.headers)
    assert r.status_code == 503 and error_code(r) == "ML_EXTRA_MISSING", r.text
    assert "pip install 'quantdesk[ml]'" in r.json()["error"]["message"]
    assert r.json()["error"]["details"]["missing"] == ["qd_not_installed"]
    r = await client.get(f"{ML}/models", headers=trader.headers)
    assert r.status_code == 503 and error_code(r) == "ML_EXTRA_MISSING"
    assert await counts(db_url) == before


async def test_roles_a_viewer_cannot_train_or_cancel_and_a_login_is_needed(
    client: httpx.AsyncClient, viewer: AuthedUser, db_url: str
) -> None:
    before = await counts(db_url)
    r = await client.post(f"{ML}/runs", json=train_body(), headers=viewer.headers)
    assert r.status_code == 403 and error_code(r) == "FORBIDDEN_ROLE"
    r = await client.delete(f"{ML}/runs/{'0' * 32}", headers=viewer.headers)
    assert r.status_code == 403
    assert (await client.get(f"{ML}/runs")).status_code == 401
    assert (await client.get(f"{ML}/models")).status_code == 401
    r = await client.get(f"{ML}/runs", headers=viewer.headers)
    assert r.status_code == 200 and r.json()["items"] == []
    r = await client.get(f"{ML}/runs/not-a-run", headers=viewer.headers)
    assert r.status_code == 422
    r = await client.get(f"{ML}/runs/{'0' * 32}", headers=viewer.headers)
    assert r.status_code == 404 and error_code(r) == "ML_RUN_NOT_FOUND"
    assert await counts(db_url) == before


# --- queued runs ------------------------------------------------------------------------------


@pytest.mark.parametrize("ml_workers", [0])
async def test_a_queued_run_is_cancelled_by_its_owner_or_an_admin_and_pages_newest_first(
    client: httpx.AsyncClient,
    trader: AuthedUser,
    admin: AuthedUser,
    make_user: UserFactory,
    db_url: str,
) -> None:
    runs = [await queue(client, trader) for _ in range(3)]
    other = await make_user(Role.TRADER)
    r = await client.delete(f"{ML}/runs/{runs[0]['id']}", headers=other.headers)
    assert r.status_code == 404

    r = await client.delete(f"{ML}/runs/{runs[0]['id']}", headers=trader.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json()["finished_at"] is not None
    r = await client.delete(f"{ML}/runs/{runs[1]['id']}", headers=admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = await client.delete(f"{ML}/runs/{runs[0]['id']}", headers=trader.headers)
    assert r.status_code == 409 and error_code(r) == "ML_RUN_FINISHED"
    [entry] = await audit_rows(db_url, "ml.cancel", runs[1]["id"])
    assert entry.actor_id == admin.id and entry.changes == {
        "from_status": "queued",
        "owner_id": trader.id,
    }
    assert len(await audit_rows(db_url, "ml.train", runs[2]["id"])) == 1

    seen: list[str] = []
    url = f"{ML}/runs?limit=2"
    while True:
        page = (await client.get(url, headers=trader.headers)).json()
        seen += [run["id"] for run in page["items"]]
        if page["next_cursor"] is None:
            break
        url = f"{ML}/runs?limit=2&before={page['next_cursor']}"
    assert seen == [r["id"] for r in reversed(runs)]
    r = await client.get(f"{ML}/runs?status=queued", headers=trader.headers)
    assert [x["id"] for x in r.json()["items"]] == [runs[2]["id"]]
    r = await client.get(f"{ML}/runs?status=queued", headers=admin.headers)
    assert runs[2]["id"] in [x["id"] for x in r.json()["items"]]
    r = await client.get(f"{ML}/runs?limt=2", headers=trader.headers)
    assert error_code(r) == "UNKNOWN_QUERY_PARAMETER"


# --- signals and drift ------------------------------------------------------------------------


@pytest.mark.parametrize("ml_workers", [0])
async def test_signals_are_read_from_the_store_by_model_symbol_and_range(
    client: httpx.AsyncClient, viewer: AuthedUser, settings: Settings
) -> None:
    name = model_name("sig")
    store = SignalStore(signals_root(settings))
    t0 = datetime(2024, 1, 1, 10, tzinfo=UTC)
    rows = [
        {
            "time": t0 + timedelta(days=k),
            "value": 0.5 + k / 100,
            "signal": k % 2,
            "model_version": 3,
        }
        for k in range(10)
    ]
    store.append(name, "NSE:PATA", rows)

    url = f"{ML}/signals?model={name}&symbol=nse:pata"
    r = await client.get(url, headers=viewer.headers)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["model"] == name and doc["symbol"] == "NSE:PATA" and doc["truncated"] is False
    assert len(doc["points"]) == 10
    assert doc["points"][0] == {
        "time": "2024-01-01T10:00:00Z",
        "value": 0.5,
        "signal": 0,
        "model_version": 3,
    }
    r = await client.get(f"{url}&start=2024-01-03&end=2024-01-05", headers=viewer.headers)
    assert [p["time"][:10] for p in r.json()["points"]] == [
        "2024-01-03",
        "2024-01-04",
        "2024-01-05",
    ]
    r = await client.get(f"{url}&limit=4", headers=viewer.headers)
    assert r.json()["truncated"] is True
    assert [p["value"] for p in r.json()["points"]] == pytest.approx([0.56, 0.57, 0.58, 0.59])

    r = await client.get(f"{ML}/signals?model={name}&symbol=NSE:PATB", headers=viewer.headers)
    assert r.status_code == 200 and r.json()["points"] == []
    r = await client.get(f"{ML}/signals?model={name}&symbol=PATA", headers=viewer.headers)
    assert r.status_code == 422 and error_code(r) == "ML_BAD_REQUEST"
    r = await client.get(
        f"{ML}/signals?model={model_name()}&symbol=NSE:PATA", headers=viewer.headers
    )
    assert r.status_code == 404 and error_code(r) == "MODEL_NOT_FOUND"
    r = await client.get(f"{ML}/signals?model=..&symbol=NSE:PATA", headers=viewer.headers)
    assert r.status_code == 422


@pytest.mark.parametrize("ml_workers", [0])
async def test_the_latest_drift_report_is_read_or_is_a_404(
    client: httpx.AsyncClient, viewer: AuthedUser, settings: Settings
) -> None:
    name = model_name("drift")
    r = await client.get(f"{ML}/drift?model={name}", headers=viewer.headers)
    assert r.status_code == 404 and error_code(r) == "ML_NO_DRIFT_REPORT"

    report = DriftReport(
        model=name,
        version=2,
        samples=250,
        psi={"ret_1": 0.31, "rsi_14": 0.02},
        levels={"ret_1": "significant", "rsi_14": "stable"},
        features=("ret_1",),
        outcomes=0,
        validation=0.58,
        alerted=("ret_1",),
    )
    path = drift_report_path(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {**asdict(report), "checked_at": "2026-12-01T10:00:00+00:00"}
    path.write_text(json.dumps(doc))
    r = await client.get(f"{ML}/drift?model={name}", headers=viewer.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == name and body["version"] == 2 and body["samples"] == 250
    assert body["features"] == ["ret_1"] and body["levels"]["ret_1"] == "significant"
    assert body["psi"] == {"ret_1": 0.31, "rsi_14": 0.02} and body["degraded"] is False
    assert body["checked_at"] == "2026-12-01T10:00:00Z"

    path.write_text("{not json")
    r = await client.get(f"{ML}/drift?model={name}", headers=viewer.headers)
    assert r.status_code == 503 and error_code(r) == "ML_DRIFT_REPORT_UNREADABLE"
    r = await client.get(f"{ML}/drift?model=../../etc", headers=viewer.headers)
    assert r.status_code == 422
