"""ML training runs over the API: validate and queue them, read them under the access rules,
cancel them, and the state changes the job runner makes.

A training request is checked as ``quantdesk ml train`` checks it, as far as that is cheap
(the values, the label, the range, the symbols known to the bar store), before anything is
stored: a refused request is a 4xx and leaves no row (DESIGN invariant 8). Loading the bars and
building the training set happen in the job (ML_NO_DATA, ML_TOO_FEW_SAMPLES fail the run).
Status changes are conditional UPDATEs (``WHERE status IN ...``), so a cancel racing a finish
has one winner and a finished run never changes again.

Access: a trader (or admin) creates runs; everyone sees and cancels their own runs, an admin
every run. Someone else's run is 404. (Models, signals and drift: :mod:`quantdesk.ml.registry`.)
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import structlog
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from quantdesk.auth.models import User
from quantdesk.auth.roles import Role
from quantdesk.backtest.artifacts import jsonable
from quantdesk.backtest.costs import parse_costs
from quantdesk.backtest.service import JOBS_CHANNEL
from quantdesk.bus.base import EventBus
from quantdesk.errors import Conflict, NotFound, ValidationFailed
from quantdesk.market.candles import INTERVALS
from quantdesk.market.store import BarStore, normalise_symbol
from quantdesk.ml.models_db import FEATURES, LIVE_STATUSES, TRAIN, MLRunRow, MLRunStatus
from quantdesk.ml.schemas import MODEL_KINDS, FeatureBuildIn, MLRunIn
from quantdesk.ml.worker import JobFiles
from quantdesk.observability import audit
from quantdesk.orders.service import decode_cursor, encode_cursor
from quantdesk.settings import Settings
from quantdesk.stream.hub import user_channel

log = structlog.get_logger("quantdesk.ml")

_LIVE = tuple(s.value for s in LIVE_STATUSES)


def _now() -> datetime:
    return datetime.now(UTC)


def jobs_root(settings: Settings) -> Path:
    """Where every job's runtime directory lives (absolute: workers get it as text)."""
    return (settings.data_dir / "ml" / "jobs").absolute()


# --- validation -------------------------------------------------------------------------------


def _bad(field: str, message: str, code: str = "ML_BAD_REQUEST") -> ValidationFailed:
    return ValidationFailed(
        f"{field}: {message}", code=code, details=[{"field": field, "message": message}]
    )


def _finite_in(value: float, low: float, high: float) -> bool:
    return math.isfinite(value) and low <= value < high


def normalise_request(body: MLRunIn) -> dict[str, Any]:
    """The values of a training request checked (ML_BAD_REQUEST, or ML_BAD_DATA where
    ``quantdesk ml train`` says so) and normalised; what needs the extra or the bar store is
    checked by :func:`check_label` and :func:`check_symbols`."""
    if body.model not in MODEL_KINDS:
        raise _bad("model", f"must be one of {', '.join(MODEL_KINDS)}, got {body.model!r}")
    if not 2 <= body.folds <= 20:
        raise _bad("folds", "must be between 2 and 20")
    if not 0 <= body.trials <= 500:
        raise _bad("trials", "must be between 0 and 500")
    if not (math.isfinite(body.threshold) and 0 < body.threshold < 1):
        raise _bad("threshold", "must be a probability strictly between 0 and 1")
    if not _finite_in(body.dead_zone, 0, 1):
        raise _bad("dead_zone", "must be a return in [0, 1)")
    embargo = body.embargo
    if isinstance(embargo, float) and not _finite_in(embargo, 0, 1):
        raise _bad("embargo", "must be whole bars (an integer >= 0) or a fraction in [0, 1)")
    if isinstance(embargo, int) and not 0 <= embargo <= 1_000_000:
        raise _bad("embargo", "must be whole bars (an integer >= 0) or a fraction in [0, 1)")
    try:
        costs = parse_costs(body.costs).spec
    except ValueError as exc:
        raise _bad("costs", str(exc)) from None
    if body.interval not in INTERVALS or body.interval == "1w":
        raise _bad("interval", f"must be one of {', '.join(INTERVALS[:-1])}", "ML_BAD_DATA")
    if body.end < body.start:
        message = f"the date range is inverted: {body.start} is after {body.end}"
        raise _bad("end", message, "ML_BAD_DATA")
    try:
        symbols = [normalise_symbol(s) for s in body.symbols]
    except ValueError as exc:
        raise _bad("symbols", str(exc)) from None
    if not symbols or len(set(symbols)) != len(symbols):
        raise _bad("symbols", "give one or more distinct symbols", "ML_BAD_DATA")
    return {
        "model": body.model,
        "symbols": symbols,
        "interval": body.interval,
        "start": body.start.isoformat(),
        "end": body.end.isoformat(),
        "label": body.label,
        "dead_zone": body.dead_zone,
        "folds": body.folds,
        "trials": body.trials,
        "embargo": embargo,
        "name": body.name or f"{body.model}-{body.interval}",
        "threshold": body.threshold,
        "costs": costs,
        "seed": body.seed,
    }


