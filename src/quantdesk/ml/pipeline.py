"""Training: bars -> features -> labels -> purged walk-forward -> signal backtest -> MLflow.

:func:`train` is what ``quantdesk ml train`` and the training jobs run. It

1. loads the candles of the symbols from the bar store and builds the training set
   (:mod:`quantdesk.ml.dataset`): the platform's feature set, the label, the label spans;
2. fits one model per purged walk-forward fold (nested Optuna search inside each fold's
   training rows when ``trials`` > 0) and predicts each test fold: the out-of-sample
   predictions;
3. measures them per fold and pooled (AUC and its standard error, log-loss, accuracy, IC of the
   probability against the realised return) and backtests them through the backtester with the
   ``ml_signal`` strategy, net of the cost model (``india`` by default): ``sharpe_net``;
4. runs the checks: the feature set passes the look-ahead guard, and the pooled out-of-sample
   AUC is above 0.5 by more than two standard errors (an edge, not noise). A version that fails
   them is registered but cannot take an alias;
5. fits the final model on every labelled row and logs the run to MLflow (parameters, metrics
   per fold, the model bundle, plots), then registers it as a new version of the model name.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from quantdesk.backtest.runner import BacktestError, BacktestRequest, run_backtest
from quantdesk.errors import AppError
from quantdesk.market.store import BarStore
from quantdesk.ml.cv import PurgedWalkForward
from quantdesk.ml.dataset import (
    LabelSpec,
    TrainData,
    TrainingDataError,
    build_training_data,
    load_bars,
)
from quantdesk.ml.evaluation import (
    auc_standard_error,
    calibration,
    evaluate_oos,
    feature_importance,
    plot_calibration,
    plot_feature_importance,
    shap_importance,
    walk_forward_predict,
)
from quantdesk.ml.features import FeatureSet, LookAheadError, assert_no_lookahead
from quantdesk.ml.features import default_feature_set as _default_features
from quantdesk.ml.models import make_model
from quantdesk.ml.search import NestedSearch
from quantdesk.ml.tracking import Tracker
from quantdesk.strategy.registry import Registry

__all__ = ["CHECKS_TAG", "EXPERIMENT", "TrainRequest", "TrainResult", "train"]

EXPERIMENT = "quantdesk"
CHECKS_TAG = "quantdesk.checks"  # "passed" or "failed" on every registered version
MIN_ROWS_PER_FOLD = 30
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class TrainRequest:
    model: Literal["xgboost", "lstm"]
    symbols: list[str]
    interval: str
    start: date
    end: date
    label: LabelSpec = field(default_factory=lambda: LabelSpec("forward", 5))
    folds: int = 5
    trials: int = 0
    embargo: float = 0.01
    mode: Literal["expanding", "rolling"] = "expanding"
    seed: int = 0
    name: str | None = None  # registered model name; default "<model>-<interval>"
    threshold: float = 0.55  # ml_signal's entry probability in the signal backtest
    costs: str = "india"
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return self.name or f"{self.model}-{self.interval}"


@dataclass
class TrainResult:
    run_id: str
    model_name: str
    version: int
    folds: list[dict[str, Any]]
    oos: dict[str, Any]
    checks: dict[str, Any]
    rows: int
    features: list[str]
    importance: dict[str, float]
    data: dict[str, Any]
    shap_importance: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return _finite(asdict(self))


def _finite(value: Any) -> Any:
    """JSON has no NaN: None in its place."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class _AsOf:
    """``ctx.signal`` over the out-of-sample predictions: the latest at or before the time."""

    def __init__(self, name: str, frame: pd.DataFrame) -> None:
        self.name = name
        self.series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for symbol, rows in frame.groupby(level="symbol", sort=False):
            rows = rows.sort_values("t0")
            times = rows["t0"].to_numpy("datetime64[us]").astype(np.int64)
            self.series[str(symbol)] = (times, rows["pred"].to_numpy(np.float64))

    def __call__(self, name: str, symbol: str, at: Any) -> float | None:
        got = self.series.get(symbol)
        if name != self.name or got is None:
            return None
        times, values = got
        us = (
            (at - _EPOCH) // _MICROSECOND
            if isinstance(at, datetime)
            else pd.Timestamp(at).value // 1000
        )
        k = int(np.searchsorted(times, us, side="right")) - 1
        return None if k < 0 else float(values[k])


