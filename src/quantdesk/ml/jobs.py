"""The ML job runner of a ``serve`` process: queued training runs and feature builds run in
worker processes.

The same mechanism as the backtest jobs (:mod:`quantdesk.backtest.jobs`): the ``ml_runs``
table is the queue; the runner claims queued rows (a conditional UPDATE, so two processes never
take the same run) and runs each in a ``ProcessPoolExecutor`` worker (forkserver, the pipeline
preloaded): training is CPU-bound and never runs on the event loop. Every ``POLL_SECONDS`` it
reads each running job's progress file, stores the progress and publishes it on the owner's
``jobs`` channel, then stores and publishes the outcome.

Cancelling: the API marks the row cancelled and writes the job's ``cancel`` file; the worker
checks it at each of the pipeline's progress reports and stops. A worker that has not stopped
``STOP_GRACE_SECONDS`` later (inside a long fit) is killed; so is a job running longer than
``QUANTDESK_ML_TIMEOUT_SECONDS`` (it fails with ML_TIMEOUT). Killing a worker breaks the whole
pool (ProcessPoolExecutor's rule): the other jobs that pool was running are re-queued and the
next jobs get a new pool.

Restarts: jobs left running by a previous process are re-queued at start-up (training is
seeded: it gives the same model again, as a new version) and queued jobs are picked up; a
graceful stop re-queues what it was running. So run ML workers in ONE process per installation
(``QUANTDESK_ML_WORKERS=0`` elsewhere): a starting runner re-queues every running job it finds.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.alerts.model import Alert, AlertKind, AlertSink, Severity
from quantdesk.bus.base import EventBus
from quantdesk.ml import service
from quantdesk.ml.models_db import FEATURES, MLRunRow, MLRunStatus
from quantdesk.ml.worker import JobFiles, JobSpec, Progress, init_worker, job_dirs, run_job
from quantdesk.settings import Settings

log = structlog.get_logger("quantdesk.ml.jobs")

POLL_SECONDS = 0.5
"""How often running jobs' progress and cancel files are read (and progress stored)."""
CLAIM_SECONDS = 2.0
"""How often the queue is read without a wake-up (jobs queued by other processes)."""
STOP_GRACE_SECONDS = 2.0
"""How long a cancelled (or timed-out) job's worker may take to stop before it is killed."""
MAX_CRASHES = 2
"""A job whose worker died this many times (not killed by us) fails with ML_WORKER_DIED."""
# One forkserver serves every pool of the process, preloaded once by whichever pool starts it
# first: the backtest workers' modules too, so neither kind of job pays the other's imports.
_PRELOAD = [
    "quantdesk.backtest.worker",
    "quantdesk.backtest.tearsheet",
    "quantdesk.ml.worker",
    "quantdesk.ml.pipeline",  # skipped (ImportError) without the ml extra
]


class _Pool:
    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        self.executor = ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker)
        self.killed = False  # we killed one of its workers: its other jobs were innocent

    def owns(self, pid: int) -> bool:
        # ``_processes`` is private, but the only way to know a pid is this pool's worker (and
        # not a recycled pid) before killing it.
        processes = getattr(self.executor, "_processes", None)
        return processes is not None and pid in processes

    def terminate(self) -> None:
        for process in list((getattr(self.executor, "_processes", None) or {}).values()):
            with contextlib.suppress(Exception):
                process.kill()
        self.executor.shutdown(wait=False, cancel_futures=True)


@dataclass(eq=False)
class _Job:
    id: str
    user_id: int
    kind: str
    name: str
    files: JobFiles
    pool: _Pool
    future: asyncio.Future[dict[str, Any]]
    started: float = field(default_factory=time.monotonic)
    progress: float = 0.0
    stage: dict[str, Any] | None = None
    pid: int | None = None
    stop_reason: str | None = None  # "cancel" or "timeout"
    stop_at: float = 0.0
    task: asyncio.Task[None] | None = None


