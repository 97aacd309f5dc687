"""The backtest job runner on both backends: a strategy that raises fails its run (with the
traceback and an alert) and the server goes on; cancelling queued and running jobs (a worker
stuck in a callback is killed and the next job gets a new pool); the timeout; runs left
running by a stopped process are re-queued and complete; files go with their run; and the
owner's ``jobs`` WebSocket channel carries progress and the final status."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI
from sqlalchemy import select

from quantdesk.api import create_app
from quantdesk.auth import users as users_service
from quantdesk.auth.roles import Role
from quantdesk.backtest import service
from quantdesk.backtest.artifacts import runs_root
from quantdesk.backtest.jobs import BacktestRunner
from quantdesk.backtest.models import BacktestRunRow
from quantdesk.backtest.runner import BacktestRequest
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.observability.audit import Actor
from quantdesk.settings import Settings
from quantdesk.stream.hub import user_channel
from tests.conftest import TEST_PASSWORD, AuthedUser
from tests.integration.backtests.conftest import (
    BACKTESTS,
    BOOM,
    BUSY,
    SLEEPY,
    queue,
    run_body,
    wait_for,
    write_strategy,
)
from tests.integration.stream.conftest import serve


def runner_of(app: FastAPI) -> BacktestRunner:
    runner = app.state.qd.extras["backtest_runner"]
    assert isinstance(runner, BacktestRunner)
    return runner


async def eventually(check: Any, within: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not reached in {within} s"
        await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_a_strategy_that_raises_fails_its_run_with_the_trace_and_an_alert(
    app: FastAPI, client: httpx.AsyncClient, trader: AuthedUser, settings: Settings
) -> None:
    write_strategy(settings, "boom", BOOM)
    bus = app.state.qd.extras["bus"]
    async with bus.subscribe(user_channel(trader.id, "alerts")) as alerts:
        queued = await queue(client, trader, run_body(strategy="boom", params={}))
        run = await wait_for(client, trader, queued["id"])
        _, alert = await alerts.get(timeout=10)
    assert run["status"] == "failed", run
    error = run["error"]
    assert error["code"] == "BACKTEST_STRATEGY_FAILED"
    assert "on_bar" in error["message"] and "kaboom on purpose" in error["message"]
    assert "Traceback" in error["trace"] and "kaboom on purpose" in error["trace"]
    assert run["summary"] is None and run["finished_at"] is not None
    assert alert["kind"] == "system_error" and "boom" in alert["title"]
    assert queued["id"] in alert["body"]
    assert not (runs_root(settings) / queued["id"]).exists()

    # The server (and its worker pool) go on.
    assert (await client.get("/healthz")).status_code == 200
    after = await wait_for(client, trader, (await queue(client, trader))["id"])
    assert after["status"] == "succeeded"


async def test_cancelling_queued_and_running_jobs(
    app: FastAPI, client: httpx.AsyncClient, trader: AuthedUser, settings: Settings
) -> None:
    write_strategy(settings, "sleepy", SLEEPY)
    runner = runner_of(app)
    slow = await queue(client, trader, run_body(strategy="sleepy", params={}, interval="1m"))
    await wait_for(client, trader, slow["id"], ("running",))
    # Sleepy reports no progress for minutes: only a kill can stop it.
    pid = await eventually(
        lambda: (job := runner.jobs.get(slow["id"])) is not None and job.pid,
        what="the worker's pid",
    )
    waiting = await queue(client, trader)  # the one worker is busy: it stays queued

    r = await client.delete(f"{BACKTESTS}/{waiting['id']}", headers=trader.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = await client.delete(f"{BACKTESTS}/{slow['id']}", headers=trader.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json()["finished_at"] is not None

    await eventually(lambda: not runner.jobs, within=15, what="the runner letting go")
    await eventually(lambda: not alive(pid), within=5, what="the worker's death")
    for run_id in (slow["id"], waiting["id"]):
        run = (await client.get(f"{BACKTESTS}/{run_id}", headers=trader.headers)).json()
        assert run["status"] == "cancelled", run
        assert not (runs_root(settings) / run_id).exists()
    r = await client.delete(f"{BACKTESTS}/{slow['id']}", headers=trader.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "BACKTEST_FINISHED"

    # The killed worker broke its pool; the next job runs in a new one.
    after = await wait_for(client, trader, (await queue(client, trader))["id"])
    assert after["status"] == "succeeded"


async def test_a_job_running_past_the_timeout_fails(
    app: FastAPI, client: httpx.AsyncClient, trader: AuthedUser, settings: Settings
) -> None:
    settings.backtest_timeout_seconds = 1.0  # the runner reads it live
    write_strategy(settings, "sleepy", SLEEPY)
    queued = await queue(client, trader, run_body(strategy="sleepy", params={}, interval="1m"))
    run = await wait_for(client, trader, queued["id"], within=20)
    assert run["status"] == "failed", run
    assert run["error"]["code"] == "BACKTEST_TIMEOUT"
    await eventually(lambda: not runner_of(app).jobs, what="the runner letting go")


async def make_trader(settings: Settings) -> tuple[int, str]:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            user = await users_service.create_user(
                db,
                Actor(None, "test", None, None),
                username=f"trader_{secrets.token_hex(5)}",
                password=TEST_PASSWORD,
                role=Role.TRADER,
                bcrypt_rounds=4,
            )
            return user.id, user.username
    finally:
        await engine.dispose()


async def test_runs_left_running_by_a_stopped_process_are_requeued_and_complete(
    settings: Settings, db_url: str
) -> None:
    user_id, _ = await make_trader(settings)
    request = BacktestRequest.model_validate(run_body()).model_dump(mode="json")
    now = datetime.now(UTC)
    rows = {
        "running": secrets.token_hex(16),  # its process died mid-run
        "queued": secrets.token_hex(16),
    }
    orphan = runs_root(settings) / secrets.token_hex(16)  # files whose row is gone
    orphan.mkdir(parents=True)
    (orphan / "result.json").write_text("{}")
    engine = create_engine(db_url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as db:
            for status, run_id in rows.items():
                db.add(
                    BacktestRunRow(
                        id=run_id,
                        user_id=user_id,
                        status=status,
                        progress=0.4 if status == "running" else 0.0,
                        request=request,
                        created_at=now,
                        started_at=now if status == "running" else None,
                    )
                )
            await db.commit()

        app = create_app(settings)
        async with app.router.lifespan_context(app):

            async def statuses() -> dict[str, str]:
                async with sessions() as db:
                    q = select(BacktestRunRow).where(BacktestRunRow.id.in_(rows.values()))
                    return {r.id: r.status for r in (await db.execute(q)).scalars()}

            deadline = time.monotonic() + 60
            while set((await statuses()).values()) != {"succeeded"}:
                assert time.monotonic() < deadline, await statuses()
                await asyncio.sleep(0.1)
            assert not orphan.exists()

            # A run's files go with its row.
            kept = runs_root(settings) / rows["running"]
            assert (kept / "report.html").is_file()
            async with sessions() as db:
                assert await service.delete_run(db, rows["running"], runs_root(settings))
            assert not kept.exists()
    finally:
        await engine.dispose()


async def test_a_graceful_stop_requeues_the_running_job(settings: Settings, db_url: str) -> None:
    user_id, _ = await make_trader(settings)
    write_strategy(settings, "sleepy", SLEEPY)
    engine = create_engine(db_url)
    sessions = create_sessionmaker(engine)
    try:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            request = BacktestRequest.model_validate(
                run_body(strategy="sleepy", params={}, interval="1m")
            )
            async with sessions() as db:
                row = await service.create_run(db, user_id, request, Actor(None, "t", None, None))
            runner_of(app).wake()
            await eventually(lambda: row.id in runner_of(app).jobs, what="the job starting")
        async with sessions() as db:
            stored = await db.get(BacktestRunRow, row.id)
        assert stored is not None
        assert stored.status == "queued" and stored.started_at is None and stored.progress == 0
    finally:
        await engine.dispose()


@pytest.mark.e2e
async def test_the_owner_jobs_channel_carries_progress_and_the_final_status(
    settings: Settings,
) -> None:
    write_strategy(settings, "busy", BUSY)
    _, username = await make_trader(settings)
    async with serve(settings) as (ws_url, _app):
        base = ws_url.replace("ws://", "http://").removesuffix("/api/v1/ws")
        async with httpx.AsyncClient(base_url=base) as http:
            r = await http.post(
                "/api/v1/auth/login", json={"username": username, "password": TEST_PASSWORD}
            )
            token = r.json()["access_token"]
            async with websockets.connect(f"{ws_url}?token={token}") as ws:
                assert json.loads(await ws.recv())["type"] == "welcome"
                await ws.send(json.dumps({"op": "subscribe", "channels": ["jobs"]}))
                body = run_body(strategy="busy", params={}, interval="1m")
                r = await http.post(
                    BACKTESTS, json=body, headers={"Authorization": f"Bearer {token}"}
                )
                assert r.status_code == 202, r.text
                run_id = r.json()["id"]
                frames = await _job_frames(ws, run_id)
    statuses = [f["status"] for f in frames]
    assert statuses[0] == "queued" and statuses[-1] == "succeeded", statuses
    assert "running" in statuses
    progress = [f["progress"] for f in frames]
    assert progress == sorted(progress), progress
    assert any(0 < p < 1 for p in progress), progress
    final = frames[-1]
    assert final["progress"] == 1 and final["summary"]["run_id"] == run_id
    assert final["kind"] == "backtest" and "error" not in final


async def _job_frames(ws: Any, run_id: str) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(90):
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] in ("heartbeat", "subscribed"):
                continue
            assert msg["type"] == "job" and msg["channel"] == "jobs", msg
            data = msg["data"]
            assert data["id"] == run_id
            frames.append(data)
            if data["status"] in ("succeeded", "failed", "cancelled"):
                return frames
