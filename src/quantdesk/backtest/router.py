"""Strategies and backtest jobs over HTTP: list strategies; queue, list, read and cancel
backtests; read a finished run's trades, equity curve and tearsheet.

A trader queues runs and sees its own; a viewer sees every run (read only); an admin sees and
cancels every run. Someone else's run answers 404 to whoever may not see it.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse

from quantdesk.api.deps import CurrentUser, SessionDep, StateDep, TraderUser, user_actor
from quantdesk.api.state import AppState
from quantdesk.backtest import service
from quantdesk.backtest.artifacts import RUN_ID_PATTERN, runs_root
from quantdesk.backtest.models import BacktestStatus
from quantdesk.backtest.runner import BacktestRequest
from quantdesk.backtest.schemas import (
    DEFAULT_EQUITY_POINTS,
    MAX_EQUITY_POINTS,
    BacktestEquityOut,
    BacktestIn,
    BacktestOut,
    BacktestPageOut,
    BacktestTradesOut,
    EquityPointOut,
    StrategiesOut,
)
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.openapi import error_responses
from quantdesk.orders.schemas import CURSOR

router = APIRouter()

RunId = Annotated[
    str, Path(pattern=RUN_ID_PATTERN, description="The backtest's id (32 hex digits)")
]
# The tearsheet has no scripts; the policy keeps it that way and gives it an opaque origin, so
# nothing in it could read the API's origin even if a future report carried user markup.
_REPORT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:; sandbox",
    "X-Content-Type-Options": "nosniff",
}


def _root(state: AppState) -> FilePath:
    return runs_root(state.settings)


@router.get(
    "/strategies",
    tags=["strategies"],
    response_model=StrategiesOut,
    responses=error_responses(401, 403),
    summary="Built-in and user strategies with their parameters' JSON Schema",
    description="User strategy files are read afresh on each call; a file that fails to load "
    "is listed in `errors` (file, line, message) and skipped.",
)
async def list_strategies(state: StateDep, _user: CurrentUser) -> StrategiesOut:
    doc = await anyio.to_thread.run_sync(service.describe_strategies, state.settings)
    return StrategiesOut.model_validate(doc)


@router.post(
    "/backtests",
    tags=["backtests"],
    response_model=BacktestOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        202: {
            "description": "Queued; poll the Location, or follow the `jobs` WebSocket channel",
            "headers": {"Location": {"description": "The run's URL", "schema": {"type": "string"}}},
        },
        **error_responses(400, 401, 403, 422),
    },
    summary="Queue a backtest (checked completely first; a refused request stores nothing)",
    description="Errors (422): BACKTEST_BAD_REQUEST (a field the runner refuses, details name "
    "it), STRATEGY_NOT_FOUND, STRATEGY_BAD_PARAMS (details.errors), BACKTEST_BAD_RANGE, "
    "BACKTEST_UNKNOWN_SYMBOL, BACKTEST_DUPLICATE_SYMBOL, BACKTEST_NO_DATA, "
    "BACKTEST_BAD_BENCHMARK, BACKTEST_COSTS_UNAVAILABLE, BACKTEST_VECTOR_UNSUPPORTED, "
    "BACKTEST_STRATEGY_FAILED (the strategy raised while it was set up).",
)
async def create_backtest(
    body: BacktestIn,
    request: Request,
    response: Response,
    db: SessionDep,
    state: StateDep,
    user: TraderUser,
) -> BacktestOut:
    run = service.to_request(body.model_dump(exclude_unset=True))
    specs = await service.instrument_specs(db, run.symbols)
    await anyio.to_thread.run_sync(_validate, state, run, specs)
    row = await service.create_run(db, user.id, run, user_actor(request, user))
    await service.publish(state.extras.get("bus"), row.user_id, service.job_message(row))
    runner = state.extras.get("backtest_runner")
    if runner is not None:
        runner.wake()
    response.headers["Location"] = f"{request.url.path}/{row.id}"
    return BacktestOut.of(row)


def _validate(state: AppState, run: BacktestRequest, specs: dict[str, InstrumentSpec]) -> None:
    settings = state.settings
    service.validate(
        run,
        store=state.extras["bar_store"],
        registry=service.load_registry(settings),
        fill_model=settings.paper_fill_model(),
        specs=specs,
    )


@router.get(
    "/backtests",
    tags=["backtests"],
    response_model=BacktestPageOut,
    responses=error_responses(401, 403, 422),
    summary="Backtests, newest first (keyset pagination: pass next_cursor as `before`)",
    description="A trader sees its own; a viewer and an admin see everyone's.",
)
async def list_backtests(
    db: SessionDep,
    user: CurrentUser,
    status_: Annotated[BacktestStatus | None, Query(alias="status")] = None,
    before: Annotated[
        str | None, Query(pattern=CURSOR, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> BacktestPageOut:
    rows, next_cursor = await service.list_runs(
        db, user, status=status_, before=before, limit=limit
    )
    return BacktestPageOut(items=[BacktestOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/backtests/{run_id}",
    tags=["backtests"],
    response_model=BacktestOut,
    responses=error_responses(401, 403, 404, 422),
    summary="One backtest: status, progress, request, summary with metrics, error",
)
async def get_backtest(run_id: RunId, db: SessionDep, user: CurrentUser) -> BacktestOut:
    return BacktestOut.of(await service.get_run(db, run_id, user))


@router.delete(
    "/backtests/{run_id}",
    tags=["backtests"],
    response_model=BacktestOut,
    responses=error_responses(401, 403, 404, 409, 422),
    summary="Cancel a queued or running backtest",
    description="A queued run is cancelled at once; a running one is cancelled at once and its "
    "worker stops within seconds. Errors: BACKTEST_FINISHED (409: it succeeded, failed or was "
    "cancelled already).",
)
async def cancel_backtest(
    run_id: RunId, request: Request, db: SessionDep, state: StateDep, user: TraderUser
) -> BacktestOut:
    row = await service.cancel_run(db, run_id, user, user_actor(request, user), _root(state))
    await service.publish(state.extras.get("bus"), row.user_id, service.job_message(row))
    return BacktestOut.of(row)


_RESULT_ERRORS = error_responses(401, 403, 404, 409, 422)
_RESULT_NOTE = (
    "Errors: BACKTEST_NOT_SUCCEEDED (409: queued, running, failed or cancelled), "
    "BACKTEST_RESULT_MISSING (404: its files were removed)."
)


@router.get(
    "/backtests/{run_id}/trades",
    tags=["backtests"],
    response_model=BacktestTradesOut,
    responses=_RESULT_ERRORS,
    summary="A finished backtest's fills and round trips (money as decimal strings)",
    description=_RESULT_NOTE,
)
async def backtest_trades(
    run_id: RunId, db: SessionDep, state: StateDep, user: CurrentUser
) -> BacktestTradesOut:
    row = await service.get_run(db, run_id, user)
    return BacktestTradesOut.model_validate(await service.trades(row, _root(state)))


@router.get(
    "/backtests/{run_id}/equity",
    tags=["backtests"],
    response_model=BacktestEquityOut,
    responses=_RESULT_ERRORS,
    summary="A finished backtest's equity curve, benchmark and drawdown per bar",
    description="At most `max_points` points: the curve is cut into that many equal buckets "
    "of bars and each bucket's LAST bar is kept (so the final point is always there; a dip "
    "inside a bucket may not be). " + _RESULT_NOTE,
)
async def backtest_equity(
    run_id: RunId,
    db: SessionDep,
    state: StateDep,
    user: CurrentUser,
    max_points: Annotated[int, Query(ge=1, le=MAX_EQUITY_POINTS)] = DEFAULT_EQUITY_POINTS,
) -> BacktestEquityOut:
    row = await service.get_run(db, run_id, user)
    points = await service.equity(row, _root(state), max_points)
    return BacktestEquityOut(
        points=[
            EquityPointOut(
                time=p.time,
                equity=_rupees(p.equity),
                benchmark=None if p.benchmark is None else _rupees(p.benchmark),
                drawdown=None if p.drawdown is None else round(p.drawdown, 6),
            )
            for p in points
        ]
    )


def _rupees(value: float) -> str:
    return f"{value:.2f}"


@router.get(
    "/backtests/{run_id}/report",
    tags=["backtests"],
    # Response, not HTMLResponse: the errors are the JSON envelope, only the 200 is HTML.
    response_class=Response,
    responses={
        200: {
            "description": "The HTML tearsheet (self-contained, no scripts)",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        **_RESULT_ERRORS,
    },
    summary="A finished backtest's HTML tearsheet",
    description=_RESULT_NOTE,
)
async def backtest_report(
    run_id: RunId, db: SessionDep, state: StateDep, user: CurrentUser
) -> HTMLResponse:
    row = await service.get_run(db, run_id, user)
    html = await service.report(row, _root(state))
    return HTMLResponse(content=html, headers=_REPORT_HEADERS)
