"""The ML engine over HTTP: queue, list, read and cancel training runs (jobs) and read a finished
run's signal equity curve and feature importance; list registered models and promote a
version (admin); read stored signal series and drift reports.

A trader (or admin) queues runs; everyone sees and cancels their own, an admin every one.
Someone else's run answers 404. Models, signals and drift are readable by every role. MLflow
and file reads are blocking: they run in a worker thread.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Query, Request, Response, status

from quantdesk.api.deps import (
    AdminUser,
    CurrentUser,
    SessionDep,
    StateDep,
    TraderUser,
    own_or_admin,
    user_actor,
)
from quantdesk.api.state import AppState
from quantdesk.api.types import NO_NUL
from quantdesk.auth.roles import Role
from quantdesk.backtest.artifacts import RUN_ID_PATTERN
from quantdesk.errors import ValidationFailed
from quantdesk.market.store import normalise_symbol
from quantdesk.ml import registry, service
from quantdesk.ml.models_db import FEATURES, MLRunStatus
from quantdesk.ml.schemas import (
    DEFAULT_EQUITY_POINTS,
    DEFAULT_SIGNAL_POINTS,
    MAX_EQUITY_POINTS,
    MAX_SIGNAL_POINTS,
    MODEL_NAME_PATTERN,
    DriftOut,
    FeatureBuildIn,
    FeatureBuildOut,
    FeatureBuildPageOut,
    FeatureImportanceOut,
    MLEquityOut,
    MLEquityPointOut,
    MLImportanceOut,
    MLRunIn,
    MLRunOut,
    MLRunPageOut,
    ModelsOut,
    PromoteIn,
    PromoteOut,
    SignalsOut,
)
from quantdesk.observability import audit
from quantdesk.openapi import error_responses
from quantdesk.orders.schemas import CURSOR

router = APIRouter(prefix="/ml", tags=["ml"])

RunId = Annotated[str, Path(pattern=RUN_ID_PATTERN, description="The ML run's id (32 hex digits)")]
ModelPath = Annotated[
    str, Path(max_length=100, pattern=MODEL_NAME_PATTERN, description="Registered model name")
]
ModelQuery = Annotated[
    str, Query(max_length=100, pattern=MODEL_NAME_PATTERN, description="Registered model name")
]
_EXTRA = (
    "ML_EXTRA_MISSING (503: the server lacks the ml extra; the message names the pip command), "
    "ML_TRACKING_ERROR (502: the MLflow store failed)"
)


def _bus(state: AppState) -> Any:
    return state.extras.get("bus")


# --- training runs ----------------------------------------------------------------------------


@router.post(
    "/runs",
    response_model=MLRunOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        202: {
            "description": "Queued; poll the Location, or follow the `jobs` WebSocket channel",
            "headers": {"Location": {"description": "The run's URL", "schema": {"type": "string"}}},
        },
        **error_responses(400, 401, 403, 422, 503),
    },
    summary="Queue a training run (checked first; a refused request stores nothing)",
    description="The options of `quantdesk ml train`, checked as it checks them. Errors (422): "
    "ML_BAD_REQUEST (a value out of range, a bad label, model or costs; details name the "
    "field), ML_BAD_DATA (an inverted range, an unknown interval, repeated symbols), "
    "ML_UNKNOWN_SYMBOL (no stored bars); " + _EXTRA + ". A run that cannot make a training set "
    "fails with ML_NO_DATA, ML_TOO_FEW_SAMPLES, ML_ONE_CLASS, ...",
)
async def create_run(
    body: MLRunIn,
    request: Request,
    response: Response,
    db: SessionDep,
    state: StateDep,
    user: TraderUser,
) -> MLRunOut:
    spec = service.normalise_request(body)
    registry.require_extra(spec["model"])
    await anyio.to_thread.run_sync(_check, state, spec)
    row = await service.create_run(db, user.id, spec, user_actor(request, user))
    await service.publish(_bus(state), row.user_id, service.job_message(row))
    runner = state.extras.get("ml_runner")
    if runner is not None:
        runner.wake()
    response.headers["Location"] = f"{request.url.path}/{row.id}"
    return MLRunOut.of(row)


def _check(state: AppState, spec: dict[str, Any]) -> None:
    service.check_label(spec)
    service.check_symbols(state.extras["bar_store"], spec["symbols"])


@router.get(
    "/runs",
    response_model=MLRunPageOut,
    responses=error_responses(401, 403, 422),
    summary="Your training runs, newest first (keyset pagination: next_cursor as `before`)",
    description="An admin sees everyone's, or one user's with `user_id`; anyone else only "
    "their own (another `user_id`: 403 ML_RUNS_FORBIDDEN).",
)
async def list_runs(
    db: SessionDep,
    user: CurrentUser,
    user_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    status_: Annotated[MLRunStatus | None, Query(alias="status")] = None,
    before: Annotated[
        str | None, Query(pattern=CURSOR, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> MLRunPageOut:
    owner: int | None
    if user.role == Role.ADMIN and user_id is None:
        owner = None
    else:
        owner = own_or_admin(user, user_id, code="ML_RUNS_FORBIDDEN", what="training runs")
    rows, next_cursor = await service.list_runs(
        db, owner, status=status_, before=before, limit=limit
    )
    return MLRunPageOut(items=[MLRunOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/runs/{run_id}",
    response_model=MLRunOut,
    responses=error_responses(401, 403, 404, 422),
    summary="One training run: status, progress, request, result (once succeeded), error",
)
async def get_run(run_id: RunId, db: SessionDep, user: CurrentUser) -> MLRunOut:
    return MLRunOut.of(await service.get_run(db, run_id, user))


@router.delete(
    "/runs/{run_id}",
    response_model=MLRunOut,
    responses=error_responses(401, 403, 404, 409, 422),
    summary="Cancel a queued or running training run",
    description="Cancelled at once; a running job's worker stops within seconds. Errors: "
    "ML_RUN_FINISHED (409: it succeeded, failed or was cancelled already).",
)
async def cancel_run(
    run_id: RunId, request: Request, db: SessionDep, state: StateDep, user: TraderUser
) -> MLRunOut:
    root = service.jobs_root(state.settings)
    row = await service.cancel_run(db, run_id, user, user_actor(request, user), root)
    await service.publish(_bus(state), row.user_id, service.job_message(row))
    return MLRunOut.of(row)


_RESULT_NOTE = "Errors: ML_RUN_NOT_SUCCEEDED (409: queued, running, failed or cancelled)"


@router.get(
    "/runs/{run_id}/equity",
    response_model=MLEquityOut,
    responses=error_responses(401, 403, 404, 409, 422, 502, 503),
    summary="A finished run's signal backtest: equity per bar (net of costs)",
    description="The out-of-sample predictions traded by `ml_signal`, from the MLflow run's "
    "`signal_equity.json`. At most `max_points`: the last bar of each equal bucket. "
    + _RESULT_NOTE
    + ", ML_RESULT_MISSING (404: the backtest made no curve), "
    + _EXTRA
    + ".",
)
async def run_equity(
    run_id: RunId,
    db: SessionDep,
    state: StateDep,
    user: CurrentUser,
    max_points: Annotated[int, Query(ge=1, le=MAX_EQUITY_POINTS)] = DEFAULT_EQUITY_POINTS,
) -> MLEquityOut:
    result = service.succeeded_result(await service.get_run(db, run_id, user))
    mlflow_run = str(result["run_id"])

    def read() -> list[tuple[str, float]]:
        tracker = registry.get_tracker(state.settings)
        return registry.equity_points(tracker, mlflow_run, max_points)

    points = await anyio.to_thread.run_sync(read)
    return MLEquityOut(
        run_id=mlflow_run,
        points=[
            MLEquityPointOut.model_validate({"time": t, "equity": f"{e:.2f}"}) for t, e in points
        ],
    )


@router.get(
    "/runs/{run_id}/importance",
    response_model=MLImportanceOut,
    responses=error_responses(401, 403, 404, 409, 422),
    summary="A finished run's feature importance (the final model's), most important first",
    description=_RESULT_NOTE + ".",
)
async def run_importance(run_id: RunId, db: SessionDep, user: CurrentUser) -> MLImportanceOut:
    result = service.succeeded_result(await service.get_run(db, run_id, user))
    ranked = sorted((result.get("importance") or {}).items(), key=lambda kv: -float(kv[1] or 0))
    return MLImportanceOut(
        run_id=str(result["run_id"]),
        features=[FeatureImportanceOut(feature=k, importance=float(v or 0)) for k, v in ranked],
    )


# --- feature builds ---------------------------------------------------------------------------

BuildId = Annotated[
    str, Path(pattern=RUN_ID_PATTERN, description="The feature build's id (32 hex digits)")
]


@router.post(
    "/feature-builds",
    response_model=FeatureBuildOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        202: {
            "description": "Queued; poll the Location, or follow the `jobs` WebSocket channel "
            "(kind ml_features)",
            "headers": {
                "Location": {"description": "The build's URL", "schema": {"type": "string"}}
            },
        },
        **error_responses(400, 401, 403, 422, 503),
    },
    summary="Queue a feature build: the platform's feature set over stored bars into the "
    "offline store (Parquet)",
    description="`quantdesk ml features build` as a job, run by the ML workers with progress "
    "(stages load, compute, write). Errors (422): ML_BAD_REQUEST (a malformed symbol), "
    "ML_BAD_DATA (an inverted range, an unknown interval, repeated symbols), "
    "ML_UNKNOWN_SYMBOL (no stored bars); " + _EXTRA + ". A build whose range holds no bars "
    "fails with ML_NO_DATA.",
)
async def create_feature_build(
    body: FeatureBuildIn,
    request: Request,
    response: Response,
    db: SessionDep,
    state: StateDep,
    user: TraderUser,
) -> FeatureBuildOut:
    spec = service.normalise_feature_build(body)
    registry.require_extra()
    await anyio.to_thread.run_sync(
        service.check_symbols, state.extras["bar_store"], spec["symbols"]
    )
    row = await service.create_run(db, user.id, spec, user_actor(request, user), kind=FEATURES)
    await service.publish(_bus(state), row.user_id, service.job_message(row))
    runner = state.extras.get("ml_runner")
    if runner is not None:
        runner.wake()
    response.headers["Location"] = f"{request.url.path}/{row.id}"
    return FeatureBuildOut.of(row)


@router.get(
    "/feature-builds",
    response_model=FeatureBuildPageOut,
    responses=error_responses(401, 403, 422),
    summary="Your feature builds, newest first (keyset pagination: next_cursor as `before`)",
    description="An admin sees everyone's, or one user's with `user_id`; anyone else only "
    "their own (another `user_id`: 403 ML_RUNS_FORBIDDEN).",
)
async def list_feature_builds(
    db: SessionDep,
    user: CurrentUser,
    user_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    status_: Annotated[MLRunStatus | None, Query(alias="status")] = None,
    before: Annotated[
        str | None, Query(pattern=CURSOR, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> FeatureBuildPageOut:
    owner: int | None
    if user.role == Role.ADMIN and user_id is None:
        owner = None
    else:
        owner = own_or_admin(user, user_id, code="ML_RUNS_FORBIDDEN", what="feature builds")
    rows, next_cursor = await service.list_runs(
        db, owner, status=status_, before=before, limit=limit, kind=FEATURES
    )
    return FeatureBuildPageOut(items=[FeatureBuildOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/feature-builds/{build_id}",
    response_model=FeatureBuildOut,
    responses=error_responses(401, 403, 404, 422),
    summary="One feature build: status, progress, request, result (once succeeded), error",
    description="Errors: ML_FEATURE_BUILD_NOT_FOUND (404: no such build, or someone else's).",
)
async def get_feature_build(
    build_id: BuildId, db: SessionDep, user: CurrentUser
) -> FeatureBuildOut:
    return FeatureBuildOut.of(await service.get_run(db, build_id, user, kind=FEATURES))


@router.delete(
    "/feature-builds/{build_id}",
    response_model=FeatureBuildOut,
    responses=error_responses(401, 403, 404, 409, 422),
    summary="Cancel a queued or running feature build",
    description="Errors: ML_RUN_FINISHED (409: it succeeded, failed or was cancelled already).",
)
async def cancel_feature_build(
    build_id: BuildId, request: Request, db: SessionDep, state: StateDep, user: TraderUser
) -> FeatureBuildOut:
    root = service.jobs_root(state.settings)
    actor = user_actor(request, user)
    row = await service.cancel_run(db, build_id, user, actor, root, kind=FEATURES)
    await service.publish(_bus(state), row.user_id, service.job_message(row))
    return FeatureBuildOut.of(row)


# --- registered models ------------------------------------------------------------------------


@router.get(
    "/models",
    response_model=ModelsOut,
    responses=error_responses(401, 403, 502, 503),
    summary="Registered models: versions, aliases, checks and out-of-sample metrics",
    description="Errors: " + _EXTRA + ".",
)
async def list_models(state: StateDep, _user: CurrentUser) -> ModelsOut:
    def read() -> list[dict[str, Any]]:
        return registry.describe_models(registry.get_tracker(state.settings))

    return ModelsOut.model_validate({"models": await anyio.to_thread.run_sync(read)})


@router.post(
    "/models/{name}/promote",
    response_model=PromoteOut,
    responses=error_responses(400, 401, 403, 404, 409, 422, 502, 503),
    summary="Point an alias (champion: served, or challenger) at a model version (admin)",
    description="Audited. Errors: MODEL_NOT_FOUND, MODEL_VERSION_NOT_FOUND (404), "
    "ML_CHECKS_FAILED (409: the version failed its checks and cannot take an alias), "
    "ML_BAD_REQUEST (422: an unknown alias), " + _EXTRA + ".",
)
async def promote(
    name: ModelPath,
    body: PromoteIn,
    request: Request,
    db: SessionDep,
    state: StateDep,
    user: AdminUser,
) -> PromoteOut:
    tracker = await anyio.to_thread.run_sync(registry.get_tracker, state.settings)
    previous = await anyio.to_thread.run_sync(
        registry.promote, tracker, name, body.version, body.alias
    )
    changes = {
        "model": name,
        "version": body.version,
        "alias": body.alias,
        "previous_version": previous,
    }
    audit.record(
        db,
        user_actor(request, user),
        "ml.promote",
        target_type="model",
        target_id=name,
        changes=changes,
    )
    try:
        await db.commit()
    except BaseException:
        # An unaudited promotion must not stand: point the alias back where it was.
        await anyio.to_thread.run_sync(registry.restore_alias, tracker, name, body.alias, previous)
        raise
    return PromoteOut(name=name, alias=body.alias, version=body.version, previous_version=previous)


# --- signals and drift ------------------------------------------------------------------------


@router.get(
    "/signals",
    response_model=SignalsOut,
    responses=error_responses(401, 403, 404, 422, 502, 503),
    summary="A model's stored signal series for one symbol",
    description="Points with start <= day of `time` <= end (UTC), oldest first; the latest "
    "`limit` when more match. A model with no stored signals that is not registered: 404 "
    "MODEL_NOT_FOUND; a registered one, or an unknown symbol: no points.",
)
async def signals(
    state: StateDep,
    _user: CurrentUser,
    model: ModelQuery,
    symbol: Annotated[str, Query(min_length=1, max_length=64, pattern=NO_NUL)],
    start: date | None = None,
    end: date | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SIGNAL_POINTS)] = DEFAULT_SIGNAL_POINTS,
) -> SignalsOut:
    try:
        name = normalise_symbol(symbol)
    except ValueError as exc:
        raise ValidationFailed(
            str(exc), code="ML_BAD_REQUEST", details={"field": "symbol"}
        ) from None
    points, truncated = await anyio.to_thread.run_sync(
        registry.read_signals, state.settings, model, name, start, end, limit
    )
    return SignalsOut.model_validate(
        {"model": model, "symbol": name, "points": points, "truncated": truncated}
    )


@router.get(
    "/drift",
    response_model=DriftOut,
    responses=error_responses(401, 403, 404, 422, 503),
    summary="The latest drift report of a model (the inference service writes it)",
    description="Feature drift (PSI per feature against the training deciles) and live "
    "performance against the validation figure. Errors: ML_NO_DRIFT_REPORT (404).",
)
async def drift(state: StateDep, _user: CurrentUser, model: ModelQuery) -> DriftOut:
    report: DriftOut = await anyio.to_thread.run_sync(registry.read_drift, state.settings, model)
    return report
