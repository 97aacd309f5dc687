"""A registered model as a bundle on disk, and its prediction on the latest stored bars.

The training pipeline logs a bundle with every version: ``model/`` (the model's own save
format), ``bundle.json`` (the feature set's definition and hash, the model's columns, the
interval, the signal thresholds, the training distributions for drift) and
``feature_set.yaml``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantdesk.errors import AppError, NotFound
from quantdesk.market.store import BarStore
from quantdesk.ml.dataset import load_bars
from quantdesk.ml.features import FeatureSet
from quantdesk.ml.models.base import Model
from quantdesk.ml.tracking import Tracker

__all__ = ["Bundle", "load_bundle", "predict_latest", "signal_of"]


@dataclass
class Bundle:
    name: str
    version: int
    model: Model
    feature_set: FeatureSet
    columns: list[str]
    meta: dict[str, Any]

    @property
    def interval(self) -> str:
        return str(self.meta["interval"])


def load_bundle(
    tracker: Tracker,
    name: str,
    *,
    alias: str | None = "champion",
    version: int | None = None,
    dst: Path | None = None,
) -> Bundle:
    """The bundle of ``name`` at ``version`` (or the alias's version), downloaded and loaded."""
    info = tracker.get_version(name, version) if version is not None else None
    if info is None:
        if alias is None:
            raise AppError("give an alias or a version", code="ML_BAD_REQUEST")
        info = tracker.get_by_alias(name, alias)
    target = dst or Path(tempfile.mkdtemp(prefix="qd-model-"))
    root = tracker.download_model(name, info.version, target)
    meta = json.loads((root / "bundle.json").read_text())
    return Bundle(
        name=name,
        version=info.version,
        model=Model.load(root / "model"),
        feature_set=FeatureSet.from_definition(meta["feature_set"]),
        columns=list(meta["columns"]),
        meta=meta,
    )


def signal_of(value: float, threshold: dict[str, Any]) -> int:
    """+1 above the long threshold, -1 below the short one (if any), else 0."""
    if not np.isfinite(value):
        return 0
    if abs(value - 0.5) < float(threshold.get("min_confidence") or 0.0):
        return 0
    if value > float(threshold["long"]):
        return 1
    short = threshold.get("short")
    if short is not None and value < float(short):
        return -1
    return 0


def predict_latest(
    tracker: Tracker,
    store: BarStore,
    name: str,
    symbols: list[str],
    alias: str | None = "champion",
    version: int | None = None,
) -> list[dict[str, Any]]:
    """Each symbol's latest stored bar through the model: value, signal, model version."""
    bundle = load_bundle(tracker, name, alias=alias, version=version)
    interval = bundle.interval
    end = datetime.now(UTC).date()
    # Enough history for the longest look-back: bars per day times a margin, in calendar days.
    per_day = 1 if interval == "1d" else max(1, 375 // _minutes(interval))
    days = max(30, int(bundle.feature_set.lookback / per_day * 1.6) + 10)
    bars, _ = load_bars(store, symbols, interval, date(1900, 1, 1), end)
    rows = []
    ohlcv = {
        s: b[b.index >= b.index[-1] - timedelta(days=days)][
            ["open", "high", "low", "close", "volume"]
        ]
        for s, b in bars.items()
    }
    panel = bundle.feature_set.compute_panel(ohlcv)
    for symbol in ohlcv:
        frame = panel.xs(symbol, level="symbol")[bundle.columns]
        last = frame.iloc[[-1]]
        if not np.isfinite(last.to_numpy()).all():
            raise NotFound(
                f"{symbol}: not enough history for the model's features",
                code="ML_NOT_ENOUGH_HISTORY",
            )
        if bundle.model.needs_history:  # a sequence model reads the rows before the last
            history = frame[np.isfinite(frame.to_numpy()).all(axis=1)]
            history.index = pd.MultiIndex.from_arrays(
                [history.index, [symbol] * len(history)], names=["timestamp", "symbol"]
            )
            value = float(bundle.model.predict(history)[-1])
        else:
            value = float(bundle.model.predict(last)[0])
        rows.append(
            {
                "symbol": symbol,
                "time": last.index[0].isoformat(),
                "value": value,
                "signal": signal_of(value, bundle.meta["threshold"]),
                "model": name,
                "version": bundle.version,
            }
        )
    return rows


def _minutes(interval: str) -> int:
    return {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60}.get(interval, 1)
