"""Strategies and backtest jobs: list strategies, validate and queue runs, read runs and their
results under the access rules, cancel them, and the state changes the job runner makes.

A request is validated completely (``runner.prepare``: strategy, parameters, range, symbols,
data) before anything is stored; a refused request is a 4xx and leaves no row (DESIGN
invariant 8). Status changes are conditional UPDATEs (``WHERE status IN ...``), so a cancel
racing a finish has one winner and a finished run never changes again.

Access: a trader creates runs and sees and cancels its own; a viewer sees every run (read
only); an admin sees and cancels every run. Someone else's run, when not visible, is 404.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import structlog
from pydantic import ValidationError
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from quantdesk.auth.models import User
from quantdesk.auth.roles import Role
from quantdesk.backtest.artifacts import EquityPoint, RunFiles, jsonable
from quantdesk.backtest.models import LIVE_STATUSES, BacktestRunRow, BacktestStatus
from quantdesk.backtest.runner import BacktestError, BacktestRequest, prepare
from quantdesk.bus.base import EventBus
from quantdesk.core.fills import FillModel
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.errors import Conflict, NotFound, ValidationFailed
from quantdesk.market.models import Instrument
from quantdesk.market.store import BarStore
from quantdesk.observability import audit
from quantdesk.orders.service import decode_cursor, encode_cursor
from quantdesk.settings import Settings
from quantdesk.strategy.registry import Registry
from quantdesk.stream.hub import user_channel

log = structlog.get_logger("quantdesk.backtest")

JOBS_CHANNEL = "jobs"
_LIVE = tuple(s.value for s in LIVE_STATUSES)


def _now() -> datetime:
    return datetime.now(UTC)


# --- strategies -------------------------------------------------------------------------------


def load_registry(settings: Settings) -> Registry:
    """Built-in and user strategies, the user files read afresh (blocking: call in a thread)."""
    return Registry(settings.resolved_strategy_dir)


def describe_strategies(settings: Settings) -> dict[str, Any]:
    registry = load_registry(settings)
    return {
        "strategies": registry.describe_all(),
        "errors": [e.as_dict() for e in registry.errors],
    }


# --- validation -------------------------------------------------------------------------------


def to_request(body: Mapping[str, Any]) -> BacktestRequest:
    """The runner's request from the API body; what it refuses is BACKTEST_BAD_REQUEST."""
    try:
        return BacktestRequest.model_validate(dict(body))
    except ValidationError as exc:
        details = [
            {
                "field": ".".join(str(p) for p in e["loc"]) or "body",
                "message": e["msg"],
                "type": e["type"],
            }
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        first = details[0]
        raise ValidationFailed(
            f"{first['field']}: {first['message']}", code="BACKTEST_BAD_REQUEST", details=details
        ) from exc


def validate(
    request: BacktestRequest,
    *,
    store: BarStore,
    registry: Registry,
    fill_model: FillModel,
    specs: Mapping[str, InstrumentSpec],
) -> None:
    """Everything the run will need, checked now (blocking: it loads the bars)."""
    try:
        prepare(request, store=store, registry=registry, paper_fill_model=fill_model, specs=specs)
    except BacktestError as exc:
        raise ValidationFailed(
            str(exc), code=exc.code, details=jsonable(exc.details) or None
        ) from exc
    except Exception as exc:  # a user strategy's own code (its __init__) may raise anything
        log.warning("backtest_validation_raised", strategy=request.strategy, exc_info=exc)
        raise ValidationFailed(
            f"the strategy raised while the request was checked: {type(exc).__name__}: {exc}",
            code="BACKTEST_STRATEGY_FAILED",
            details={"strategy": request.strategy},
        ) from exc


async def instrument_specs(db: AsyncSession, symbols: Sequence[str]) -> dict[str, InstrumentSpec]:
    """Tick and lot sizes of the symbols the instruments table has (others use defaults)."""
    pairs = [s.partition(":") for s in symbols]
    if not pairs:
        return {}
    q = select(Instrument).where(
        or_(*(and_(Instrument.exchange == ex, Instrument.symbol == sym) for ex, _, sym in pairs))
    )
    return {str(i.ref): i.spec() for i in (await db.execute(q)).scalars()}


# --- use cases --------------------------------------------------------------------------------


async def create_run(
    db: AsyncSession, user_id: int, request: BacktestRequest, actor: audit.Actor
) -> BacktestRunRow:
    """Store a validated request as a queued run, audited, in one transaction."""
    body: dict[str, Any] = jsonable(request.model_dump(mode="json"))
    row = BacktestRunRow(
        id=uuid.uuid4().hex,
        user_id=user_id,
        status=BacktestStatus.QUEUED.value,
        progress=0.0,
        request=body,
        created_at=_now(),
    )
    db.add(row)
    audit.record(
        db,
        actor,
        "backtest.create",
        target_type="backtest",
        target_id=row.id,
        changes={k: body[k] for k in ("strategy", "symbols", "interval", "start", "end", "engine")},
        at=row.created_at,
    )
    await db.commit()
    return row


def sees_all(user: User) -> bool:
    return user.role in (Role.ADMIN, Role.VIEWER)


def _not_found(run_id: str) -> NotFound:
    return NotFound("No such backtest.", code="BACKTEST_NOT_FOUND", details={"id": run_id[:64]})


async def get_run(db: AsyncSession, run_id: str, user: User) -> BacktestRunRow:
    row = await db.get(BacktestRunRow, run_id, populate_existing=True)
    if row is None or (row.user_id != user.id and not sees_all(user)):
        raise _not_found(run_id)
    return row


async def list_runs(
    db: AsyncSession,
    user: User,
    *,
    status: BacktestStatus | None = None,
    before: str | None = None,
    limit: int = 50,
) -> tuple[list[BacktestRunRow], str | None]:
    """Newest first; keyset pagination on (created_at, id)."""
    q = select(BacktestRunRow)
    if not sees_all(user):
        q = q.where(BacktestRunRow.user_id == user.id)
    if status is not None:
        q = q.where(BacktestRunRow.status == status.value)
    if before is not None:
        at, run_id = decode_cursor(before)
        q = q.where(
            or_(
                BacktestRunRow.created_at < at,
                and_(BacktestRunRow.created_at == at, BacktestRunRow.id < run_id),
            )
        )
    q = q.order_by(BacktestRunRow.created_at.desc(), BacktestRunRow.id.desc()).limit(limit + 1)
    rows = list((await db.execute(q)).scalars())
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return page, next_cursor


async def cancel_run(
    db: AsyncSession, run_id: str, user: User, actor: audit.Actor, root: Path
) -> BacktestRunRow:
    """Cancel a queued or running run (a trader its own, an admin any): the row is cancelled at
    once; a running job's worker sees the cancel file and stops (or is stopped)."""
    row = await get_run(db, run_id, user)
    previous = row.status
    done = await db.execute(
        update(BacktestRunRow)
        .where(BacktestRunRow.id == row.id, BacktestRunRow.status.in_(_LIVE))
        .values(status=BacktestStatus.CANCELLED.value, finished_at=_now())
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        await db.commit()  # nothing changed; commit, not rollback, keeps `user` loaded
        row = await get_run(db, run_id, user)
        raise Conflict(
            f"The backtest has finished ({row.status}); only a queued or running one can be "
            "cancelled.",
            code="BACKTEST_FINISHED",
            details={"id": row.id, "status": row.status},
        )
    audit.record(
        db,
        actor,
        "backtest.cancel",
        target_type="backtest",
        target_id=row.id,
        changes={"from_status": previous, "owner_id": row.user_id},
    )
    await db.commit()
    if previous == BacktestStatus.RUNNING:
        await anyio.to_thread.run_sync(RunFiles(root, row.id).request_cancel)
    return await get_run(db, run_id, user)


async def delete_run(db: AsyncSession, run_id: str, root: Path) -> bool:
    """Delete a run's row and then its files (a running job notices and stops)."""
    done = await db.execute(delete(BacktestRunRow).where(BacktestRunRow.id == run_id))
    await db.commit()
    await anyio.to_thread.run_sync(RunFiles(root, run_id).delete)
    return bool(done.rowcount)  # type: ignore[attr-defined]


# --- results ----------------------------------------------------------------------------------


def _files_of_success(row: BacktestRunRow, root: Path) -> RunFiles:
    if row.status != BacktestStatus.SUCCEEDED:
        raise Conflict(
            f"The backtest has no results: it is {row.status}.",
            code="BACKTEST_NOT_SUCCEEDED",
            details={"id": row.id, "status": row.status},
        )
    files = RunFiles(root, row.id)
    if not files.has_result():
        raise NotFound(
            "The backtest's result files are missing.",
            code="BACKTEST_RESULT_MISSING",
            details={"id": row.id},
        )
    return files


async def trades(row: BacktestRunRow, root: Path) -> dict[str, Any]:
    files = _files_of_success(row, root)
    doc = await anyio.to_thread.run_sync(files.read_result)
    return {"fills": doc["fills"], "round_trips": doc["round_trips"]}


async def equity(row: BacktestRunRow, root: Path, max_points: int) -> list[EquityPoint]:
    files = _files_of_success(row, root)
    return await anyio.to_thread.run_sync(files.read_equity, max_points)


async def report(row: BacktestRunRow, root: Path) -> bytes:
    files = _files_of_success(row, root)
    return await anyio.to_thread.run_sync(files.read_report)


# --- the job runner's state changes -----------------------------------------------------------


async def claim_queued(db: AsyncSession, limit: int) -> list[BacktestRunRow]:
    """Up to ``limit`` queued runs, oldest first, now running. Each is taken with a conditional
    UPDATE, so two runners never take the same run."""
    ids = (
        await db.execute(
            select(BacktestRunRow.id)
            .where(BacktestRunRow.status == BacktestStatus.QUEUED.value)
            .order_by(BacktestRunRow.created_at, BacktestRunRow.id)
            .limit(limit)
        )
    ).scalars()
    claimed = []
    now = _now()
    for run_id in list(ids):
        done = await db.execute(
            update(BacktestRunRow)
            .where(
                BacktestRunRow.id == run_id,
                BacktestRunRow.status == BacktestStatus.QUEUED.value,
            )
            .values(status=BacktestStatus.RUNNING.value, progress=0.0, started_at=now)
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(run_id)
    await db.commit()
    if not claimed:
        return []
    q = select(BacktestRunRow).where(BacktestRunRow.id.in_(claimed))
    rows = {r.id: r for r in (await db.execute(q)).scalars()}
    return [rows[i] for i in claimed if i in rows]


async def set_progress(db: AsyncSession, run_id: str, progress: float) -> bool:
    """Store a running run's progress; False when it is no longer running (cancelled)."""
    done = await db.execute(
        update(BacktestRunRow)
        .where(BacktestRunRow.id == run_id, BacktestRunRow.status == BacktestStatus.RUNNING.value)
        .values(progress=min(max(progress, 0.0), 1.0))
    )
    await db.commit()
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


async def finish(
    db: AsyncSession,
    run_id: str,
    status: BacktestStatus,
    *,
    summary: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> BacktestRunRow | None:
    """End a running run; None when it was no longer running (cancelled or deleted)."""
    values: dict[str, Any] = {"status": status.value, "finished_at": _now()}
    if status == BacktestStatus.SUCCEEDED:
        values.update(progress=1.0, summary=jsonable(summary))
    if error is not None:
        values["error"] = jsonable(error)
    done = await db.execute(
        update(BacktestRunRow)
        .where(BacktestRunRow.id == run_id, BacktestRunRow.status == BacktestStatus.RUNNING.value)
        .values(**values)
    )
    await db.commit()
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return await db.get(BacktestRunRow, run_id, populate_existing=True)


async def requeue(db: AsyncSession, run_ids: Iterable[str] | None = None) -> list[BacktestRunRow]:
    """Put running runs back in the queue (``run_ids``, or every running one: a start-up after
    a crash). A run is deterministic, so running it again gives the same result."""
    cond = [BacktestRunRow.status == BacktestStatus.RUNNING.value]
    if run_ids is not None:
        ids = list(run_ids)
        if not ids:
            return []
        cond.append(BacktestRunRow.id.in_(ids))
    found = list((await db.execute(select(BacktestRunRow.id).where(*cond))).scalars())
    if not found:
        return []
    await db.execute(
        update(BacktestRunRow)
        .where(*cond, BacktestRunRow.id.in_(found))
        .values(status=BacktestStatus.QUEUED.value, progress=0.0, started_at=None)
    )
    await db.commit()
    q = select(BacktestRunRow).where(BacktestRunRow.id.in_(found))
    return list((await db.execute(q)).scalars())


async def ids_with_results(db: AsyncSession, run_ids: Sequence[str]) -> set[str]:
    """Of ``run_ids``, those whose files are still wanted (live or succeeded runs)."""
    wanted = (*_LIVE, BacktestStatus.SUCCEEDED.value)
    found: set[str] = set()
    for chunk in range(0, len(run_ids), 500):
        q = select(BacktestRunRow.id).where(
            BacktestRunRow.id.in_(run_ids[chunk : chunk + 500]),
            BacktestRunRow.status.in_(wanted),
        )
        found.update((await db.execute(q)).scalars())
    return found


# --- publishing -------------------------------------------------------------------------------


def job_message(row: BacktestRunRow) -> dict[str, Any]:
    """The ``jobs`` channel's message for a run's state."""
    msg: dict[str, Any] = {
        "type": "job",
        "kind": "backtest",
        "id": row.id,
        "status": row.status,
        "progress": row.progress,
    }
    if row.status == BacktestStatus.SUCCEEDED and row.summary is not None:
        msg["summary"] = row.summary
    if row.status == BacktestStatus.FAILED and row.error is not None:
        msg["error"] = row.error
    return msg


async def publish(bus: EventBus | None, user_id: int, message: dict[str, Any]) -> None:
    """Best effort: a bus hiccup must not fail a stored change."""
    if bus is None:
        return
    try:
        await bus.publish(user_channel(user_id, JOBS_CHANNEL), message)
    except Exception as exc:
        log.warning("backtest_publish_failed", user_id=user_id, error=repr(exc))
