"""Feature builds as jobs, on both backends: queued over the API, run by the ML worker with
progress on the owner's ``jobs`` channel, the offline store written (equal to the batch
features of the same bars), the result; bad requests refused with a code and nothing stored;
access rules; feature builds and training runs kept apart; cancelling a queued build.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from quantdesk.auth.roles import Role
from quantdesk.market.store import BarStore
from quantdesk.ml.dataset import load_bars
from quantdesk.ml.features import OfflineFeatureStore, default_feature_set
from quantdesk.settings import Settings
from quantdesk.stream.hub import user_channel
from tests.conftest import AuthedUser, UserFactory, make_settings
from tests.integration.ml.test_ml_api import (
    ML,
    PLANTED,
    _no_live_ml_runs_left,  # noqa: F401 (an autouse fixture)
    counts,
    error_code,
    write_bars,
)

BUILDS = f"{ML}/feature-builds"
FIRST, LAST = date(2022, 1, 1), date(2022, 12, 31)


@pytest.fixture(scope="module")
def ml_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bars(tmp_path_factory.mktemp("ml-features"))


@pytest.fixture
def ml_workers() -> int:
    return 1


@pytest.fixture
def settings(db_url: str, ml_data_dir: Path, ml_workers: int) -> Settings:
    return make_settings(db_url, ml_data_dir, ml_workers=ml_workers, backtest_workers=0)


def body(**overrides: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "symbols": PLANTED,
        "interval": "1d",
        "start": FIRST.isoformat(),
        "end": LAST.isoformat(),
    }
    out.update(overrides)
    return out


async def wait_build(
    client: httpx.AsyncClient, user: AuthedUser, build_id: str, within: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        r = await client.get(f"{BUILDS}/{build_id}", headers=user.headers)
        assert r.status_code == 200, r.text
        build: dict[str, Any] = r.json()
        if build["status"] in ("succeeded", "failed", "cancelled"):
            return build
        assert time.monotonic() < deadline, f"still {build['status']} after {within} s"
        await asyncio.sleep(0.1)


async def test_a_feature_build_runs_as_a_job_and_writes_the_offline_store(
    app: FastAPI,
    client: httpx.AsyncClient,
    trader: AuthedUser,
    settings: Settings,
    ml_data_dir: Path,
) -> None:
    bus = app.state.qd.extras["bus"]
    async with bus.subscribe(user_channel(trader.id, "jobs")) as jobs:
        r = await client.post(BUILDS, json=body(), headers=trader.headers)
        assert r.status_code == 202, r.text
        queued = r.json()
        assert r.headers["location"] == f"{BUILDS}/{queued['id']}"
        assert queued["kind"] == "features" and queued["status"] == "queued"
        assert queued["request"]["symbols"] == PLANTED and queued["result"] is None
        build = await wait_build(client, trader, queued["id"])
        messages = []
        while True:
            try:
                _, message = await jobs.get(timeout=0.5)
            except TimeoutError:
                break
            messages.append(message)
    assert build["status"] == "succeeded", build
    assert build["progress"]["fraction"] == 1.0
    fs = default_feature_set()
    result = build["result"]
    assert result["hash"] == fs.hash and result["feature_set"] == fs.name
    assert result["symbols"] == sorted(PLANTED) and result["columns"] == fs.columns
    # What was stored is the batch panel of the same bars.
    bars, fingerprint = load_bars(BarStore(ml_data_dir / "bars"), PLANTED, "1d", FIRST, LAST)
    assert result["fingerprint"] == fingerprint
    assert result["rows"] == sum(len(b) for b in bars.values())
    ohlcv = {s: b[["open", "high", "low", "close", "volume"]] for s, b in bars.items()}
    expected = fs.compute_panel(ohlcv)
    stored = OfflineFeatureStore(settings.data_dir, fs).read(PLANTED, interval="1d")
    np.testing.assert_array_equal(stored.to_numpy(), expected.to_numpy())
    # The owner's jobs channel: queued, running with the build's stages, succeeded.
    mine = [m for m in messages if m["id"] == queued["id"]]
    assert {m["kind"] for m in mine} == {"ml_features"}
    assert mine[0]["status"] == "queued" and mine[-1]["status"] == "succeeded"
    assert mine[-1]["result"] == {"hash": fs.hash, "rows": result["rows"]}
    stages = {m["stage"]["stage"] for m in mine if m["status"] == "running" and m["stage"]}
    assert stages <= {"starting", "load", "compute", "write"}
    # Feature builds and training runs are listed apart, each under its own id space.
    page = (await client.get(BUILDS, headers=trader.headers)).json()
    assert [b["id"] for b in page["items"]] == [queued["id"]]
    runs = (await client.get(f"{ML}/runs", headers=trader.headers)).json()
    assert queued["id"] not in [r["id"] for r in runs["items"]]
    r = await client.get(f"{ML}/runs/{queued['id']}", headers=trader.headers)
    assert r.status_code == 404 and error_code(r) == "ML_RUN_NOT_FOUND"


async def test_a_build_over_a_range_without_bars_fails_with_its_code(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    r = await client.post(
        BUILDS, json=body(start="2010-01-01", end="2010-12-31"), headers=trader.headers
    )
    assert r.status_code == 202, r.text
    build = await wait_build(client, trader, r.json()["id"])
    assert build["status"] == "failed" and build["error"]["code"] == "ML_NO_DATA", build


@pytest.mark.parametrize("ml_workers", [0])
async def test_bad_builds_are_refused_with_a_code_and_store_nothing(
    client: httpx.AsyncClient, trader: AuthedUser, db_url: str
) -> None:
    before = await counts(db_url)
    cases = [
        (body(symbols=["NSE:NOPE"]), "ML_UNKNOWN_SYMBOL"),
        (body(start="2022-12-31", end="2022-01-01"), "ML_BAD_DATA"),
        (body(interval="1w"), "ML_BAD_DATA"),
        (body(symbols=[PLANTED[0], PLANTED[0]]), "ML_BAD_DATA"),
        (body(symbols=[]), "ML_BAD_DATA"),
        (body(extra=1), "VALIDATION_ERROR"),
    ]
    for payload, code in cases:
        r = await client.post(BUILDS, json=payload, headers=trader.headers)
        assert r.status_code == 422, (payload, r.text)
        assert error_code(r) == code, (payload, r.text)
    assert await counts(db_url) == before


@pytest.mark.parametrize("ml_workers", [0])
async def test_builds_are_private_a_viewer_cannot_build_and_a_queued_one_is_cancelled(
    client: httpx.AsyncClient, trader: AuthedUser, make_user: UserFactory
) -> None:
    viewer = await make_user(Role.VIEWER)
    other = await make_user(Role.TRADER)
    admin = await make_user(Role.ADMIN)
    r = await client.post(BUILDS, json=body(), headers=viewer.headers)
    assert r.status_code == 403
    build = (await client.post(BUILDS, json=body(), headers=trader.headers)).json()
    r = await client.get(f"{BUILDS}/{build['id']}", headers=other.headers)
    assert r.status_code == 404 and error_code(r) == "ML_FEATURE_BUILD_NOT_FOUND"
    assert (await client.get(BUILDS, headers=other.headers)).json()["items"] == []
    r = await client.get(BUILDS, params={"user_id": trader.id}, headers=other.headers)
    assert r.status_code == 403
    r = await client.get(f"{BUILDS}/{build['id']}", headers=admin.headers)
    assert r.status_code == 200
    r = await client.delete(f"{BUILDS}/{build['id']}", headers=trader.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = await client.delete(f"{BUILDS}/{build['id']}", headers=trader.headers)
    assert r.status_code == 409 and error_code(r) == "ML_RUN_FINISHED"
