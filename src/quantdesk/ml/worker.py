"""What an ML worker process does with one job (train a model, or build the offline feature
store: ``JobSpec.kind`` "train" or "features") and report how it went.

Runs in a child process of ``serve`` (see :mod:`quantdesk.ml.jobs`). It never raises: every
outcome comes back as a small picklable dict, ``{"status": "succeeded", "result"}`` (the
``TrainResult.to_json()`` document), ``{"status": "failed", "error": {code, message, trace?}}``
or ``{"status": "cancelled"}``. The pipeline and its libraries are imported inside the job, so
this module (imported by the API process) works without the ``ml`` extra.

A job's runtime files live in ``<data_dir>/ml/jobs/<id>/``: ``progress.json`` (the worker's pid
and the pipeline's last report, written by the worker) and ``cancel`` (written by whoever
cancels the job; the worker checks it at each progress report).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantdesk.backtest.artifacts import RUN_ID, atomic_write
from quantdesk.errors import AppError

if TYPE_CHECKING:
    from quantdesk.ml.pipeline import TrainRequest
    from quantdesk.ml.tracking import RunHandle

# XGBoost's OpenMP threads spin while they wait by default, which made a shared 2-core machine
# up to 10x slower; set before xgboost is first imported (here, or in the forkserver preload).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PROGRESS_FILE = "progress.json"
CANCEL_FILE = "cancel"
USER_TAG = "quantdesk.user_id"
JOB_TAG = "quantdesk.job_id"
_REPORT_EVERY = 0.2  # seconds between progress file writes (stage changes are always written)
# Each of the pipeline's stages' share of a run's progress bar: (start, width). A stage the
# pipeline adds later sits near the end until it is listed here.
_STAGES = {
    "starting": (0.0, 0.02),
    "features": (0.02, 0.28),
    "folds": (0.3, 0.45),
    "backtest": (0.75, 0.1),
    "checks": (0.85, 0.02),
    "final model": (0.87, 0.06),
    "logging": (0.93, 0.06),
    # a feature build (kind "features")
    "load": (0.02, 0.18),
    "compute": (0.2, 0.6),
    "write": (0.8, 0.19),
}


@dataclass(frozen=True, slots=True)
class Progress:
    pid: int
    stage: str
    done: int
    total: int
    fraction: float

    def as_stage(self) -> dict[str, Any]:
        return {"stage": self.stage, "done": self.done, "total": self.total}


def fraction_of(stage: str, done: int, total: int) -> float:
    start, width = _STAGES.get(stage, (0.98, 0.0))
    share = done / total if total > 0 else 1.0
    return round(min(max(start + width * share, 0.0), 1.0), 4)


class JobFiles:
    """The runtime directory of one job."""

    def __init__(self, root: Path, run_id: str) -> None:
        if not RUN_ID.match(run_id):
            raise ValueError(f"not a run id: {run_id!r}")
        self.dir = root / run_id

    def write_progress(self, stage: str, done: int, total: int) -> None:
        body = {
            "pid": os.getpid(),
            "stage": stage,
            "done": done,
            "total": total,
            "fraction": fraction_of(stage, done, total),
        }
        atomic_write(self.dir / PROGRESS_FILE, json.dumps(body).encode())

    def read_progress(self) -> Progress | None:
        try:
            body = json.loads((self.dir / PROGRESS_FILE).read_bytes())
            return Progress(
                int(body["pid"]),
                str(body["stage"]),
                int(body["done"]),
                int(body["total"]),
                float(body["fraction"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def request_cancel(self) -> None:
        atomic_write(self.dir / CANCEL_FILE, b"")

    def cancel_requested(self) -> bool:
        return (self.dir / CANCEL_FILE).exists()

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.dir)


def job_dirs(root: Path) -> list[str]:
    """The run ids that have a directory under ``root``."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and RUN_ID.match(p.name))


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker process needs (picklable; paths absolute)."""

    run_id: str
    user_id: int
    request: dict[str, Any]
    root: str
    bars_dir: str
    tracking_uri: str
    artifact_dir: str | None
    kind: str = "train"
    data_dir: str | None = None


class Cancelled(BaseException):
    """Raised from the progress callback once the job is cancelled. A BaseException, so that
    nothing in the pipeline that catches exceptions swallows it."""


class _Progress:
    def __init__(self, files: JobFiles) -> None:
        self.files = files
        self.last = 0.0
        self.stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.files.cancel_requested():
            raise Cancelled
        now = time.monotonic()
        if stage != self.stage or done >= total or now - self.last >= _REPORT_EVERY:
            self.files.write_progress(stage, done, total)
            self.stage, self.last = stage, now


def init_worker() -> None:
    """Worker processes ignore Ctrl-C (sent to the whole process group): the server decides
    when they stop, and re-queues what they were running."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def train_request(doc: Mapping[str, Any]) -> TrainRequest:
    """The pipeline's request from a stored (validated, normalised) one."""
    from quantdesk.ml.dataset import LabelSpec
    from quantdesk.ml.pipeline import TrainRequest

    return TrainRequest(
        model=doc["model"],
        symbols=list(doc["symbols"]),
        interval=doc["interval"],
        start=date.fromisoformat(doc["start"]),
        end=date.fromisoformat(doc["end"]),
        label=LabelSpec.parse(doc["label"], float(doc.get("dead_zone", 0.0))),
        folds=int(doc["folds"]),
        trials=int(doc["trials"]),
        embargo=doc.get("embargo", 0.01),
        seed=int(doc.get("seed", 0)),
        name=doc.get("name"),
        threshold=float(doc.get("threshold", 0.55)),
        costs=str(doc.get("costs", "india")),
    )


