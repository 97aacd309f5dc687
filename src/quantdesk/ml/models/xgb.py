"""Gradient-boosted trees with XGBoost (CPU, ``hist``), as a classifier or a regressor.

Deterministic on CPU: a fixed seed drives row/column subsampling and ``hist`` builds the same
trees whatever the thread count. Early stopping watches the last ``eval_set`` and prediction
then uses the trees up to the best iteration. xgboost is imported when a model is built, so the
package imports without it.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from quantdesk.ml.models.base import (
    EvalSet,
    Kind,
    MissingDependencyError,
    Model,
    binary_target,
    check_lengths,
)

__all__ = ["XGBoostModel", "xgboost_module"]

WEIGHTS_FILE = "booster.json"

DEFAULTS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "max_depth": 4,
    "min_child_weight": 1.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "reg_alpha": 0.0,
    "gamma": 0.0,
    "max_bin": 256,
    "early_stopping_rounds": 30,
    "n_jobs": 1,  # threads; None = all cores (1 by default: callers parallelise over folds)
    "seed": 0,
}


def xgboost_module() -> ModuleType:
    """``import xgboost``, or a :class:`MissingDependencyError` naming the ``ml`` extra."""
    try:
        import xgboost
    except ImportError as exc:
        raise MissingDependencyError("xgboost", "ml") from exc
    return xgboost


class XGBoostModel(Model):
    """XGBoost trees. Params (see ``DEFAULTS``): the usual sklearn-style names, ``n_jobs``
    (threads), ``seed``, ``early_stopping_rounds`` (used only with an ``eval_set``)."""

    name = "xgboost"

    def __init__(self, kind: Kind = "classifier", **params: Any) -> None:
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown XGBoost params {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self._xgb = xgboost_module()
        super().__init__(kind, {**DEFAULTS, **params})
        self.booster: Any = None
        self.best_iteration: int | None = None

    def _train_params(self) -> dict[str, Any]:
        p = self.params
        classifier = self.kind == "classifier"
        return {
            "objective": "binary:logistic" if classifier else "reg:squarederror",
            "eval_metric": "logloss" if classifier else "rmse",
            "tree_method": "hist",
            "device": "cpu",
            "eta": p["learning_rate"],
            "max_depth": p["max_depth"],
            "min_child_weight": p["min_child_weight"],
            "subsample": p["subsample"],
            "colsample_bytree": p["colsample_bytree"],
            "lambda": p["reg_lambda"],
            "alpha": p["reg_alpha"],
            "gamma": p["gamma"],
            "max_bin": p["max_bin"],
            "seed": p["seed"],
            "verbosity": 0,
        } | ({} if p["n_jobs"] is None else {"nthread": p["n_jobs"]})

    def _target(self, y: npt.ArrayLike) -> npt.NDArray[np.float64]:
        if self.kind == "classifier":
            return binary_target(y)
        arr = np.asarray(y, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ValueError("y must be finite: drop unlabelled samples before fitting")
        return arr

    def fit(
        self,
        X: Any,
        y: npt.ArrayLike,
        sample_weight: npt.ArrayLike | None = None,
        eval_set: EvalSet | None = None,
    ) -> Self:
        check_lengths(X, y, sample_weight)
        matrix = self._columns(X, fitting=True)
        xgb = self._xgb
        dtrain = xgb.QuantileDMatrix(
            matrix,
            label=self._target(y),
            weight=None if sample_weight is None else np.asarray(sample_weight, dtype=float),
            max_bin=self.params["max_bin"],
            feature_names=self.feature_names,
        )
        evals = []
        if eval_set is not None:
            Xv, yv, *rest = eval_set
            check_lengths(Xv, yv, rest[0] if rest else None)
            dval = xgb.DMatrix(
                self._columns(Xv, fitting=False),
                label=self._target(yv),
                weight=rest[0] if rest else None,
                feature_names=self.feature_names,
            )
            evals = [(dval, "eval")]
        self.booster = xgb.train(
            self._train_params(),
            dtrain,
            num_boost_round=int(self.params["n_estimators"]),
            evals=evals,
            early_stopping_rounds=self.params["early_stopping_rounds"] if evals else None,
            verbose_eval=False,
        )
        self.best_iteration = int(self.booster.best_iteration) if evals else None
        return self

    def _rounds(self) -> tuple[int, int]:
        if self.best_iteration is None:
            return (0, 0)  # all trees
        return (0, self.best_iteration + 1)

    def _dmatrix(self, X: Any) -> Any:
        if self.booster is None:
            raise ValueError("the model has not been fitted")
        matrix = self._columns(X, fitting=False)
        return self._xgb.DMatrix(matrix, feature_names=self.feature_names)

    def predict(self, X: Any) -> npt.NDArray[np.float64]:
        if self.booster is None:
            raise ValueError("the model has not been fitted")
        # In place: no DMatrix to build (what dominates predicting a few rows, as live does).
        matrix = self._columns(X, fitting=False)
        out = self.booster.inplace_predict(matrix, iteration_range=self._rounds())
        return np.asarray(out, dtype=np.float64)

    def booster_predict(self, dmatrix: Any, **kwargs: Any) -> npt.NDArray[np.float64]:
        return np.asarray(
            self.booster.predict(dmatrix, iteration_range=self._rounds(), **kwargs),
            dtype=np.float64,
        )

    def contributions(self, X: Any) -> npt.NDArray[np.float64]:
        """Exact TreeSHAP values per row and feature (margin scale; bias column dropped)."""
        return self.booster_predict(self._dmatrix(X), pred_contribs=True)[:, :-1]

    def importance(self, importance_type: str = "total_gain") -> dict[str, float]:
        """Importance per feature (0 for features never split on), e.g. ``gain``/``total_gain``."""
        if self.booster is None:
            raise ValueError("the model has not been fitted")
        booster = self.booster
        if self.best_iteration is not None:
            booster = booster[: self.best_iteration + 1]
        scores = booster.get_score(importance_type=importance_type)
        return {name: float(scores.get(name, 0.0)) for name in self.feature_names}

    def _save_state(self, directory: Path) -> dict[str, Any]:
        self.booster.save_model(str(directory / WEIGHTS_FILE))
        return {"weights": WEIGHTS_FILE, "best_iteration": self.best_iteration}

    def _load_state(self, directory: Path, meta: dict[str, Any]) -> None:
        booster = self._xgb.Booster()
        booster.load_model(str(directory / meta["weights"]))
        if self.params["n_jobs"] is not None:
            booster.set_param({"nthread": self.params["n_jobs"]})
        self.booster = booster
        self.best_iteration = meta["best_iteration"]
