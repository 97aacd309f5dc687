"""What a backtest worker process does with one job: run it and write its files.

Runs in a child process of ``serve`` (see :mod:`quantdesk.backtest.jobs`). It never raises:
every outcome comes back as a small picklable dict, ``{"status": "succeeded", "summary"}``,
``{"status": "failed", "error": {code, message, trace?}}`` or ``{"status": "cancelled"}``
(exceptions with custom constructors do not survive pickling, and a user strategy may raise
anything, even ``SystemExit``).
"""

from __future__ import annotations

import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from quantdesk.backtest.artifacts import RunFiles, jsonable
from quantdesk.backtest.engine import StrategyFailed
from quantdesk.backtest.runner import BacktestError, BacktestRequest, run_backtest
from quantdesk.core.fills import FillModel
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.market.store import BarStore
from quantdesk.strategy.registry import Registry

ENGINE_SHARE = 0.9
"""Progress while the bars run; the rest is the metrics, the report and the files."""
_REPORT_EVERY = 0.2  # seconds between progress file writes


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker process needs (picklable; paths absolute)."""

    run_id: str
    request: dict[str, Any]
    root: str
    bars_dir: str
    strategy_dir: str
    fill_model: FillModel
    specs: dict[str, InstrumentSpec]


class Cancelled(BaseException):
    """Raised from the progress callback once the job is cancelled. A BaseException so that
    the engine, which turns a strategy's exceptions into StrategyFailed, lets it through."""


class _Progress:
    def __init__(self, files: RunFiles) -> None:
        self.files = files
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        self.check()
        self.report(ENGINE_SHARE * (done / total if total else 1.0))

    def check(self) -> None:
        if self.files.cancel_requested():
            raise Cancelled

    def report(self, fraction: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= _REPORT_EVERY:
            self.files.write_progress(min(max(fraction, 0.0), 1.0))
            self.last = now


def init_worker() -> None:
    """Worker processes ignore Ctrl-C (sent to the whole process group): the server decides
    when they stop, and re-queues what they were running."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _failed(code: str, message: str, trace: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if trace:
        error["trace"] = trace
    return {"status": "failed", "error": error}


def run_job(job: JobSpec) -> dict[str, Any]:
    files = RunFiles(Path(job.root), job.run_id)
    progress = _Progress(files)
    try:
        progress.report(0.0, force=True)
        progress.check()
        request = BacktestRequest.model_validate(job.request)
        result = run_backtest(
            request,
            store=BarStore(job.bars_dir, cache_bytes=0),
            registry=Registry(Path(job.strategy_dir)),
            paper_fill_model=job.fill_model,
            specs=job.specs,
            progress=progress,
            run_id=job.run_id,
        )
        progress.check()
        progress.report(ENGINE_SHARE, force=True)
        files.write_result(result)
        return {"status": "succeeded", "summary": jsonable(result.summary())}
    except Cancelled:
        return {"status": "cancelled"}
    except StrategyFailed as exc:
        return _failed(exc.code, str(exc), exc.trace)
    except BacktestError as exc:
        return _failed(exc.code, str(exc))
    except ValidationError as exc:
        return _failed("BACKTEST_BAD_REQUEST", f"the stored request is no longer valid: {exc}")
    except BaseException as exc:  # a bug, or a user strategy raising outside its callbacks
        return _failed("BACKTEST_FAILED", f"{type(exc).__name__}: {exc}", traceback.format_exc())
