"""Out-of-sample evaluation: walk-forward predictions, metrics per fold and overall, calibration,
feature importance, and PNG plots.

Every metric comes back as plain ``float``/``int``/``dict``/``list`` (NaN where undefined, e.g.
AUC of a one-class fold), ready for ``mlflow.log_metrics`` or JSON.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from quantdesk.ml.cv import PurgedWalkForward, time_positions, validation_tail
from quantdesk.ml.models import Kind, Model, XGBoostModel, make_model
from quantdesk.ml.models.base import EvalSet

__all__ = [
    "OOSResult",
    "auc_standard_error",
    "calibration",
    "classification_metrics",
    "evaluate_oos",
    "feature_importance",
    "information_coefficient",
    "plot_calibration",
    "plot_feature_importance",
    "regression_metrics",
    "shap_importance",
    "take_rows",
    "walk_forward_predict",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_EPS = 1e-15


def auc_standard_error(n_pos: int, n_neg: int) -> float:
    """Standard error of the AUC of an uninformative score: ``sqrt((n_pos + n_neg) / (12 n_pos
    n_neg))``. Assumes independent samples: with overlapping labels the true error is larger."""
    if n_pos <= 0 or n_neg <= 0:
        return math.nan
    return math.sqrt(1.0 / (12.0 * n_pos * n_neg / (n_pos + n_neg)))


def _pairs(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"length mismatch: {x.shape} vs {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def information_coefficient(pred: npt.ArrayLike, target: npt.ArrayLike) -> dict[str, float]:
    """Pearson (``ic``) and Spearman (``rank_ic``) correlation, over the finite pairs."""
    x, y = _pairs(pred, target)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"ic": math.nan, "rank_ic": math.nan}
    rank_x = pd.Series(x).rank().to_numpy()
    rank_y = pd.Series(y).rank().to_numpy()
    return {
        "ic": float(np.corrcoef(x, y)[0, 1]),
        "rank_ic": float(np.corrcoef(rank_x, rank_y)[0, 1]),
    }


def _auc(y: FloatArray, p: FloatArray, w: FloatArray | None) -> float:
    from sklearn.metrics import roc_auc_score

    if y.min() == y.max():
        return math.nan
    return float(roc_auc_score(y, p, sample_weight=w))


def classification_metrics(
    y_true: npt.ArrayLike, prob: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> dict[str, float]:
    """AUC (and its null standard error), log-loss, accuracy at 0.5, Brier score and counts.
    The positive class is ``y > 0``."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(prob, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"length mismatch: {y.shape} vs {p.shape}")
    ok = np.isfinite(y) & np.isfinite(p)
    y, p = (y[ok] > 0).astype(np.float64), np.clip(p[ok], 0.0, 1.0)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)[ok]
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if len(y) == 0:
        return {"n": 0, "n_pos": 0, "auc": math.nan, "auc_se": math.nan}
    weights = np.ones_like(y) if w is None else w
    pc = np.clip(p, _EPS, 1 - _EPS)
    loss = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))
    return {
        "n": len(y),
        "n_pos": n_pos,
        "base_rate": n_pos / len(y),
        "auc": _auc(y, p, w),
        "auc_se": auc_standard_error(n_pos, n_neg),
        "log_loss": float(np.average(loss, weights=weights)),
        "accuracy": float(np.average((p > 0.5) == (y > 0), weights=weights)),
        "brier": float(np.average((p - y) ** 2, weights=weights)),
    }


def regression_metrics(y_true: npt.ArrayLike, pred: npt.ArrayLike) -> dict[str, float]:
    """IC, rank IC, RMSE and the hit rate of the sign, over the finite pairs."""
    p, y = _pairs(pred, y_true)
    if len(y) == 0:
        return {"n": 0, "ic": math.nan, "rank_ic": math.nan}
    return {
        "n": len(y),
        **information_coefficient(p, y),
        "rmse": float(np.sqrt(np.mean((p - y) ** 2))),
        "hit_rate": float(np.mean(np.sign(p) == np.sign(y))),
    }


