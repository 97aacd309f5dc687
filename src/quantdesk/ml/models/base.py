"""The one interface every model implements, its on-disk layout, and shared input handling.

A saved model is a directory: ``model.json`` (class, kind, params, feature names and whatever
the model needs to rebuild itself) beside the model's own weights file. No pickles: loading a
model never runs code from the file.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "META_FILE",
    "EvalSet",
    "Kind",
    "MissingDependencyError",
    "Model",
    "as_matrix",
    "binary_target",
]

Kind = Literal["classifier", "regressor"]
EvalSet = tuple[Any, Any] | tuple[Any, Any, Any]
META_FILE = "model.json"

_REGISTRY: dict[str, type[Model]] = {}


class MissingDependencyError(ImportError):
    """An optional dependency of a model is not installed; the message names the extra."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install the extra with: pip install 'quantdesk[{extra}]'"
        )
        self.package = package
        self.extra = extra


class Model(ABC):
    """A supervised model on a feature matrix.

    ``predict`` returns the probability of the positive class (``y > 0``) for classifiers and the
    predicted value for regressors, one float per row of ``X``.
    """

    name: ClassVar[str]
    #: True if a row's prediction reads earlier rows (sequence models): predict on the history.
    needs_history: ClassVar[bool] = False

    def __init__(self, kind: Kind, params: dict[str, Any]) -> None:
        if kind not in ("classifier", "regressor"):
            raise ValueError(f"kind must be 'classifier' or 'regressor', got {kind!r}")
        self.kind: Kind = kind
        self.params: dict[str, Any] = dict(params)
        self.feature_names: list[str] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _REGISTRY[cls.name] = cls

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, params={self.params!r})"

    @property
    def is_fitted(self) -> bool:
        return bool(self.feature_names)

    @abstractmethod
    def fit(
        self,
        X: Any,
        y: npt.ArrayLike,
        sample_weight: npt.ArrayLike | None = None,
        eval_set: EvalSet | None = None,
    ) -> Self:
        """Fit on ``X`` (DataFrame or 2-D array); ``eval_set`` = ``(X, y[, weight])`` for early
        stopping. Returns ``self``."""

    @abstractmethod
    def predict(self, X: Any) -> npt.NDArray[np.float64]: ...

    @abstractmethod
    def _save_state(self, directory: Path) -> dict[str, Any]:
        """Write the weights into ``directory``; return extra metadata for ``model.json``."""

    @abstractmethod
    def _load_state(self, directory: Path, meta: dict[str, Any]) -> None: ...

    def save(self, path: Path | str) -> Path:
        """Write the fitted model into the directory ``path`` (created if needed)."""
        if not self.is_fitted:
            raise ValueError("cannot save a model that has not been fitted")
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "model": self.name,
            "kind": self.kind,
            "params": self.params,
            "feature_names": self.feature_names,
            "state": self._save_state(directory),
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        return directory

    @classmethod
    def load(cls, path: Path | str) -> Model:
        """Rebuild a saved model. ``Model.load`` picks the class from ``model.json``; a subclass's
        ``load`` refuses a directory holding another kind of model."""
        directory = Path(path)
        meta = json.loads((directory / META_FILE).read_text())
        target = _REGISTRY.get(meta["model"])
        if target is None:
            raise ValueError(f"unknown model {meta['model']!r} in {directory}")
        if cls is not Model and not issubclass(target, cls):
            raise ValueError(f"{directory} holds a {target.__name__}, not a {cls.__name__}")
        model = target(kind=meta["kind"], **meta["params"])
        model.feature_names = list(meta["feature_names"])
        model._load_state(directory, meta["state"])
        return model

    def _columns(self, X: Any, *, fitting: bool) -> npt.NDArray[np.float64]:
        """``X`` as a float matrix in the fitted column order (DataFrames are matched by name)."""
        names, matrix = as_matrix(X, None if fitting else self.feature_names)
        if fitting:
            self.feature_names = names
        elif matrix.shape[1] != len(self.feature_names):
            raise ValueError(
                f"X has {matrix.shape[1]} features, the model was fitted on "
                f"{len(self.feature_names)}"
            )
        return matrix


def as_matrix(
    X: Any, columns: list[str] | None = None
) -> tuple[list[str], npt.NDArray[np.float64]]:
    """Feature names and a float64 matrix; DataFrames are reordered to ``columns`` if given."""
    if isinstance(X, pd.DataFrame):
        if columns is not None:
            missing = [c for c in columns if c not in X.columns]
            if missing:
                raise ValueError(f"X lacks the fitted features {missing}")
            X = X[columns]
        names = [str(c) for c in X.columns]
        return names, np.ascontiguousarray(X.to_numpy(dtype=np.float64))
    matrix = np.asarray(X, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {matrix.shape}")
    names = columns or [f"f{i}" for i in range(matrix.shape[1])]
    return names, np.ascontiguousarray(matrix)


def binary_target(y: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The classifier target: 1.0 where ``y > 0`` (the positive class), else 0.0."""
    arr = np.asarray(y, dtype=np.float64)
    if np.isnan(arr).any():
        raise ValueError("y contains NaN: drop unlabelled samples before fitting")
    return (arr > 0).astype(np.float64)


def check_lengths(X: Any, y: npt.ArrayLike, sample_weight: npt.ArrayLike | None) -> None:
    n = len(X)
    if len(np.asarray(y)) != n:
        raise ValueError(f"X has {n} rows but y has {len(np.asarray(y))}")
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64)
        if len(w) != n:
            raise ValueError(f"X has {n} rows but sample_weight has {len(w)}")
        if np.any(w < 0) or not np.isfinite(w).all():
            raise ValueError("sample_weight must be finite and >= 0")