class MLRunner:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus | None,
        alerts: AlertSink | None = None,
        *,
        bars_dir: Path,
    ) -> None:
        self.settings = settings
        self.bars_dir = bars_dir.absolute()
        self.sessions = sessions
        self.bus = bus
        self.alerts = alerts
        self.workers = settings.ml_workers
        self.root = service.jobs_root(settings)
        self.jobs: dict[str, _Job] = {}
        self._pool: _Pool | None = None
        self._crashes: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="ml-runner")

    async def _recover(self) -> None:
        """Before the first claim: re-queue what a previous process left running."""
        async with self.sessions() as db:
            requeued = await service.requeue(db)
        for row in requeued:
            log.warning("ml_run_requeued_after_restart", id=row.id)
            await service.publish(self.bus, row.user_id, service.job_message(row))
        await self._sweep_orphans()

    async def stop(self) -> None:
        """Stop claiming, kill the workers, and put what they were running back in the queue."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        jobs = list(self.jobs.values())
        for job in jobs:
            if job.task is not None:
                job.task.cancel()
        await asyncio.gather(*(j.task for j in jobs if j.task is not None), return_exceptions=True)
        pools = {id(j.pool): j.pool for j in jobs}
        if self._pool is not None:
            pools[id(self._pool)] = self._pool
        for pool in pools.values():
            pool.terminate()
        self._pool = None
        self.jobs.clear()
        if jobs:
            try:
                async with self.sessions() as db:
                    await service.requeue(db, [j.id for j in jobs])
            except Exception as exc:  # the next start re-queues them anyway
                log.warning("ml_requeue_on_stop_failed", error=repr(exc))

    def wake(self) -> None:
        """A run was queued: look at the queue now rather than at the next poll."""
        self._wake.set()

    async def _sweep_orphans(self) -> None:
        """Remove runtime directories whose run is no longer queued or running."""
        try:
            ids = await anyio.to_thread.run_sync(job_dirs, self.root)
            if not ids:
                return
            async with self.sessions() as db:
                keep = await service.live_ids(db, ids)
            for run_id in ids:
                if run_id not in keep:
                    await anyio.to_thread.run_sync(JobFiles(self.root, run_id).delete)
        except Exception as exc:  # tidying up must not stop the runner
            log.warning("ml_sweep_failed", error=repr(exc))

    # -- claiming ----------------------------------------------------------------------------

    async def _loop(self) -> None:
        recovered = False
        while True:
            self._wake.clear()
            try:
                if not recovered:
                    await self._recover()
                    recovered = True
                await self._fill_slots()
            except Exception as exc:  # the database is down: try again at the next poll
                log.warning("ml_runner_db_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLAIM_SECONDS):
                    await self._wake.wait()

    async def _fill_slots(self) -> None:
        free = self.workers - len(self.jobs)
        if free <= 0:
            return
        async with self.sessions() as db:
            rows = await service.claim_queued(db, free)
        for row in rows:
            try:
                await self._submit(row)
            except Exception as exc:  # claimed but not started: it must not stay "running"
                log.error("ml_run_start_failed", id=row.id, exc_info=exc)
                error = {
                    "code": "ML_TRAINING_FAILED",
                    "message": f"the job could not start: {type(exc).__name__}: {exc}",
                }
                await self._finish_row(row.id, {"status": "failed", "error": error})

    async def _submit(self, row: MLRunRow) -> None:
        files = JobFiles(self.root, row.id)
        await anyio.to_thread.run_sync(files.delete)  # flags of an earlier attempt
        artifact_dir = self.settings.mlflow_artifact_dir.absolute()
        spec = JobSpec(
            run_id=row.id,
            user_id=row.user_id,
            request=row.request,
            root=str(self.root),
            bars_dir=str(self.bars_dir),
            tracking_uri=self.settings.resolved_mlflow_tracking_uri,
            artifact_dir=str(artifact_dir),
            kind=row.kind,
            data_dir=str(self.settings.data_dir.absolute()),
        )
        pool, future = self._run_in_pool(spec)
        job = _Job(
            id=row.id,
            user_id=row.user_id,
            kind=row.kind,
            name=str(row.request.get("name")),
            files=files,
            pool=pool,
            future=asyncio.wrap_future(future),
        )
        self.jobs[row.id] = job
        job.task = asyncio.create_task(self._supervise(job), name=f"ml-{row.id}")
        log.info("ml_run_started", id=row.id, model=job.name, user_id=row.user_id)
        await service.publish(self.bus, row.user_id, service.job_message(row))

    def _run_in_pool(self, spec: JobSpec) -> tuple[_Pool, Future[dict[str, Any]]]:
        for _ in range(2):
            if self._pool is None:
                self._pool = _Pool(self.workers)
            try:
                return self._pool, self._pool.executor.submit(run_job, spec)
            except BrokenProcessPool:  # a worker died since the last job: start afresh
                self._pool.terminate()
                self._pool = None
        raise RuntimeError("cannot start an ML worker pool")

    # -- watching ----------------------------------------------------------------------------

    async def _supervise(self, job: _Job) -> None:
        try:
            outcome = await self._watch(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave the run "running"
            log.error("ml_supervision_failed", id=job.id, exc_info=exc)
            outcome = {
                "status": "failed",
                "error": {"code": "ML_TRAINING_FAILED", "message": f"{type(exc).__name__}: {exc}"},
            }
        try:
            await self._finish(job, outcome)
        except Exception as exc:  # the database is down: the next start re-queues the run
            log.error("ml_finish_failed", id=job.id, exc_info=exc)
        finally:
            self.jobs.pop(job.id, None)
            self._wake.set()

    async def _watch(self, job: _Job) -> dict[str, Any]:
        while True:
            done, _ = await asyncio.wait({job.future}, timeout=POLL_SECONDS)
            if done:
                break
            await self._check(job)
        try:
            return job.future.result()
        except BrokenProcessPool:
            return self._after_break(job)

    async def _check(self, job: _Job) -> None:
        progress, cancelled = await anyio.to_thread.run_sync(_peek, job.files)
        if progress is not None:
            job.pid = progress.pid
            if progress.as_stage() != job.stage:
                job.stage = progress.as_stage()
                job.progress = max(job.progress, progress.fraction)
                async with self.sessions() as db:
                    running = await service.set_progress(db, job.id, job.progress, job.stage)
                if running:
                    message = {
                        "type": "job",
                        "kind": service.message_kind(job.kind),
                        "id": job.id,
                        "status": MLRunStatus.RUNNING.value,
                        "progress": job.progress,
                        "stage": job.stage,
                    }
                    await service.publish(self.bus, job.user_id, message)
                elif not cancelled:  # cancelled through the database alone
                    await anyio.to_thread.run_sync(job.files.request_cancel)
                    cancelled = True
        now = time.monotonic()
        if job.stop_reason is None:
            if cancelled:
                job.stop_reason, job.stop_at = "cancel", now
            elif now - job.started > self.settings.ml_timeout_seconds:
                job.stop_reason, job.stop_at = "timeout", now
                await anyio.to_thread.run_sync(job.files.request_cancel)
        elif now - job.stop_at > STOP_GRACE_SECONDS:
            self._kill(job)

    def _kill(self, job: _Job) -> None:
        pid = job.pid
        if pid is None or not job.pool.owns(pid):
            return  # not started yet: the worker checks the cancel file when it starts
        log.warning("ml_worker_killed", id=job.id, pid=pid, reason=job.stop_reason)
        job.pool.killed = True
        if self._pool is job.pool:
            self._pool = None  # the next jobs get a new pool
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        job.pool.executor.shutdown(wait=False, cancel_futures=True)

    def _after_break(self, job: _Job) -> dict[str, Any]:
        """The job's pool broke: we killed this job, we killed another job of the pool, or a
        worker died on its own (out of memory, a crash in native code)."""
        if self._pool is job.pool:
            self._pool = None
        if job.stop_reason is not None:
            return {"status": "cancelled"}
        if job.pool.killed:
            return {"status": "requeue"}
        crashes = self._crashes[job.id] = self._crashes.get(job.id, 0) + 1
        log.error("ml_worker_died", id=job.id, crashes=crashes)
        if crashes < MAX_CRASHES:
            return {"status": "requeue"}
        return {
            "status": "failed",
            "error": {
                "code": "ML_WORKER_DIED",
                "message": f"the worker process died {crashes} times running this training "
                "(out of memory, or killed)",
            },
        }

    # -- outcomes ----------------------------------------------------------------------------

    async def _finish(self, job: _Job, outcome: dict[str, Any]) -> None:
        if outcome["status"] == "cancelled" and job.stop_reason == "timeout":
            limit = self.settings.ml_timeout_seconds
            message = f"the training ran longer than {limit:g} s and was stopped"
            outcome = {"status": "failed", "error": {"code": "ML_TIMEOUT", "message": message}}
        await anyio.to_thread.run_sync(job.files.delete)
        await self._finish_row(job.id, outcome)

    async def _finish_row(self, run_id: str, outcome: dict[str, Any]) -> None:
        status = outcome["status"]
        async with self.sessions() as db:
            if status == "requeue":
                rows = await service.requeue(db, [run_id])
                row = rows[0] if rows else None
            else:
                row = await service.finish(
                    db,
                    run_id,
                    MLRunStatus(status),
                    result=outcome.get("result"),
                    error=outcome.get("error"),
                )
        if row is None:  # cancelled meanwhile: whoever did it has told the owner
            return
        if row.status != MLRunStatus.QUEUED:
            self._crashes.pop(run_id, None)
        log.info("ml_run_finished", id=run_id, status=row.status)
        await service.publish(self.bus, row.user_id, service.job_message(row))
        if row.status == MLRunStatus.FAILED:
            self._alert(row)
        elif row.status == MLRunStatus.QUEUED:
            self._wake.set()

    def _alert(self, row: MLRunRow) -> None:
        if self.alerts is None:
            return
        error = row.error or {}
        what = "Feature build" if row.kind == FEATURES else "Training"
        try:
            self.alerts.notify(
                Alert(
                    AlertKind.SYSTEM_ERROR,
                    Severity.WARNING,
                    f"{what} failed: {row.request.get('name')}",
                    f"{error.get('code')}: {error.get('message')} (ML run {row.id})",
                    user_id=row.user_id,
                    dedup_key=f"ml_run:{row.id}",
                    data={
                        "kind": service.message_kind(row.kind),
                        "id": row.id,
                        "code": error.get("code"),
                    },
                )
            )
        except Exception as exc:  # alerts are best effort
            log.warning("ml_alert_failed", id=row.id, error=repr(exc))


def _peek(files: JobFiles) -> tuple[Progress | None, bool]:
    return files.read_progress(), files.cancel_requested()


async def start_ml_runner(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    bus: EventBus | None,
    alerts: AlertSink | None = None,
    *,
    bars_dir: Path,
) -> MLRunner | None:
    """This process's runner, started; None when ``QUANTDESK_ML_WORKERS`` is 0."""
    if settings.ml_workers <= 0:
        return None
    runner = MLRunner(settings, sessions, bus, alerts, bars_dir=bars_dir)
    await runner.start()
    return runner