def calibration(
    y_true: npt.ArrayLike,
    prob: npt.ArrayLike,
    n_bins: int = 10,
    strategy: Literal["uniform", "quantile"] = "uniform",
) -> dict[str, Any]:
    """Reliability bins (mean predicted vs observed rate, count; empty bins left out), the Brier
    score and the expected calibration error (count-weighted mean |gap|)."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(prob, dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(p)
    y, p = (y[ok] > 0).astype(np.float64), np.clip(p[ok], 0.0, 1.0)
    if strategy == "quantile" and len(p):
        edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
    else:
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    bins = []
    for b in range(len(edges) - 1):
        mask = which == b
        if mask.any():
            bins.append(
                {
                    "lower": float(edges[b]),
                    "upper": float(edges[b + 1]),
                    "mean_predicted": float(p[mask].mean()),
                    "observed_rate": float(y[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    total = max(len(y), 1)
    ece = sum(b["count"] * abs(b["mean_predicted"] - b["observed_rate"]) for b in bins) / total
    brier = float(np.mean((p - y) ** 2)) if len(y) else math.nan
    return {"bins": bins, "brier": brier, "ece": float(ece)}


def _metrics(
    kind: Kind, y: FloatArray, pred: FloatArray, forward_return: FloatArray | None
) -> dict[str, float]:
    out = classification_metrics(y, pred) if kind == "classifier" else regression_metrics(y, pred)
    if forward_return is not None:
        ic = information_coefficient(pred, forward_return)
        out |= {"ic_return": ic["ic"], "rank_ic_return": ic["rank_ic"]}
    return out


def evaluate_oos(
    kind: Kind,
    y: npt.ArrayLike,
    pred: npt.ArrayLike,
    folds: Sequence[npt.ArrayLike],
    forward_return: npt.ArrayLike | None = None,
) -> dict[str, Any]:
    """Metrics per test fold and over all out-of-sample rows pooled (``overall``), plus the
    mean and standard deviation across folds of the headline metric (AUC or IC).
    ``forward_return`` adds the IC of the predictions against realised returns."""
    ya = np.asarray(y, dtype=np.float64)
    pa = np.asarray(pred, dtype=np.float64)
    ra = None if forward_return is None else np.asarray(forward_return, dtype=np.float64)
    per_fold = []
    for idx in folds:
        rows = np.asarray(idx, dtype=np.int64)
        per_fold.append(_metrics(kind, ya[rows], pa[rows], None if ra is None else ra[rows]))
    pooled = np.unique(np.concatenate([np.asarray(f, dtype=np.int64) for f in folds]))
    overall = _metrics(kind, ya[pooled], pa[pooled], None if ra is None else ra[pooled])
    key = "auc" if kind == "classifier" else "ic"
    values = np.array([f[key] for f in per_fold], dtype=np.float64)
    finite = values[np.isfinite(values)]
    summary = {
        f"{key}_fold_mean": float(finite.mean()) if len(finite) else math.nan,
        f"{key}_fold_std": float(finite.std(ddof=1)) if len(finite) > 1 else math.nan,
    }
    return {"overall": overall, "folds": per_fold, **summary}


class FoldTuner(Protocol):
    """Hyperparameter search on a fold's training rows (see ``quantdesk.ml.search``)."""

    def __call__(self, train_idx: IntArray) -> Any: ...


@dataclass
class OOSResult:
    """Out-of-sample predictions (NaN outside the test folds) and what produced them."""

    pred: FloatArray
    fold: IntArray
    folds: list[IntArray]
    params: list[dict[str, Any]]
    fit_seconds: list[float]
    n_configurations: int = 0
    models: list[Model] = field(default_factory=list)


def take_rows(data: Any, rows: IntArray) -> Any:
    """Rows by position of a DataFrame/Series (``iloc``) or an array."""
    return data.iloc[rows] if isinstance(data, pd.DataFrame | pd.Series) else data[rows]


def walk_forward_predict(
    model_name: str,
    kind: Kind,
    X: Any,
    y: npt.ArrayLike,
    t0: npt.ArrayLike,
    t1: npt.ArrayLike,
    cv: PurgedWalkForward,
    *,
    params: Mapping[str, Any] | None = None,
    sample_weight: npt.ArrayLike | None = None,
    early_stopping: float = 0.1,
    tune: FoldTuner | None = None,
    keep_models: bool = False,
) -> OOSResult:
    """Fit one model per fold on its purged training rows and predict its test rows.

    ``early_stopping``: the last fraction of each training set's times becomes the early-stopping
    set (the rest purged against it); 0 disables. ``tune(train_idx)`` (nested search, returning
    an object with ``best_params`` and ``n_trials``) sees only the training rows. Models that
    read a history of rows (LSTM) predict on every row up to the fold's end, so the first test
    rows keep their context; they take each row's symbol from ``X``'s ``(timestamp, symbol)``
    MultiIndex (an array ``X`` is one series in row order).
    """
    ya = np.asarray(y, dtype=np.float64)
    wa = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    p0, p1 = time_positions(t0, t1)
    result = OOSResult(
        pred=np.full(len(ya), np.nan),
        fold=np.full(len(ya), -1, dtype=np.int64),
        folds=[],
        params=[],
        fit_seconds=[],
    )
    for k, (train, test) in enumerate(cv.split(p0, p1)):
        fold_params = dict(params or {})
        if tune is not None:
            found = tune(train)
            fold_params |= found.best_params
            result.n_configurations += int(found.n_trials)
        model = make_model(model_name, kind, **fold_params)
        started = time.perf_counter()
        _fit(model, X, ya, wa, train, p0, p1, early_stopping)
        result.fit_seconds.append(time.perf_counter() - started)
        result.pred[test] = _predict(model, X, p0, test)
        result.fold[test] = k
        result.folds.append(test)
        result.params.append(fold_params)
        if keep_models:
            result.models.append(model)
    return result


