"""Models behind one interface (:class:`Model`): XGBoost trees and a PyTorch LSTM.

``import quantdesk.ml.models`` works without xgboost or torch installed; building a model whose
library is missing raises :class:`MissingDependencyError` naming the extra to install.
"""

from __future__ import annotations

from typing import Any

from quantdesk.ml.models.base import Kind, MissingDependencyError, Model
from quantdesk.ml.models.lstm import LSTMModel
from quantdesk.ml.models.xgb import XGBoostModel

__all__ = [
    "MODELS",
    "Kind",
    "LSTMModel",
    "MissingDependencyError",
    "Model",
    "XGBoostModel",
    "make_model",
]

MODELS: dict[str, type[Model]] = {"xgboost": XGBoostModel, "lstm": LSTMModel}


def make_model(name: str, kind: Kind = "classifier", **params: Any) -> Model:
    """Build an unfitted model by registry name (``"xgboost"`` or ``"lstm"``)."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}") from None
    return cls(kind, **params)