def normalise_feature_build(body: FeatureBuildIn) -> dict[str, Any]:
    """A feature build's request checked (ML_BAD_DATA, as ``quantdesk ml features build``
    says) and normalised; the symbols' bars are checked by :func:`check_symbols`."""
    if body.interval not in INTERVALS or body.interval == "1w":
        raise _bad("interval", f"must be one of {', '.join(INTERVALS[:-1])}", "ML_BAD_DATA")
    if body.end < body.start:
        message = f"the date range is inverted: {body.start} is after {body.end}"
        raise _bad("end", message, "ML_BAD_DATA")
    try:
        symbols = [normalise_symbol(s) for s in body.symbols]
    except ValueError as exc:
        raise _bad("symbols", str(exc)) from None
    if not symbols or len(set(symbols)) != len(symbols):
        raise _bad("symbols", "give one or more distinct symbols", "ML_BAD_DATA")
    return {
        "symbols": symbols,
        "interval": body.interval,
        "start": body.start.isoformat(),
        "end": body.end.isoformat(),
        "name": f"features-{body.interval}",
    }


def check_label(request: dict[str, Any]) -> None:
    """Parse the label as the pipeline will (needs the extra), storing its canonical form."""
    from quantdesk.ml.dataset import LabelSpec

    try:
        request["label"] = str(LabelSpec.parse(request["label"], request["dead_zone"]))
    except ValueError as exc:
        raise _bad("label", str(exc)) from None


def check_symbols(store: BarStore, symbols: Sequence[str]) -> None:
    """Every symbol has stored bars (blocking: it lists the store)."""
    known = set(store.symbols())
    unknown = [s for s in symbols if s not in known]
    if unknown:
        raise ValidationFailed(
            f"no stored bars for {', '.join(unknown)}",
            code="ML_UNKNOWN_SYMBOL",
            details={"symbols": unknown},
        )


# --- runs -------------------------------------------------------------------------------------


async def create_run(
    db: AsyncSession,
    user_id: int,
    request: dict[str, Any],
    actor: audit.Actor,
    *,
    kind: str = TRAIN,
) -> MLRunRow:
    """Store a validated request (a training run, or a feature build) as a queued job,
    audited, in one transaction."""
    row = MLRunRow(
        id=uuid.uuid4().hex,
        user_id=user_id,
        kind=kind,
        status=MLRunStatus.QUEUED.value,
        progress=0.0,
        request=jsonable(request),
        created_at=_now(),
    )
    db.add(row)
    keys: tuple[str, ...] = ("model", "symbols", "interval", "start", "end", "label", "name")
    if kind == FEATURES:
        keys = ("symbols", "interval", "start", "end")
    audit.record(
        db,
        actor,
        "ml.features" if kind == FEATURES else "ml.train",
        target_type="ml_run",
        target_id=row.id,
        changes={k: request[k] for k in keys},
        at=row.created_at,
    )
    await db.commit()
    return row


def _not_found(run_id: str, kind: str) -> NotFound:
    if kind == FEATURES:
        return NotFound(
            "No such feature build.", code="ML_FEATURE_BUILD_NOT_FOUND", details={"id": run_id[:64]}
        )
    return NotFound("No such ML run.", code="ML_RUN_NOT_FOUND", details={"id": run_id[:64]})


