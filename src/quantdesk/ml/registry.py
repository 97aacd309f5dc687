"""The ML engine's stores as the API reads them: the MLflow registry (models, versions with
their runs' out-of-sample metrics, promotion), a run's artifacts, the stored signal series and
the drift reports. Every function blocks (MLflow, files): call them in a worker thread.

The ``ml`` extra is imported only inside these functions: the platform starts without it, and
an endpoint that needs it answers 503 ML_EXTRA_MISSING naming the pip command.
"""

from __future__ import annotations

import importlib.util
import json
import math
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import structlog
from pydantic import ValidationError

from quantdesk.backtest.artifacts import jsonable, sample_indices
from quantdesk.errors import AppError, NotFound, ValidationFailed
from quantdesk.ml.schemas import ALIASES, DriftOut
from quantdesk.ml.tracking import MLExtraMissing
from quantdesk.ml.worker import JOB_TAG, USER_TAG
from quantdesk.settings import Settings

if TYPE_CHECKING:
    from quantdesk.ml.tracking import Tracker

log = structlog.get_logger("quantdesk.ml")

_ML_MODULES = ("mlflow", "optuna", "talib", "sklearn")
_MODEL_MODULES = {"xgboost": ("xgboost", "ml"), "lstm": ("torch", "ml,lstm")}
EQUITY_ARTIFACT = "signal_equity.json"


def signals_root(settings: Settings) -> Path:
    return settings.data_dir / "signals"


def drift_report_path(settings: Settings, model: str) -> Path:
    """Where the inference service keeps a model's latest drift report (JSON of the
    ``DriftReport`` fields, plus ``checked_at``)."""
    return settings.data_dir / "ml" / "drift" / f"{quote(model, safe='')}.json"


def require_extra(model: str | None = None) -> None:
    """The ``ml`` extra's packages (and the model's library), or 503 naming the pip command.
    Looked up without importing them."""
    library, extra = _MODEL_MODULES.get(model or "xgboost", _MODEL_MODULES["xgboost"])
    missing = [m for m in (*_ML_MODULES, library) if importlib.util.find_spec(m) is None]
    if missing:
        pip = f"pip install 'quantdesk[{extra}]'"
        raise MLExtraMissing(
            f"{', '.join(missing)} not installed: {pip}", details={"missing": missing, "pip": pip}
        )


def get_tracker(settings: Settings) -> Tracker:
    """The MLflow tracker of these settings (503 without the extra)."""
    require_extra()
    from quantdesk.ml.tracking import Tracker

    return Tracker.from_settings(settings)


def describe_models(tracker: Tracker) -> list[dict[str, Any]]:
    """Registered models with their versions, aliases, checks and the runs' OOS metrics."""
    from quantdesk.ml.pipeline import CHECKS_TAG

    out = []
    for model in tracker.list_models():
        versions = []
        for v in model.versions:
            metrics: dict[str, float] = {}
            tags: dict[str, str] = {}
            if v.run_id:
                try:
                    run = tracker.get_run(v.run_id)
                    metrics, tags = run.metrics, run.tags
                except NotFound:  # the run was deleted in MLflow; the version stays
                    pass
            user = tags.get(USER_TAG, "")
            checks = v.tags.get(CHECKS_TAG)
            versions.append(
                {
                    "version": v.version,
                    "run_id": v.run_id,
                    "aliases": list(v.aliases),
                    "checks": checks if checks in ("passed", "failed") else None,
                    "oos": {
                        k.removeprefix("oos_"): x
                        for k, x in metrics.items()
                        if k.startswith("oos_") and math.isfinite(x)
                    },
                    "user_id": int(user) if user.isdigit() else None,
                    "job_id": tags.get(JOB_TAG),
                    "created": v.created,
                }
            )
        out.append(
            {
                "name": model.name,
                "description": model.description,
                "aliases": model.aliases,
                "versions": versions,
                "created": model.created,
                "updated": model.updated,
            }
        )
    return out


def promote(tracker: Tracker, name: str, version: int, alias: str) -> int | None:
    """Point ``alias`` at ``version`` (404 for an unknown model or version, 409 ML_CHECKS_FAILED
    for a version that failed its checks); the version the alias pointed at before."""
    from quantdesk.ml.pipeline import PromotionRefused, model_checks_passed

    if alias not in ALIASES:
        message = f"must be one of {', '.join(ALIASES)}, got {alias!r}"
        raise ValidationFailed(
            f"alias: {message}",
            code="ML_BAD_REQUEST",
            details=[{"field": "alias", "message": message}],
        )
    if not model_checks_passed(tracker, name, version):
        raise PromotionRefused(
            f"{name} v{version} failed its checks (see GET /ml/models); it cannot take an alias",
            details={"name": name, "version": version},
        )
    try:
        previous: int | None = tracker.get_by_alias(name, alias).version
    except NotFound:
        previous = None
    tracker.set_alias(name, alias, version)
    return previous


