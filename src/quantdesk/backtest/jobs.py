"""The backtest job runner of a ``serve`` process: queued backtests run in worker processes.

The ``backtest_runs`` table is the queue. The runner claims queued rows (a conditional UPDATE,
so two processes never take the same run) and runs each in a ``ProcessPoolExecutor`` worker
(the forkserver context with the backtest modules preloaded, so a new worker starts in
milliseconds): backtests are CPU-bound and never run on the event loop. Every
``POLL_SECONDS`` it reads each running job's progress file, stores the progress and publishes
it on the owner's ``jobs`` channel, then stores and publishes the outcome.

Cancelling: the API marks the row cancelled and writes the job's ``cancel`` file; the worker
checks it between chunks of bars and stops. A worker that has not stopped
``STOP_GRACE_SECONDS`` later (a strategy stuck inside one callback) is killed; the same
happens to a job running longer than ``QUANTDESK_BACKTEST_TIMEOUT_SECONDS`` (it fails with
BACKTEST_TIMEOUT). Killing a worker breaks the whole pool (ProcessPoolExecutor's rule): the
other jobs that pool was running are re-queued and the next jobs get a new pool.

Restarts: jobs left running by a previous process are re-queued at start-up (a run is
deterministic: running it again gives the same result) and queued jobs are picked up; a
graceful stop re-queues what it was running. So run backtest workers in ONE process per
installation (``QUANTDESK_BACKTEST_WORKERS=0`` elsewhere): a starting runner re-queues every
running job it finds.
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
from quantdesk.backtest import service
from quantdesk.backtest.artifacts import Progress, RunFiles, run_dirs, runs_root
from quantdesk.backtest.models import BacktestRunRow, BacktestStatus
from quantdesk.backtest.worker import JobSpec, init_worker, run_job
from quantdesk.bus.base import EventBus
from quantdesk.settings import Settings

log = structlog.get_logger("quantdesk.backtest.jobs")

POLL_SECONDS = 0.5
"""How often running jobs' progress and cancel files are read (and progress stored)."""
CLAIM_SECONDS = 2.0
"""How often the queue is read without a wake-up (jobs queued by other processes)."""
STOP_GRACE_SECONDS = 2.0
"""How long a cancelled (or timed-out) job's worker may take to stop before it is killed."""
MAX_CRASHES = 2
"""A job whose worker died this many times (not killed by us) fails with BACKTEST_WORKER_DIED."""


class _Pool:
    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(
            ["quantdesk.backtest.worker", "quantdesk.backtest.tearsheet"]
        )
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
    strategy: str
    files: RunFiles
    pool: _Pool
    future: asyncio.Future[dict[str, Any]]
    started: float = field(default_factory=time.monotonic)
    progress: float = 0.0
    pid: int | None = None
    stop_reason: str | None = None  # "cancel" or "timeout"
    stop_at: float = 0.0
    task: asyncio.Task[None] | None = None


