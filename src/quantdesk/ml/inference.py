"""Live inference: serve the registry's champion model bar by bar.

``InferenceService`` resolves a model alias, downloads that version's bundle (``model/`` as
written by ``Model.save`` and ``bundle.json``: feature set, columns, thresholds, drift reference
bins, validation figures), streams features, predicts once a timestamp is complete (every symbol,
when the feature set ranks across symbols; else per symbol), writes the signals to the
:class:`~quantdesk.ml.signals.SignalStore`, feeds a :class:`~quantdesk.ml.drift.DriftMonitor`,
and hot-swaps to a newly promoted version without a restart.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from quantdesk.ml.drift import (
    DriftAlert,
    DriftMonitor,
    DriftReport,
    DriftThresholds,
    ReferenceBins,
)
from quantdesk.ml.features.batch import BAR_COLUMNS
from quantdesk.ml.features.spec import FeatureSet
from quantdesk.ml.models.base import Model
from quantdesk.ml.signals import SignalStore, Thresholds

if TYPE_CHECKING:
    from quantdesk.ml.features.stream import StreamingFeatures
    from quantdesk.ml.tracking import Tracker

__all__ = ["BUNDLE_FILE", "MODEL_DIR", "Bundle", "InferenceService", "Prediction"]

log = logging.getLogger("quantdesk.ml.inference")

BUNDLE_FILE = "bundle.json"
MODEL_DIR = "model"
Clock = Callable[[], float]
_Bar = tuple[datetime, float, float, float, float, float]


@dataclass(frozen=True)
class Prediction:
    model: str
    version: int
    symbol: str
    time: datetime  # the bar's end (UTC): when the prediction is known
    value: float  # probability of an up move (classifier) or the predicted value (regressor)
    signal: int  # -1, 0 or +1 after the thresholds


@dataclass(frozen=True)
class Bundle:
    """One registered version as the pipeline writes it (see the module docstring)."""

    version: int
    model: Model
    feature_set: FeatureSet
    columns: tuple[str, ...]
    interval: str
    symbols: tuple[str, ...]
    thresholds: Thresholds
    reference: ReferenceBins
    validation: dict[str, float] = field(default_factory=dict)
    horizon: int = 0
    """The label's horizon in bars: a prediction's outcome is the close-to-close return that
    many bars later (0: unknown, no live performance)."""

    @classmethod
    def read(cls, directory: Path | str, version: int) -> Bundle:
        root = Path(directory)
        if not (root / BUNDLE_FILE).is_file() or not (root / MODEL_DIR).is_dir():
            raise ValueError(
                f"{root} is not a model bundle: it needs {BUNDLE_FILE} and {MODEL_DIR}/"
            )
        meta: dict[str, Any] = json.loads((root / BUNDLE_FILE).read_text())
        feature_set = FeatureSet.from_definition(meta["feature_set"])
        if feature_set.hash != meta["feature_set_hash"]:
            raise ValueError(
                f"{root}: the feature set's hash is {feature_set.hash}, the bundle says "
                f"{meta['feature_set_hash']} (the feature definitions changed since training)"
            )
        columns = tuple(meta["columns"])
        unknown = sorted(set(columns) - set(feature_set.columns))
        if unknown:
            raise ValueError(f"{root}: columns {unknown} are not in the feature set")
        model = Model.load(root / MODEL_DIR)
        return cls(
            version=version,
            model=model,
            feature_set=feature_set,
            columns=columns,
            interval=str(meta["interval"]),
            symbols=tuple(meta["symbols"]),
            thresholds=Thresholds.from_dict(meta["threshold"]),
            reference=ReferenceBins.from_dict(meta["reference_bins"]),
            validation={
                k: float(v)
                for k, v in (meta.get("validation") or {}).items()
                if v is not None and math.isfinite(float(v))
            },
            horizon=_horizon(meta.get("label")),
        )

    @functools.cached_property
    def cross_sectional(self) -> bool:
        return any(f.is_rank for f in self.feature_set.features)


def _horizon(label: Any) -> int:
    """The horizon of a stored label (``forward:5``, ``triple-barrier:10:2:2``); 0 if none."""
    if not isinstance(label, str):
        return 0
    from quantdesk.ml.dataset import LabelSpec

    try:
        return LabelSpec.parse(label).horizon
    except ValueError:
        return 0


@dataclass
class _Active:
    """What one served version needs; replaced as a whole on a swap. ``awaiting`` holds, per
    symbol, the predictions whose outcome is not known yet: (the symbol's bar count when
    predicted, its close then, the predicted value)."""

    bundle: Bundle
    streaming: StreamingFeatures
    monitor: DriftMonitor
    thresholds: Thresholds
    awaiting: dict[str, deque[tuple[int, float, float]]] = field(default_factory=dict)
    sequences: dict[str, deque[npt.NDArray[np.float64]]] = field(default_factory=dict)
    """A sequence model's (LSTM) input: each symbol's last ``window`` ready feature rows."""


class InferenceService:
    """Serves ``alias`` of the registered model ``model_name``.

    ``thresholds`` overrides the bundle's; ``history`` bars per symbol are kept so a version
    with another feature set starts from the same bars (its recursive indicators converge from
    there; batch parity holds exactly when the history reaches back to the first bar).
    ``reload_if_promoted`` asks the registry at most every ``reload_every`` seconds of ``clock``.
    The drift monitor is checked every ``check_every`` predicted timestamps (0: never; its
    latest report is ``last_report``), alerting through ``alert``.
    A symbol missing a bar leaves that timestamp without predictions in cross-sectional mode.
    """

    def __init__(
        self,
        tracker: Tracker,
        model_name: str,
        store: SignalStore,
        *,
        alias: str = "champion",
        thresholds: Thresholds | None = None,
        download_dir: Path | str,
        drift: DriftThresholds | None = None,
        alert: DriftAlert | None = None,
        clock: Clock = time.monotonic,
        reload_every: float = 60.0,
        history: int = 5000,
        check_every: int = 50,
        flush_every: float = 0.0,
    ) -> None:
        """``flush_every``: seconds (of ``clock``) the predicted signals are buffered before
        they are written to the store (0: written at once); :meth:`flush` writes them now.
        Live serving buffers, so a bar's predictions never wait for Parquet writes."""
        self.tracker = tracker
        self.model_name = model_name
        self.alias = alias
        self.store = store
        self.download_dir = Path(download_dir)
        self.drift_thresholds = drift
        self.alert = alert
        self.clock = clock
        self.reload_every = reload_every
        self._thresholds = thresholds
        self._history: dict[str, deque[_Bar]] = {}
        self._history_size = history
        self._bars_seen: dict[str, int] = {}  # live bars per symbol (warm-up excluded)
        self._closes: dict[str, float] = {}
        self._active: _Active | None = None
        self._checked_at = -math.inf
        self.check_every = check_every
        self._since_check = 0
        self.last_report: DriftReport | None = None
        self.flush_every = flush_every
        self._pending: dict[str, list[Mapping[str, Any]]] = {}
        self._flushed_at = clock()

    # -- loading ------------------------------------------------------------------------------

    @property
    def active(self) -> _Active:
        if self._active is None:
            raise RuntimeError("InferenceService.load() has not been called")
        return self._active

    @property
    def bundle(self) -> Bundle:
        return self.active.bundle

    @property
    def version(self) -> int | None:
        return None if self._active is None else self._active.bundle.version

    @property
    def monitor(self) -> DriftMonitor:
        return self.active.monitor

    def load(self) -> int:
        """Serve the version the alias points at now; its number."""
        version = self.tracker.get_by_alias(self.model_name, self.alias).version
        self._checked_at = self.clock()
        self._swap(self._fetch(version))
        return version

    def reload_if_promoted(self, *, force: bool = False) -> bool:
        """Swap to the alias's version if it moved; True if swapped. Cheap between registry
        checks; a registry error is logged and the current version kept serving."""
        now = self.clock()
        if not force and now - self._checked_at < self.reload_every:
            return False
        self._checked_at = now
        try:
            version = self.tracker.get_by_alias(self.model_name, self.alias).version
            if version == self.version:
                return False
            bundle = self._fetch(version)
        except Exception:
            log.exception("model %s@%s: reload failed", self.model_name, self.alias)
            return False
        old = self.version
        self._swap(bundle)
        log.info("model %s@%s: v%s -> v%s", self.model_name, self.alias, old, version)
        return True

    def _fetch(self, version: int) -> Bundle:
        dst = self.download_dir / self.model_name / f"v{version}"
        local = self.tracker.download_model(self.model_name, version, dst)
        return Bundle.read(local, version)

    def _swap(self, bundle: Bundle) -> None:
        current = self._active
        same_features = (
            current is not None
            and current.bundle.feature_set.hash == bundle.feature_set.hash
            and current.bundle.symbols == bundle.symbols
        )
        if current is not None and same_features:
            streaming = current.streaming  # the state is the same: carry it on
        else:
            streaming = bundle.feature_set.streaming(bundle.symbols)
            self._replay(streaming)
        monitor = DriftMonitor(
            bundle.reference,
            self.drift_thresholds,
            model=self.model_name,
            version=bundle.version,
            kind=bundle.model.kind,
            validation=bundle.validation.get("auc" if bundle.model.kind == "classifier" else "ic"),
            alert=self.alert,
        )
        thresholds = self._thresholds or bundle.thresholds
        self._active = _Active(bundle, streaming, monitor, thresholds)

    def _replay(self, streaming: StreamingFeatures) -> None:
        """Feed the kept history, in time order across symbols, into a fresh stream."""
        bars = sorted(
            ((bar, symbol) for symbol, kept in self._history.items() for bar in kept),
            key=lambda item: item[0][0],
        )
        for bar, symbol in bars:
            if symbol in streaming.symbols:
                streaming.update(symbol, *bar)

    # -- bars ---------------------------------------------------------------------------------

    def warm_up(self, symbol: str, bars: pd.DataFrame) -> None:
        """Prime the features of ``symbol`` from history (DatetimeIndex of bar END times,
        OHLCV columns); no predictions are made."""
        columns = [bars[c].to_numpy(dtype=np.float64) for c in BAR_COLUMNS]
        active = self.active
        bundle = active.bundle
        # A sequence model's window fills from the history too (per-symbol features: ranked
        # ones need every symbol's bar and fill on the live bars).
        window = None
        if bundle.model.needs_history and not bundle.cross_sectional:
            size = max(int(bundle.model.params.get("window", 1)), 1)
            window = active.sequences.setdefault(symbol, deque(maxlen=size))
        for ts, o, h, low, c, v in zip(bars.index, *columns, strict=True):
            bar = (_utc(ts), float(o), float(h), float(low), float(c), float(v))
            features = self._feed(symbol, bar)
            if window is not None:
                row = np.array([features.get(k, math.nan) for k in bundle.columns])
                if np.isfinite(row).all():
                    window.append(row)

    def _feed(self, symbol: str, bar: _Bar) -> dict[str, float]:
        features = self.active.streaming.update(symbol, *bar)
        kept = self._history.setdefault(symbol, deque(maxlen=self._history_size))
        kept.append(bar)  # after the update: a refused bar is not kept
        return features

    def flush(self) -> None:
        """Write the buffered signals to the store."""
        pending, self._pending = self._pending, {}
        self._flushed_at = self.clock()
        for symbol, rows in pending.items():
            self.store.append(self.model_name, symbol, rows)

    def on_bar(
        self,
        symbol: str,
        ts_end: datetime | pd.Timestamp,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        *,
        known_at: datetime | pd.Timestamp | None = None,
    ) -> list[Prediction]:
        """Feed one closed bar; the predictions it completes (all symbols of the timestamp in
        cross-sectional mode, else this symbol's), empty during warm-up or while symbols of
        the timestamp are still missing."""
        active = self.active
        ts = _utc(ts_end)
        # The features read the bar's time as training saw it (the pipeline indexes bars by
        # their start: pass that as ``ts_end`` then); the signal is stored at ``known_at``, the
        # bar's close, so an as-of reader never sees it before the bar ended.
        at = ts if known_at is None else _utc(known_at)
        bar = (ts, float(open), float(high), float(low), float(close), float(volume))
        features = self._feed(symbol, bar)
        self._score(active, symbol, float(close))
        if active.bundle.cross_sectional:
            if not active.streaming.complete(ts):
                return []
            frame = active.streaming.vector(ts)
        else:
            frame = pd.DataFrame([features], index=pd.Index([symbol], name="symbol"))
        return self._predict(active, at, frame)

    def _score(self, active: _Active, symbol: str, close: float) -> None:
        """Count the symbol's live bar and give the monitor the outcomes it completes: the
        return from a prediction's close to the close ``horizon`` bars later (the label of
        ``forward:H``; for a triple-barrier label, its horizon's return stands in)."""
        seen = self._bars_seen[symbol] = self._bars_seen.get(symbol, 0) + 1
        self._closes[symbol] = close
        waiting = active.awaiting.get(symbol)
        horizon = active.bundle.horizon
        while waiting and seen - waiting[0][0] >= horizon:
            _, then, value = waiting.popleft()
            active.monitor.observe_outcome(value, close / then - 1.0)

    def _predict(self, active: _Active, ts: datetime, frame: pd.DataFrame) -> list[Prediction]:
        bundle = active.bundle
        matrix = frame.loc[:, list(bundle.columns)].to_numpy(dtype=np.float64)
        ready = np.isfinite(matrix).all(axis=1)  # not the rows still warming up
        if not ready.any():
            return []
        X = matrix[ready]
        symbols = [s for s, ok in zip(frame.index, ready.tolist(), strict=True) if ok]
        values = (
            self._sequence_predict(active, symbols, X)
            if bundle.model.needs_history
            else (bundle.model.predict(X))
        )
        signals = active.thresholds.apply(values)
        out = []
        for symbol, value, signal in zip(symbols, values.tolist(), signals.tolist(), strict=True):
            prediction = Prediction(
                self.model_name, bundle.version, str(symbol), ts, float(value), int(signal)
            )
            self._pending.setdefault(prediction.symbol, []).append(_row(prediction))
            out.append(prediction)
            if bundle.horizon > 0 and prediction.symbol in self._closes:
                waiting = active.awaiting.setdefault(prediction.symbol, deque())
                waiting.append(
                    (self._bars_seen[prediction.symbol], self._closes[prediction.symbol], value)
                )
        if self.clock() - self._flushed_at >= self.flush_every:
            self.flush()
        active.monitor.observe_matrix(X)
        self._since_check += 1
        if self.check_every and self._since_check >= self.check_every:
            self._since_check = 0
            self.last_report = active.monitor.check()
        return out

    @staticmethod
    def _sequence_predict(
        active: _Active, symbols: list[str], X: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """A sequence model on each symbol's window of ready rows ending with this one (as
        the model saw a symbol's rows in training: oldest first, zero-padded when short)."""
        window = max(int(active.bundle.model.params.get("window", 1)), 1)
        blocks: list[npt.NDArray[np.float64]] = []
        groups: list[int] = []
        ends: list[int] = []
        for i, symbol in enumerate(symbols):
            kept = active.sequences.setdefault(str(symbol), deque(maxlen=window))
            kept.append(X[i])
            blocks.extend(kept)
            groups.extend([i] * len(kept))
            ends.append(len(blocks) - 1)
        model: Any = active.bundle.model  # a sequence model's predict takes the groups
        values = model.predict(np.vstack(blocks), groups=np.asarray(groups))
        return np.asarray(values[ends], dtype=np.float64)


def _row(p: Prediction) -> Mapping[str, Any]:
    return {"time": p.time, "value": p.value, "signal": p.signal, "model_version": p.version}


def _utc(ts: datetime | pd.Timestamp) -> datetime:
    """``ts`` as an aware UTC datetime (naive = UTC; nanoseconds are dropped)."""
    if type(ts) is datetime and ts.tzinfo is UTC:  # the live path: no conversion
        return ts
    stamp = pd.Timestamp(ts)
    stamp = stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime(warn=False)