def restore_alias(tracker: Tracker, name: str, alias: str, previous: int | None) -> None:
    """Undo :func:`promote` (its audit row could not be stored): ``alias`` back on
    ``previous``, or removed when it pointed nowhere. Logged, never raised: the caller is
    already failing."""
    try:
        if previous is None:
            tracker.delete_alias(name, alias)
        else:
            tracker.set_alias(name, alias, previous)
    except Exception as exc:
        log.error("ml_alias_restore_failed", model=name, alias=alias, error=repr(exc))


def equity_points(tracker: Tracker, run_id: str, max_points: int) -> list[tuple[str, float]]:
    """The signal backtest's equity curve logged in the MLflow run: (time, equity) points, at
    most ``max_points`` (each equal bucket's last)."""
    with tempfile.TemporaryDirectory(prefix="qd-equity-") as tmp:
        try:
            path = tracker.download_artifacts(run_id, EQUITY_ARTIFACT, tmp)
        except NotFound as exc:
            raise NotFound(
                "The run has no equity curve (its signal backtest made none).",
                code="ML_RESULT_MISSING",
                details={"run_id": run_id, "artifact": EQUITY_ARTIFACT},
            ) from exc
        doc = json.loads(path.read_text())
    times, values = doc["time"], doc["equity"]
    keep = sample_indices(len(times), max_points)
    return [(times[i], float(values[i])) for i in keep if math.isfinite(values[i])]


def read_signals(
    settings: Settings,
    model: str,
    symbol: str,
    start: date | None,
    end: date | None,
    limit: int,
) -> tuple[list[dict[str, Any]], bool]:
    """A stored signal series: its last ``limit`` points in the range, and whether more
    matched. A model with no stored series must be registered (else 404 MODEL_NOT_FOUND)."""
    from quantdesk.ml.signals import SignalStore

    store = SignalStore(signals_root(settings))
    if model not in store.models() and model not in _registered(settings):
        raise NotFound(
            f"no registered model {model!r}", code="MODEL_NOT_FOUND", details={"name": model}
        )
    lo = None if start is None else datetime.combine(start, datetime.min.time(), UTC)
    hi = None if end is None else datetime.combine(end, datetime.max.time(), UTC)
    frame = store.read(model, symbol, lo, hi)
    truncated = len(frame) > limit
    frame = frame.iloc[-limit:]
    points = [
        {
            "time": t.to_pydatetime(),
            "value": float(v) if math.isfinite(v) else None,
            "signal": int(s),
            "model_version": int(m),
        }
        for t, v, s, m in zip(
            frame["time"], frame["value"], frame["signal"], frame["model_version"], strict=True
        )
    ]
    return points, truncated


def _registered(settings: Settings) -> set[str]:
    return {m.name for m in get_tracker(settings).list_models()}


def read_drift(settings: Settings, model: str) -> DriftOut:
    """The latest drift report of ``model`` (404 ML_NO_DRIFT_REPORT when there is none)."""
    path = drift_report_path(settings, model)
    try:
        doc = json.loads(path.read_bytes())
        if not isinstance(doc, dict):
            raise ValueError("not an object")
    except FileNotFoundError:
        raise NotFound(
            f"no drift report for {model!r} yet (the inference service writes one when it "
            "checks the served model)",
            code="ML_NO_DRIFT_REPORT",
            details={"model": model},
        ) from None
    except (OSError, ValueError) as exc:
        log.warning("ml_drift_report_unreadable", model=model, error=repr(exc))
        raise _unreadable(model) from None
    try:
        return DriftOut.model_validate(jsonable({**doc, "model": model}))
    except ValidationError as exc:
        log.warning("ml_drift_report_unreadable", model=model, error=repr(exc))
        raise _unreadable(model) from None


def _unreadable(model: str) -> AppError:
    return AppError(
        f"the drift report of {model!r} cannot be read",
        code="ML_DRIFT_REPORT_UNREADABLE",
        status_code=503,
        details={"model": model},
    )