class BacktestRunner:
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
        self.workers = settings.backtest_workers
        self.root = runs_root(settings)
        self.jobs: dict[str, _Job] = {}
        self._pool: _Pool | None = None
        self._crashes: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="backtest-runner")

    async def _recover(self) -> None:
        """Before the first claim: re-queue what a previous process left running."""
        async with self.sessions() as db:
            requeued = await service.requeue(db)
        for row in requeued:
            log.warning("backtest_requeued_after_restart", id=row.id)
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
                log.warning("backtest_requeue_on_stop_failed", error=repr(exc))

    def wake(self) -> None:
        """A run was queued: look at the queue now rather than at the next poll."""
        self._wake.set()

    async def _sweep_orphans(self) -> None:
        """Remove directories whose run is gone (or failed or cancelled: they hold no result)."""
        try:
            ids = await anyio.to_thread.run_sync(run_dirs, self.root)
            if not ids:
                return
            async with self.sessions() as db:
                keep = await service.ids_with_results(db, ids)
            for run_id in ids:
                if run_id not in keep:
                    await anyio.to_thread.run_sync(RunFiles(self.root, run_id).delete)
        except Exception as exc:  # tidying up must not stop the runner
            log.warning("backtest_sweep_failed", error=repr(exc))

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
                log.warning("backtest_runner_db_failed", error=repr(exc))
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
                    specs = await service.instrument_specs(db, row.request.get("symbols", []))
                    await self._submit(row, specs)
                except Exception as exc:  # claimed but not started: it must not stay "running"
                    log.error("backtest_start_failed", id=row.id, exc_info=exc)
                    await self._fail_unstarted(row, exc)

    async def _fail_unstarted(self, row: BacktestRunRow, exc: Exception) -> None:
        error = {
            "code": "BACKTEST_FAILED",
            "message": f"the job could not start: {type(exc).__name__}: {exc}",
        }
        async with self.sessions() as db:
            failed = await service.finish(db, row.id, BacktestStatus.FAILED, error=error)
        if failed is not None:
            await service.publish(self.bus, failed.user_id, service.job_message(failed))
            self._alert(failed)

    async def _submit(self, row: BacktestRunRow, specs: dict[str, Any]) -> None:
        files = RunFiles(self.root, row.id)
        await anyio.to_thread.run_sync(files.clear_runtime)  # flags of an earlier attempt
        spec = JobSpec(
            run_id=row.id,
            request=row.request,
            root=str(self.root),
            bars_dir=str(self.bars_dir),
            strategy_dir=str(self.settings.resolved_strategy_dir.absolute()),
            fill_model=self.settings.paper_fill_model(),
            specs=specs,
        )
        pool, future = self._run_in_pool(spec)
        job = _Job(
            id=row.id,
            user_id=row.user_id,
            strategy=str(row.request.get("strategy")),
            files=files,
            pool=pool,
            future=asyncio.wrap_future(future),
        )
        self.jobs[row.id] = job
        job.task = asyncio.create_task(self._supervise(job), name=f"backtest-{row.id}")
        log.info("backtest_started", id=row.id, strategy=job.strategy, user_id=row.user_id)
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
        raise RuntimeError("cannot start a backtest worker pool")

    # -- watching ----------------------------------------------------------------------------

    async def _supervise(self, job: _Job) -> None:
        try:
            outcome = await self._watch(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave the run "running"
            log.error("backtest_supervision_failed", id=job.id, exc_info=exc)
            outcome = {
                "status": "failed",
                "error": {"code": "BACKTEST_FAILED", "message": f"{type(exc).__name__}: {exc}"},
            }
        try:
            await self._finish(job, outcome)
        except Exception as exc:  # the database is down: the next start re-queues the run
            log.error("backtest_finish_failed", id=job.id, exc_info=exc)
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
            if progress.fraction > job.progress:
                job.progress = progress.fraction
                async with self.sessions() as db:
                    running = await service.set_progress(db, job.id, progress.fraction)
                if running:
                    message = {
                        "type": "job",
                        "kind": "backtest",
                        "id": job.id,
                        "status": BacktestStatus.RUNNING.value,
                        "progress": progress.fraction,
                    }
                    await service.publish(self.bus, job.user_id, message)
                elif not cancelled:  # cancelled through the database alone
                    await anyio.to_thread.run_sync(job.files.request_cancel)
                    cancelled = True
        now = time.monotonic()
        if job.stop_reason is None:
            if cancelled:
                job.stop_reason, job.stop_at = "cancel", now
            elif now - job.started > self.settings.backtest_timeout_seconds:
                job.stop_reason, job.stop_at = "timeout", now
                await anyio.to_thread.run_sync(job.files.request_cancel)
        elif now - job.stop_at > STOP_GRACE_SECONDS:
            self._kill(job)

    def _kill(self, job: _Job) -> None:
        pid = job.pid
        if pid is None or not job.pool.owns(pid):
            return  # not started yet: the worker checks the cancel file when it starts
        log.warning("backtest_worker_killed", id=job.id, pid=pid, reason=job.stop_reason)
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
        log.error("backtest_worker_died", id=job.id, crashes=crashes)
        if crashes < MAX_CRASHES:
            return {"status": "requeue"}
        return {
            "status": "failed",
            "error": {
                "code": "BACKTEST_WORKER_DIED",
                "message": f"the worker process died {crashes} times running this backtest "
                "(out of memory, or killed)",
            },
        }

    # -- outcomes ----------------------------------------------------------------------------

    async def _finish(self, job: _Job, outcome: dict[str, Any]) -> None:
        status = outcome["status"]
        if status == "cancelled" and job.stop_reason == "timeout":
            limit = self.settings.backtest_timeout_seconds
            status = "failed"
            outcome = {
                "error": {
                    "code": "BACKTEST_TIMEOUT",
                    "message": f"the backtest ran longer than {limit:g} s and was stopped",
                }
            }
        async with self.sessions() as db:
            if status == "requeue":
                rows = await service.requeue(db, [job.id])
                row = rows[0] if rows else None
            else:
                row = await service.finish(
                    db,
                    job.id,
                    BacktestStatus(status),
                    summary=outcome.get("summary"),
                    error=outcome.get("error"),
                )
        keep = row is not None and row.status in (BacktestStatus.SUCCEEDED, BacktestStatus.QUEUED)
        await anyio.to_thread.run_sync(job.files.clear_runtime if keep else job.files.delete)
        if row is None:  # cancelled (or deleted) meanwhile: whoever did it has told the owner
            return
        if row.status != BacktestStatus.QUEUED:
            self._crashes.pop(job.id, None)
        log.info("backtest_finished", id=job.id, status=row.status)
        await service.publish(self.bus, row.user_id, service.job_message(row))
        if row.status == BacktestStatus.FAILED:
            self._alert(row)
        elif row.status == BacktestStatus.QUEUED:
            self._wake.set()

    def _alert(self, row: BacktestRunRow) -> None:
        if self.alerts is None:
            return
        error = row.error or {}
        try:
            self.alerts.notify(
                Alert(
                    AlertKind.SYSTEM_ERROR,
                    Severity.WARNING,
                    f"Backtest failed: {row.request.get('strategy')}",
                    f"{error.get('code')}: {error.get('message')} (backtest {row.id})",
                    user_id=row.user_id,
                    dedup_key=f"backtest:{row.id}",
                    data={"kind": "backtest", "id": row.id, "code": error.get("code")},
                )
            )
        except Exception as exc:  # alerts are best effort
            log.warning("backtest_alert_failed", id=row.id, error=repr(exc))


def _peek(files: RunFiles) -> tuple[Progress | None, bool]:
    return files.read_progress(), files.cancel_requested()


async def start_backtest_runner(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    bus: EventBus | None,
    alerts: AlertSink | None = None,
    *,
    bars_dir: Path,
) -> BacktestRunner | None:
    """This process's runner, started; None when ``QUANTDESK_BACKTEST_WORKERS`` is 0."""
    if settings.backtest_workers <= 0:
        return None
    runner = BacktestRunner(settings, sessions, bus, alerts, bars_dir=bars_dir)
    await runner.start()
    return runner
