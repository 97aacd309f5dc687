"""Hyperparameter search with Optuna, nested inside one fold's training rows.

The search only ever receives training rows: it cuts them with its own purged walk-forward split
and scores each configuration by the mean inner-fold metric, so the outer test fold plays no part
in choosing. The sampler is ``TPESampler(seed)`` and trials run one at a time, so a seed always
gives the same configurations and result. The number of configurations tried is reported: a
best-of-N out-of-sample figure is inflated by N (deflated Sharpe ratio).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from quantdesk.ml.cv import PurgedWalkForward, time_positions
from quantdesk.ml.evaluation import (
    classification_metrics,
    regression_metrics,
    take_rows,
    walk_forward_predict,
)
from quantdesk.ml.models import Kind, MissingDependencyError

__all__ = ["METRICS", "NestedSearch", "SearchResult", "default_space", "search_hyperparameters"]

Space = Callable[[Any], dict[str, Any]]

#: metric name -> (key in the metrics dict, maximise?)
METRICS: dict[str, tuple[str, bool]] = {
    "auc": ("auc", True),
    "log_loss": ("log_loss", False),
    "accuracy": ("accuracy", True),
    "brier": ("brier", False),
    "ic": ("ic", True),
    "rank_ic": ("rank_ic", True),
    "rmse": ("rmse", False),
}


@dataclass(frozen=True)
class SearchResult:
    """The best configuration, its inner-CV score, and every configuration tried."""

    best_params: dict[str, Any]
    best_value: float
    metric: str
    n_trials: int
    trials: list[dict[str, Any]] = field(default_factory=list)


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise MissingDependencyError("optuna", "ml") from exc
    return optuna


def _xgboost_space(trial: Any) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 400, step=50),
        "max_depth": trial.suggest_int("max_depth", 2, 6),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 100.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }


def _lstm_space(trial: Any) -> dict[str, Any]:
    return {
        "window": trial.suggest_int("window", 4, 32, log=True),
        "hidden_size": trial.suggest_categorical("hidden_size", [8, 16, 32]),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 3e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
    }


def default_space(model_name: str) -> Space:
    """The default search space of a registered model: ``trial -> params``."""
    spaces: dict[str, Space] = {"xgboost": _xgboost_space, "lstm": _lstm_space}
    if model_name not in spaces:
        raise ValueError(f"no default search space for {model_name!r}; pass space=")
    return spaces[model_name]


def search_hyperparameters(
    model_name: str,
    kind: Kind,
    X: Any,
    y: npt.ArrayLike,
    t0: npt.ArrayLike,
    t1: npt.ArrayLike,
    *,
    sample_weight: npt.ArrayLike | None = None,
    space: Space | None = None,
    n_trials: int = 20,
    inner_splits: int = 3,
    embargo: float = 0.01,
    seed: int = 0,
    base_params: Mapping[str, Any] | None = None,
    metric: str | None = None,
    early_stopping: float = 0.0,
    timeout: float | None = None,
) -> SearchResult:
    """Search ``space`` on these (training) rows with an inner purged walk-forward split.

    ``metric`` defaults to ``log_loss`` for classifiers and ``ic`` for regressors; the value of a
    configuration is the mean over the inner folds. ``base_params`` are fixed for every trial
    (e.g. ``seed``, ``n_jobs``). ``timeout`` (seconds) makes the trial count machine-dependent:
    leave it None where results must be reproducible.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    metric = metric or ("log_loss" if kind == "classifier" else "ic")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {sorted(METRICS)}")
    key, maximise = METRICS[metric]
    optuna = _optuna()
    space = space or default_space(model_name)
    ya = np.asarray(y, dtype=np.float64)
    p0, p1 = time_positions(t0, t1)
    cv = PurgedWalkForward(inner_splits, "expanding", embargo=embargo)
    # Fail before the first trial on a training set too small to split.
    next(iter(cv.split(p0, p1)))
    score = classification_metrics if kind == "classifier" else regression_metrics

    def objective(trial: Any) -> float:
        params = {**(base_params or {}), **space(trial)}
        oos = walk_forward_predict(
            model_name,
            kind,
            X,
            ya,
            p0,
            p1,
            cv,
            params=params,
            sample_weight=sample_weight,
            early_stopping=early_stopping,
        )
        values = [score(ya[f], oos.pred[f])[key] for f in oos.folds]
        finite = [v for v in values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else math.nan

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            direction="maximize" if maximise else "minimize",
            sampler=optuna.samplers.TPESampler(seed=seed),
        )
        study.optimize(objective, n_trials=n_trials, timeout=timeout, n_jobs=1)
    finally:
        optuna.logging.set_verbosity(verbosity)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ValueError(f"no trial of {len(study.trials)} produced a finite {metric}")
    trials = [
        {"number": t.number, "params": dict(t.params), "value": t.value, "state": t.state.name}
        for t in study.trials
    ]
    return SearchResult(
        best_params={**(base_params or {}), **_params(study.best_trial, space)},
        best_value=float(study.best_value),
        metric=metric,
        n_trials=len(study.trials),
        trials=trials,
    )


def _params(trial: Any, space: Space) -> dict[str, Any]:
    """The model params of a finished trial (replaying ``space`` on its recorded choices)."""
    optuna = _optuna()
    return space(optuna.trial.FixedTrial(trial.params))


@dataclass
class NestedSearch:
    """A per-fold tuner for ``walk_forward_predict(tune=...)``: searches on the rows it is
    given (the fold's purged training rows) and nothing else."""

    model_name: str
    kind: Kind
    X: Any
    y: npt.ArrayLike
    t0: npt.ArrayLike
    t1: npt.ArrayLike
    sample_weight: npt.ArrayLike | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(self, train_idx: npt.NDArray[np.int64]) -> SearchResult:
        weight = None if self.sample_weight is None else np.asarray(self.sample_weight)[train_idx]
        return search_hyperparameters(
            self.model_name,
            self.kind,
            take_rows(self.X, train_idx),
            np.asarray(self.y)[train_idx],
            np.asarray(self.t0)[train_idx],
            np.asarray(self.t1)[train_idx],
            sample_weight=weight,
            **self.options,
        )