def _checks(
    feature_set: FeatureSet, bars: dict[str, pd.DataFrame], auc: float, se: float
) -> dict[str, Any]:
    symbol = next(iter(bars))
    ohlcv = bars[symbol][["open", "high", "low", "close", "volume"]]
    try:
        assert_no_lookahead(feature_set, {symbol: ohlcv}, checkpoints=6)
        lookahead: dict[str, Any] = {"passed": True}
    except LookAheadError as exc:
        lookahead = {"passed": False, "error": str(exc)}
    edge = math.isfinite(auc) and math.isfinite(se) and auc > 0.5 + 2 * se
    return {
        "lookahead": lookahead,
        "edge": {"passed": bool(edge), "auc": auc, "auc_se": se, "rule": "auc > 0.5 + 2 se"},
        "passed": bool(lookahead["passed"] and edge),
    }


def _signal_backtest(
    request: TrainRequest, data: TrainData, pred: np.ndarray, store: BarStore
) -> tuple[dict[str, Any], Any]:
    """The out-of-sample predictions traded by ``ml_signal`` through the backtester."""
    frame = data.frame[["t0"]].assign(pred=pred)
    frame = frame[np.isfinite(frame["pred"])]
    if frame.empty:
        return {"sharpe_net": math.nan, "error": "no out-of-sample predictions"}, None
    first = frame.index.get_level_values("timestamp").min().date()
    bt = BacktestRequest(
        strategy="ml_signal",
        symbols=sorted({str(s) for s in frame.index.get_level_values("symbol")}),
        interval=request.interval,
        start=first,
        end=request.end,
        params={"model": request.model_name, "long_threshold": request.threshold},
        costs=request.costs,
    )
    try:
        result = run_backtest(
            bt, store=store, registry=Registry(None), signals=_AsOf(request.model_name, frame)
        )
    except BacktestError as exc:
        return {"sharpe_net": math.nan, "error": f"{exc.code}: {exc}"}, None
    metrics = result.metrics

    def num(key: str) -> float:
        value = metrics.get(key)
        return math.nan if value is None else float(value)

    out = {
        "sharpe_net": num("sharpe"),
        "total_return": num("total_return"),
        "max_drawdown": num("max_drawdown"),
        "trades": len(result.fills),
        "charges": float(sum(result.charges.values())),
        "costs": request.costs,
        "start": first.isoformat(),
    }
    return out, result