def _tracker(job: JobSpec) -> Any:
    """``Tracker.from_settings`` of the server's settings, tagging every run it starts with the
    job and its owner (the pipeline starts exactly one)."""
    from quantdesk.ml.tracking import Tracker

    class JobTracker(Tracker):
        def start_run(
            self,
            experiment: str,
            run_name: str | None = None,
            tags: Mapping[str, Any] | None = None,
        ) -> RunHandle:
            ours = {USER_TAG: str(job.user_id), JOB_TAG: job.run_id}
            return super().start_run(experiment, run_name, {**(tags or {}), **ours})

    artifact_dir = Path(job.artifact_dir) if job.artifact_dir else None
    return JobTracker(job.tracking_uri, artifact_dir)


def _build_features(job: JobSpec, progress: _Progress) -> dict[str, Any]:
    """A feature-build job: the offline store under the server's data dir."""
    from quantdesk.market.store import BarStore
    from quantdesk.ml.features.build import build_offline_features

    doc = job.request
    assert job.data_dir is not None, "a feature build needs the data dir"
    return build_offline_features(
        Path(job.data_dir),
        BarStore(job.bars_dir, cache_bytes=0),
        list(doc["symbols"]),
        str(doc["interval"]),
        date.fromisoformat(doc["start"]),
        date.fromisoformat(doc["end"]),
        progress=progress,
    )


def _failed(code: str, message: str, trace: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if trace:
        error["trace"] = trace
    return {"status": "failed", "error": error}


def run_job(job: JobSpec) -> dict[str, Any]:
    files = JobFiles(Path(job.root), job.run_id)
    progress = _Progress(files)
    try:
        progress("starting", 0, 1)
        if job.kind == "features":
            return {"status": "succeeded", "result": _build_features(job, progress)}
        from quantdesk.market.store import BarStore
        from quantdesk.ml.pipeline import train

        result = train(
            train_request(job.request),
            store=BarStore(job.bars_dir, cache_bytes=0),
            tracker=_tracker(job),
            progress=progress,
        )
        return {"status": "succeeded", "result": result.to_json()}
    except Cancelled:
        return {"status": "cancelled"}
    except AppError as exc:  # the pipeline's refusals: ML_NO_DATA, ML_TOO_FEW_SAMPLES, ...
        return _failed(exc.code, exc.message)
    except ImportError as exc:  # the extra (or, for an lstm, torch) is missing here
        message = str(exc)
        if "pip install" not in message:
            message += ": pip install 'quantdesk[ml]'"
        return _failed("ML_EXTRA_MISSING", message)
    except ValueError as exc:  # what the CLI reports as ML_BAD_REQUEST (a model's parameters)
        return _failed("ML_BAD_REQUEST", str(exc), traceback.format_exc())
    except BaseException as exc:  # a bug: the trace helps whoever reads the run
        return _failed("ML_TRAINING_FAILED", f"{type(exc).__name__}: {exc}", traceback.format_exc())