async def get_run(db: AsyncSession, run_id: str, user: User, *, kind: str = TRAIN) -> MLRunRow:
    """A job of ``kind`` the user may see (their own; an admin any); 404 otherwise."""
    row = await db.get(MLRunRow, run_id, populate_existing=True)
    if row is None or row.kind != kind or (row.user_id != user.id and user.role != Role.ADMIN):
        raise _not_found(run_id, kind)
    return row


async def list_runs(
    db: AsyncSession,
    user_id: int | None,
    *,
    status: MLRunStatus | None = None,
    before: str | None = None,
    limit: int = 50,
    kind: str = TRAIN,
) -> tuple[list[MLRunRow], str | None]:
    """Jobs of ``kind`` of ``user_id`` (None: everyone's), newest first; keyset pagination on
    (created_at, id)."""
    q = select(MLRunRow).where(MLRunRow.kind == kind)
    if user_id is not None:
        q = q.where(MLRunRow.user_id == user_id)
    if status is not None:
        q = q.where(MLRunRow.status == status.value)
    if before is not None:
        at, run_id = decode_cursor(before)
        q = q.where(
            or_(
                MLRunRow.created_at < at,
                and_(MLRunRow.created_at == at, MLRunRow.id < run_id),
            )
        )
    q = q.order_by(MLRunRow.created_at.desc(), MLRunRow.id.desc()).limit(limit + 1)
    rows = list((await db.execute(q)).scalars())
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return page, next_cursor


