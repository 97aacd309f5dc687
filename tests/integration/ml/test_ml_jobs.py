"""The ML job runner on both backends: a run that cannot make a training set fails with the
pipeline's code (and an alert) and the server goes on; the owner's ``jobs`` channel carries
the stages and the outcome; cancelling a running training kills its worker and the next run
gets a new pool; the timeout; runs left running by a stopped process are re-queued and
complete; a graceful stop re-queues the running job; the MLflow run is tagged with its owner.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from quantdesk.api import create_app
from quantdesk.auth import users as users_service
from quantdesk.auth.roles import Role
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.ml import service
from quantdesk.ml.jobs import MLRunner
from quantdesk.ml.models_db import MLRunRow
from quantdesk.ml.schemas import MLRunIn
from quantdesk.ml.tracking import Tracker
from quantdesk.observability.audit import Actor
from quantdesk.settings import Settings
from quantdesk.stream.hub import user_channel
from tests.conftest import TEST_PASSWORD, AuthedUser, make_settings
from tests.integration.ml.test_ml_api import (
    ML,
    _no_live_ml_runs_left,  # noqa: F401 (an autouse fixture)
    error_code,
    queue,
    train_body,
    wait_for,
    write_bars,
)

SLOW = {"trials": 200}  # minutes of nested search inside the first fold: no progress reports


@pytest.fixture(scope="module")
def ml_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bars(tmp_path_factory.mktemp("ml-jobs"))


@pytest.fixture
def settings(db_url: str, ml_data_dir: Path) -> Settings:
    return make_settings(db_url, ml_data_dir, backtest_workers=0)


def runner_of(app: FastAPI) -> MLRunner:
    runner = app.state.qd.extras["ml_runner"]
    assert isinstance(runner, MLRunner)
    return runner


async def eventually(check: Any, within: float = 30, what: str = "condition") -> Any:
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


async def drain(subscription: Any) -> list[dict[str, Any]]:
    messages = []
    while True:
        try:
            _, message = await subscription.get(timeout=0.5)
        except TimeoutError:
            return messages
        messages.append(message)


async def test_a_run_without_a_training_set_fails_with_its_code_and_the_server_goes_on(
    app: FastAPI, client: httpx.AsyncClient, trader: AuthedUser, settings: Settings
) -> None:
    bus = app.state.qd.extras["bus"]
    async with (
        bus.subscribe(user_channel(trader.id, "jobs")) as jobs,
        bus.subscribe(user_channel(trader.id, "alerts")) as alerts,
    ):
        empty = await queue(client, trader, train_body(start="2010-01-01", end="2010-12-31"))
        short = await queue(client, trader, train_body(start="2023-10-01", end="2023-12-31"))
        failed = await wait_for(client, trader, empty["id"])
        _, alert = await alerts.get(timeout=10)
        assert failed["status"] == "failed", failed
        assert failed["error"]["code"] == "ML_NO_DATA" and failed["result"] is None
        assert "trace" not in failed["error"] or failed["error"]["trace"] is None
        assert alert["kind"] == "system_error" and empty["id"] in alert["body"]
        run = await wait_for(client, trader, short["id"])
        assert run["error"]["code"] == "ML_TOO_FEW_SAMPLES", run
        assert not (service.jobs_root(settings) / empty["id"]).exists()

        good = await wait_for(client, trader, (await queue(client, trader))["id"])
        assert good["status"] == "succeeded", good
        messages = [m for m in await drain(jobs) if m["id"] == good["id"]]
    assert [m["kind"] for m in messages] == ["ml_train"] * len(messages)
    statuses = [m["status"] for m in messages]
    assert statuses[0] == "queued" and statuses[-1] == "succeeded"
    # Stages are sampled every half second: a fast run may skip some.
    stages = [m["stage"]["stage"] for m in messages if m["status"] == "running" and m["stage"]]
    assert stages and all(isinstance(s, str) for s in stages)
    fractions = [m["progress"] for m in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    result = good["result"]
    assert messages[-1]["result"] == {k: result[k] for k in ("run_id", "model_name", "version")}
    # The MLflow run says whose job it was.
    tags = Tracker.from_settings(settings).get_run(result["run_id"]).tags
    assert tags["quantdesk.user_id"] == str(trader.id)
    assert tags["quantdesk.job_id"] == good["id"]


async def test_cancelling_a_running_training_kills_its_worker_and_the_next_run_goes_on(
    app: FastAPI, client: httpx.AsyncClient, trader: AuthedUser, settings: Settings
) -> None:
    runner = runner_of(app)
    slow = await queue(client, trader, train_body(**SLOW))
    deadline = time.monotonic() + 60
    while (await wait_for(client, trader, slow["id"], ("running",)))["progress"][
        "stage"
    ] != "folds":
        assert time.monotonic() < deadline, "the slow run never reached its folds"
        await asyncio.sleep(0.1)
    pid = await eventually(
        lambda: (job := runner.jobs.get(slow["id"])) is not None and job.pid, what="the pid"
    )
    waiting = await queue(client, trader)  # the one worker is busy: it stays queued

    r = await client.delete(f"{ML}/runs/{slow['id']}", headers=trader.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json()["finished_at"] is not None
    await eventually(lambda: not alive(pid), within=10, what="the worker's death")
    await eventually(lambda: slow["id"] not in runner.jobs, what="the runner letting go")
    assert not (service.jobs_root(settings) / slow["id"]).exists()
    run = (await client.get(f"{ML}/runs/{slow['id']}", headers=trader.headers)).json()
    assert run["status"] == "cancelled" and run["result"] is None

    # The killed worker broke its pool; the queued run runs in a new one.
    after = await wait_for(client, trader, waiting["id"])
    assert after["status"] == "succeeded", after


async def test_a_training_running_past_the_timeout_fails(
    app: FastAPI, client: httpx.AsyncClient, trader: AuthedUser, settings: Settings
) -> None:
    settings.ml_timeout_seconds = 1.0  # the runner reads it live
    queued = await queue(client, trader, train_body(**SLOW))
    run = await wait_for(client, trader, queued["id"], within=30)
    assert run["status"] == "failed", run
    assert run["error"]["code"] == "ML_TIMEOUT"
    await eventually(lambda: not runner_of(app).jobs, what="the runner letting go")


async def make_trader(settings: Settings) -> AuthedUser:
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
            return AuthedUser(user.id, user.username, TEST_PASSWORD, Role.TRADER)
    finally:
        await engine.dispose()


def stored_request(**overrides: Any) -> dict[str, Any]:
    request = service.normalise_request(MLRunIn.model_validate(train_body(**overrides)))
    service.check_label(request)
    return request


async def test_runs_left_running_by_a_stopped_process_are_requeued_and_complete(
    settings: Settings, db_url: str
) -> None:
    owner = await make_trader(settings)
    now = datetime.now(UTC)
    rows = {"running": secrets.token_hex(16), "queued": secrets.token_hex(16)}
    orphan = service.jobs_root(settings) / secrets.token_hex(16)  # files whose run is gone
    orphan.mkdir(parents=True)
    (orphan / "progress.json").write_text("{}")
    engine = create_engine(db_url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as db:
            for status, run_id in rows.items():
                db.add(
                    MLRunRow(
                        id=run_id,
                        user_id=owner.id,
                        kind="train",
                        status=status,
                        progress=0.4 if status == "running" else 0.0,
                        stage={"stage": "folds", "done": 0, "total": 4}
                        if status == "running"
                        else None,
                        request=stored_request(),
                        created_at=now,
                        started_at=now if status == "running" else None,
                    )
                )
            await db.commit()

        app = create_app(settings)
        async with app.router.lifespan_context(app):

            async def statuses() -> dict[str, str]:
                async with sessions() as db:
                    q = select(MLRunRow).where(MLRunRow.id.in_(rows.values()))
                    return {r.id: r.status for r in (await db.execute(q)).scalars()}

            deadline = time.monotonic() + 120
            while set((await statuses()).values()) != {"succeeded"}:
                assert time.monotonic() < deadline, await statuses()
                await asyncio.sleep(0.1)
            assert not orphan.exists()
    finally:
        await engine.dispose()


async def test_a_graceful_stop_requeues_the_running_job(settings: Settings, db_url: str) -> None:
    owner = await make_trader(settings)
    engine = create_engine(db_url)
    sessions = create_sessionmaker(engine)
    try:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with sessions() as db:
                row = await service.create_run(
                    db, owner.id, stored_request(**SLOW), Actor(None, "t", None, None)
                )
            runner_of(app).wake()
            await eventually(lambda: row.id in runner_of(app).jobs, what="the job starting")
        async with sessions() as db:
            stored = await db.get(MLRunRow, row.id)
        assert stored is not None
        assert stored.status == "queued" and stored.started_at is None
        assert stored.progress == 0 and stored.stage is None
    finally:
        await engine.dispose()


async def test_an_unknown_run_cannot_be_cancelled(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    r = await client.delete(f"{ML}/runs/{'0' * 32}", headers=trader.headers)
    assert r.status_code == 404 and error_code(r) == "ML_RUN_NOT_FOUND"