def _fit(
    model: Model,
    X: Any,
    y: FloatArray,
    w: FloatArray | None,
    train: IntArray,
    t0: IntArray,
    t1: IntArray,
    early_stopping: float,
) -> None:
    if early_stopping <= 0:
        model.fit(take_rows(X, train), y[train], None if w is None else w[train])
        return
    fit, val = validation_tail(train, t0, t1, early_stopping)
    Xv = take_rows(X, val)
    eval_set: EvalSet = (Xv, y[val]) if w is None else (Xv, y[val], w[val])
    model.fit(take_rows(X, fit), y[fit], None if w is None else w[fit], eval_set=eval_set)


def _predict(model: Model, X: Any, t0: IntArray, test: IntArray) -> FloatArray:
    if not model.needs_history:
        return model.predict(take_rows(X, test))
    context = np.flatnonzero(t0 <= t0[test].max())
    pred = model.predict(take_rows(X, context))
    return pred[np.searchsorted(context, test)]


def feature_importance(
    model: Model, importance_type: str = "total_gain", normalize: bool = True
) -> dict[str, float]:
    """XGBoost importance per feature (``total_gain`` by default), summing to 1 if normalised."""
    if not isinstance(model, XGBoostModel):
        raise TypeError(f"feature importance needs an XGBoostModel, got {type(model).__name__}")
    scores = model.importance(importance_type)
    total = sum(scores.values())
    if normalize and total > 0:
        scores = {k: v / total for k, v in scores.items()}
    return scores


def shap_importance(model: Model, X: Any, max_rows: int = 5000, seed: int = 0) -> dict[str, float]:
    """Mean |SHAP value| per feature (exact TreeSHAP from XGBoost's ``pred_contribs``, on the
    margin scale) over at most ``max_rows`` rows sampled with ``seed``."""
    if not isinstance(model, XGBoostModel):
        raise TypeError(f"SHAP importance needs an XGBoostModel, got {type(model).__name__}")
    n = len(X)
    rows = np.arange(n)
    if n > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))
    contrib = model.contributions(take_rows(X, rows))
    return dict(zip(model.feature_names, np.abs(contrib).mean(axis=0).tolist(), strict=True))


def _save(fig: Any, path: Path | str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(out))
    return out


def plot_feature_importance(
    importance: Mapping[str, float],
    path: Path | str,
    top: int = 20,
    title: str = "Feature importance",
) -> Path:
    """Horizontal bar chart of the ``top`` features, largest at the top; writes a PNG."""
    from matplotlib.figure import Figure

    items = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    fig = Figure(figsize=(7, 0.35 * max(len(items), 3) + 1.2), dpi=100)
    ax = fig.add_subplot()
    ax.barh([k for k, _ in items], [v for _, v in items], color="#3b6ea8")
    ax.set_title(title)
    ax.set_xlabel("importance")
    fig.tight_layout()
    return _save(fig, path)


def plot_calibration(
    calib: Mapping[str, Any], path: Path | str, title: str = "Calibration"
) -> Path:
    """Reliability curve from :func:`calibration` (point size by count) with the diagonal."""
    from matplotlib.figure import Figure

    bins: Sequence[Mapping[str, Any]] = calib["bins"]
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    xs = [b["mean_predicted"] for b in bins]
    ys = [b["observed_rate"] for b in bins]
    counts = np.array([b["count"] for b in bins], dtype=float)
    sizes = 20 + 180 * counts / counts.max() if len(counts) else []
    ax.plot(xs, ys, color="#3b6ea8")
    ax.scatter(xs, ys, s=sizes, color="#3b6ea8", zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title(f"{title} (Brier {calib.get('brier', math.nan):.4f})")
    fig.tight_layout()
    return _save(fig, path)