async def cancel_run(
    db: AsyncSession,
    run_id: str,
    user: User,
    actor: audit.Actor,
    root: Path,
    *,
    kind: str = TRAIN,
) -> MLRunRow:
    """Cancel a queued or running job: the row is cancelled at once; a running job's worker
    sees the cancel file and stops (or is stopped)."""
    row = await get_run(db, run_id, user, kind=kind)
    previous = row.status
    done = await db.execute(
        update(MLRunRow)
        .where(MLRunRow.id == row.id, MLRunRow.status.in_(_LIVE))
        .values(status=MLRunStatus.CANCELLED.value, finished_at=_now())
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        await db.commit()  # nothing changed; commit, not rollback, keeps `user` loaded
        row = await get_run(db, run_id, user, kind=kind)
        raise Conflict(
            f"The ML run has finished ({row.status}); only a queued or running one can be "
            "cancelled.",
            code="ML_RUN_FINISHED",
            details={"id": row.id, "status": row.status},
        )
    audit.record(
        db,
        actor,
        "ml.cancel",
        target_type="ml_run",
        target_id=row.id,
        changes={"from_status": previous, "owner_id": row.user_id},
    )
    await db.commit()
    if previous == MLRunStatus.RUNNING:
        await anyio.to_thread.run_sync(JobFiles(root, row.id).request_cancel)
    return await get_run(db, run_id, user, kind=kind)


def succeeded_result(row: MLRunRow) -> dict[str, Any]:
    if row.status != MLRunStatus.SUCCEEDED or row.result is None:
        raise Conflict(
            f"The ML run has no results: it is {row.status}.",
            code="ML_RUN_NOT_SUCCEEDED",
            details={"id": row.id, "status": row.status},
        )
    return row.result


# --- the job runner's state changes -----------------------------------------------------------


async def claim_queued(db: AsyncSession, limit: int) -> list[MLRunRow]:
    """Up to ``limit`` queued runs, oldest first, now running; each taken with a conditional
    UPDATE, so two runners never take the same run."""
    q = (
        select(MLRunRow.id)
        .where(MLRunRow.status == MLRunStatus.QUEUED.value)
        .order_by(MLRunRow.created_at, MLRunRow.id)
        .limit(limit)
    )
    claimed = []
    now = _now()
    for run_id in list((await db.execute(q)).scalars()):
        done = await db.execute(
            update(MLRunRow)
            .where(MLRunRow.id == run_id, MLRunRow.status == MLRunStatus.QUEUED.value)
            .values(status=MLRunStatus.RUNNING.value, progress=0.0, stage=None, started_at=now)
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(run_id)
    await db.commit()
    if not claimed:
        return []
    rows = {
        r.id: r
        for r in (await db.execute(select(MLRunRow).where(MLRunRow.id.in_(claimed)))).scalars()
    }
    return [rows[i] for i in claimed if i in rows]


async def set_progress(
    db: AsyncSession, run_id: str, fraction: float, stage: dict[str, Any]
) -> bool:
    """Store a running run's progress; False when it is no longer running (cancelled)."""
    done = await db.execute(
        update(MLRunRow)
        .where(MLRunRow.id == run_id, MLRunRow.status == MLRunStatus.RUNNING.value)
        .values(progress=min(max(fraction, 0.0), 1.0), stage=stage)
    )
    await db.commit()
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


async def finish(
    db: AsyncSession,
    run_id: str,
    status: MLRunStatus,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> MLRunRow | None:
    """End a running run; None when it was no longer running (cancelled meanwhile)."""
    values: dict[str, Any] = {"status": status.value, "finished_at": _now()}
    if status == MLRunStatus.SUCCEEDED:
        values.update(progress=1.0, result=jsonable(result))
    if error is not None:
        values["error"] = jsonable(error)
    done = await db.execute(
        update(MLRunRow)
        .where(MLRunRow.id == run_id, MLRunRow.status == MLRunStatus.RUNNING.value)
        .values(**values)
    )
    await db.commit()
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return await db.get(MLRunRow, run_id, populate_existing=True)


async def requeue(db: AsyncSession, run_ids: Iterable[str] | None = None) -> list[MLRunRow]:
    """Put running runs back in the queue (``run_ids``, or every running one: a start-up after
    a crash). Training is seeded: running it again gives the same model (a new version)."""
    cond = [MLRunRow.status == MLRunStatus.RUNNING.value]
    if run_ids is not None:
        ids = list(run_ids)
        if not ids:
            return []
        cond.append(MLRunRow.id.in_(ids))
    found = list((await db.execute(select(MLRunRow.id).where(*cond))).scalars())
    if not found:
        return []
    await db.execute(
        update(MLRunRow)
        .where(*cond, MLRunRow.id.in_(found))
        .values(status=MLRunStatus.QUEUED.value, progress=0.0, stage=None, started_at=None)
    )
    await db.commit()
    return list((await db.execute(select(MLRunRow).where(MLRunRow.id.in_(found)))).scalars())


async def live_ids(db: AsyncSession, run_ids: Sequence[str]) -> set[str]:
    """Of ``run_ids``, those still queued or running (their runtime files are wanted)."""
    found: set[str] = set()
    for chunk in range(0, len(run_ids), 500):
        q = select(MLRunRow.id).where(
            MLRunRow.id.in_(run_ids[chunk : chunk + 500]), MLRunRow.status.in_(_LIVE)
        )
        found.update((await db.execute(q)).scalars())
    return found


# --- publishing -------------------------------------------------------------------------------


def message_kind(kind: str) -> str:
    """The ``jobs`` channel's ``kind`` of an ML job: ml_train or ml_features."""
    return "ml_features" if kind == FEATURES else "ml_train"


def job_message(row: MLRunRow) -> dict[str, Any]:
    """The ``jobs`` channel's message for a job's state (``progress`` a fraction, as for
    backtests; ``stage`` the pipeline's last report)."""
    msg: dict[str, Any] = {
        "type": "job",
        "kind": message_kind(row.kind),
        "id": row.id,
        "status": row.status,
        "progress": row.progress,
        "stage": row.stage,
    }
    if row.status == MLRunStatus.SUCCEEDED and row.result is not None:
        result = row.result
        keys = ("hash", "rows") if row.kind == FEATURES else ("run_id", "model_name", "version")
        msg["result"] = {k: result.get(k) for k in keys}
    if row.status == MLRunStatus.FAILED and row.error is not None:
        msg["error"] = row.error
    return msg


async def publish(bus: EventBus | None, user_id: int, message: dict[str, Any]) -> None:
    """Best effort: a bus hiccup must not fail a stored change."""
    if bus is None:
        return
    try:
        await bus.publish(user_channel(user_id, JOBS_CHANNEL), message)
    except Exception as exc:
        log.warning("ml_publish_failed", user_id=user_id, error=repr(exc))