def train(
    request: TrainRequest,
    *,
    store: BarStore,
    tracker: Tracker,
    feature_set: FeatureSet | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train, evaluate, log and register one model (see the module docstring)."""
    fs = feature_set or _default_features()
    say = progress or (lambda stage, done, total: None)
    if request.folds < 2 or request.folds > 20:
        raise TrainingDataError("folds must be between 2 and 20", code="ML_BAD_REQUEST")
    if request.trials < 0 or request.trials > 500:
        raise TrainingDataError("trials must be between 0 and 500", code="ML_BAD_REQUEST")
    make_model(request.model, "classifier", **request.params)  # unknown model or extra: early
    bars, fingerprint = load_bars(
        store, request.symbols, request.interval, request.start, request.end
    )
    data = build_training_data(
        fs, bars, fingerprint, request.label, progress=lambda d, t: say("features", d, t)
    )
    frame = data.frame
    need = (request.folds + 1) * MIN_ROWS_PER_FOLD
    if len(frame) < need:
        raise TrainingDataError(
            f"{len(frame)} labelled rows are too few for {request.folds} folds (need {need}); "
            "widen the range or use fewer folds",
            code="ML_TOO_FEW_SAMPLES",
        )
    y = frame["y"].to_numpy(np.float64)
    if len(np.unique(y > 0)) < 2:
        raise TrainingDataError("every label is the same class", code="ML_ONE_CLASS")
    t0 = frame["t0"].to_numpy("datetime64[ns]")
    t1 = frame["t1"].to_numpy("datetime64[ns]")
    cv = PurgedWalkForward(request.folds, request.mode, embargo=request.embargo)
    params = {"seed": request.seed, **request.params}
    tune = None
    if request.trials:
        tune = NestedSearch(
            request.model,
            "classifier",
            data.X,
            y,
            t0,
            t1,
            options={"n_trials": request.trials, "seed": request.seed, "base_params": params},
        )
    say("folds", 0, request.folds)
    try:
        oos = walk_forward_predict(
            request.model,
            "classifier",
            data.X,
            y,
            t0,
            t1,
            cv,
            params=params,
            tune=tune,
            keep_models=True,
        )
    except ValueError as exc:
        raise TrainingDataError(str(exc), code="ML_TOO_FEW_SAMPLES") from exc
    say("folds", request.folds, request.folds)
    report = evaluate_oos("classifier", y, oos.pred, oos.folds, forward_return=frame["ret"])
    pooled = report["overall"]
    tested = oos.fold >= 0
    n_pos = int((y[tested] > 0).sum())
    se = auc_standard_error(n_pos, int(tested.sum()) - n_pos)
    say("backtest", 0, 1)
    backtest, bt_result = _signal_backtest(request, data, oos.pred, store)
    say("checks", 0, 1)
    checks = _checks(fs, bars, float(pooled.get("auc", math.nan)), se)
    folds = []
    for k, (metrics, rows) in enumerate(zip(report["folds"], oos.folds, strict=True)):
        times = frame.index.get_level_values("timestamp")[rows]
        folds.append(
            {
                "fold": k,
                "rows": len(rows),
                "start": times.min().isoformat(),
                "end": times.max().isoformat(),
                "params": oos.params[k],
                **metrics,
            }
        )
    say("final model", 0, 1)
    # The served model: every labelled row, the last fold's parameters.
    final_params = dict(oos.params[-1] if oos.params else params)
    best = getattr(oos.models[-1], "best_iteration", None) if oos.models else None
    if best is not None:  # the trees early stopping chose on the last fold's validation tail
        final_params["n_estimators"] = int(best) + 1
    final = make_model(request.model, "classifier", **final_params)
    final.fit(data.X, y)
    importance = feature_importance(final) if request.model == "xgboost" else {}
    shap = shap_importance(final, data.X) if request.model == "xgboost" else {}
    say("logging", 0, 1)
    oos_summary = {**pooled, "auc_se": se, "rows": int(tested.sum()), **backtest}
    oos_summary["calibration"] = calibration(y[tested], oos.pred[tested])
    oos_summary["n_configurations"] = oos.n_configurations
    return _log(
        request, fs, data, final, folds, oos_summary, checks, (importance, shap), tracker, bt_result
    )


def _log(
    request: TrainRequest,
    fs: FeatureSet,
    data: TrainData,
    final: Any,
    folds: list[dict[str, Any]],
    oos: dict[str, Any],
    checks: dict[str, Any],
    importances: tuple[dict[str, float], dict[str, float]],
    tracker: Tracker,
    bt_result: Any,
) -> TrainResult:
    importance, shap = importances
    from quantdesk.ml.drift import ReferenceBins

    data_info = {
        "symbols": sorted({str(s) for s in data.frame.index.get_level_values("symbol")}),
        "interval": request.interval,
        "start": request.start.isoformat(),
        "end": request.end.isoformat(),
        "first_bar": data.first.isoformat(),
        "last_bar": data.last.isoformat(),
        "fingerprint": data.fingerprint,
        "label": str(request.label),
    }
    bundle = {
        "feature_set": fs.definition(),
        "feature_set_hash": fs.hash,
        "columns": data.columns,
        "model": request.model,
        "interval": request.interval,
        "symbols": data_info["symbols"],
        "label": str(request.label),
        "threshold": {"long": request.threshold, "short": None, "min_confidence": 0.0},
        "reference_bins": ReferenceBins.fit(data.X).to_dict(),
        "validation": {"auc": oos.get("auc"), "ic": oos.get("ic_return")},
        "data": data_info,
    }
    with (
        tempfile.TemporaryDirectory(prefix="qd-train-") as tmp,
        tracker.start_run(
            EXPERIMENT,
            run_name=f"{request.model_name} {request.start}..{request.end}",
            tags={"quantdesk.model_name": request.model_name, "quantdesk.model": request.model},
        ) as run,
    ):
        root = Path(tmp)
        bundle_dir = root / "bundle"
        final.save(bundle_dir / "model")
        (bundle_dir / "bundle.json").write_text(json.dumps(_finite(bundle), indent=2))
        (bundle_dir / "feature_set.yaml").write_text(fs.to_yaml())
        run.log_params(
            {
                "model": request.model,
                "symbols": ",".join(data_info["symbols"]),
                "interval": request.interval,
                "start": request.start.isoformat(),
                "end": request.end.isoformat(),
                "label": str(request.label),
                "folds": request.folds,
                "trials": request.trials,
                "embargo": request.embargo,
                "mode": request.mode,
                "seed": request.seed,
                "threshold": request.threshold,
                "costs": request.costs,
                "feature_set_hash": fs.hash,
                "data_fingerprint": data.fingerprint,
            }
        )
        for fold in folds:
            run.log_fold_metrics(
                fold["fold"], {k: v for k, v in fold.items() if isinstance(v, float)}
            )
        run.log_metrics({f"oos_{k}": v for k, v in oos.items() if isinstance(v, int | float)})
        run.log_dict(_finite({"folds": folds, "oos": oos, "checks": checks}), "evaluation.json")
        if oos.get("calibration"):
            plot_calibration(oos["calibration"], root / "calibration.png")
            run.log_artifact(root / "calibration.png", "plots")
        if importance:
            plot_feature_importance(importance, root / "feature_importance.png")
            run.log_artifact(root / "feature_importance.png", "plots")
            run.log_dict(importance, "feature_importance.json")
        if shap:
            run.log_dict(shap, "feature_importance_shap.json")
        if bt_result is not None:
            _plot_equity(bt_result, root / "signal_equity.png")
            run.log_artifact(root / "signal_equity.png", "plots")
            run.log_dict(_equity_points(bt_result), "signal_equity.json")
        run.log_model_dir(bundle_dir)
        run_id = run.run_id
    version = tracker.register(
        run_id, request.model_name, tags={CHECKS_TAG: "passed" if checks["passed"] else "failed"}
    )
    return TrainResult(
        run_id=run_id,
        model_name=request.model_name,
        version=version,
        folds=folds,
        oos=oos,
        checks=checks,
        rows=len(data.frame),
        features=data.columns,
        importance=importance,
        data=data_info,
        shap_importance=shap,
    )


def _equity_points(result: Any) -> dict[str, Any]:
    equity = result.equity
    return {
        "time": [pd.Timestamp(t).isoformat() for t in equity.index],
        "equity": [float(v) for v in equity.to_numpy()],
    }


def _plot_equity(result: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    equity = result.equity
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(equity.index, equity.to_numpy(dtype=float), lw=1)
    ax.set_title("Out-of-sample signal backtest (net of costs)")
    ax.set_ylabel("equity")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def model_checks_passed(tracker: Tracker, name: str, version: int) -> bool:
    return tracker.get_version(name, version).tags.get(CHECKS_TAG) == "passed"


class PromotionRefused(AppError):
    status_code = 409
    code = "ML_CHECKS_FAILED"
