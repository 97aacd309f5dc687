"""Model monitoring: feature drift as a population stability index (PSI) per feature against the
training distribution's deciles, and live hit rate / AUC / IC against the validation figure.

``ReferenceBins`` is fitted on the training features and ships (``to_dict``) in the model bundle;
``DriftMonitor`` keeps a rolling window of live feature vectors and realised outcomes and, on
``check()``, reports and alerts -- once per model version and feature until it recovers.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from quantdesk.ml.evaluation import auc_standard_error, classification_metrics, regression_metrics

if TYPE_CHECKING:
    from quantdesk.alerts.model import AlertSink

__all__ = [
    "DriftAlert",
    "DriftMonitor",
    "DriftReport",
    "DriftThresholds",
    "Level",
    "ReferenceBins",
    "alert_sink",
    "psi",
]

FloatArray = npt.NDArray[np.float64]
Level = Literal["stable", "moderate", "significant"]
DriftAlert = Callable[[str, str, str, str], None]
"""``alert(kind, title, body, key)``: ``kind`` is an ``AlertKind`` value, ``key`` dedups."""

MODEL_DRIFT = "model_drift"  # AlertKind.MODEL_DRIFT's value (alerts is imported lazily)
PERFORMANCE = "performance"  # the pseudo-feature name of live-performance alerts


def psi(reference_shares: npt.ArrayLike, live_shares: npt.ArrayLike, eps: float = 1e-4) -> float:
    """``sum((live - ref) * ln(live / ref))`` with every share floored at ``eps`` (an empty bin
    would otherwise make it infinite)."""
    ref = np.maximum(np.asarray(reference_shares, dtype=np.float64), eps)
    live = np.maximum(np.asarray(live_shares, dtype=np.float64), eps)
    if ref.shape != live.shape:
        raise ValueError(f"share vectors differ in length: {ref.shape} vs {live.shape}")
    return float(np.sum((live - ref) * np.log(live / ref)))


def _finite(values: npt.ArrayLike) -> FloatArray:
    x = np.asarray(values, dtype=np.float64)
    return x[np.isfinite(x)]


def _shares(edges: FloatArray, values: FloatArray) -> FloatArray:
    """Share of ``values`` per bin ``(-inf, e0], (e0, e1], ..., (e_last, inf)``: values outside
    the training range land in the two edge bins."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
    return counts / max(values.size, 1)


@dataclass(frozen=True)
class _Bins:
    edges: FloatArray  # inner cut points, increasing, unique
    shares: FloatArray  # training share per bin (len(edges) + 1)


@dataclass(frozen=True)
class ReferenceBins:
    """Per feature: the training deciles' unique cut points and the training share per bin.

    Ties collapse to unique edges (so bins need not hold 10% each; the stored shares are the
    real ones). A constant column gets one bin and so a PSI of 0 whatever the live values: the
    model cannot have learned anything from it, so its drift cannot move the predictions.
    NaNs (warm-up rows) are left out on both sides.
    """

    bins: int
    features: dict[str, _Bins]
    rows: int = 0

    @classmethod
    def fit(cls, frame: pd.DataFrame, bins: int = 10) -> ReferenceBins:
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        quantiles = np.arange(1, bins) / bins
        out: dict[str, _Bins] = {}
        for name in frame.columns:
            values = _finite(frame[name].to_numpy(dtype=np.float64))
            if values.size == 0 or values.min() == values.max():
                edges = np.empty(0)
            else:
                edges = np.unique(np.quantile(values, quantiles))
            out[str(name)] = _Bins(edges, _shares(edges, values))
        return cls(bins, out, len(frame))

    @property
    def columns(self) -> list[str]:
        return list(self.features)

    def shares(self, name: str, values: npt.ArrayLike) -> FloatArray:
        """The live share per bin of feature ``name`` (finite values only)."""
        return _shares(self.features[name].edges, _finite(values))

    def psi(self, live_frame: pd.DataFrame) -> dict[str, float]:
        """PSI per reference feature of ``live_frame`` (NaN for a column without finite values;
        a missing column raises ``KeyError``)."""
        missing = [c for c in self.features if c not in live_frame.columns]
        if missing:
            raise KeyError(f"the live frame lacks the reference feature(s) {missing}")
        return {
            name: self._psi(name, live_frame[name].to_numpy(dtype=np.float64))
            for name in self.features
        }

    def _psi(self, name: str, values: npt.ArrayLike) -> float:
        live = _finite(values)
        if live.size == 0:
            return math.nan
        ref = self.features[name]
        return psi(ref.shares, _shares(ref.edges, live))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (floats round-trip exactly through ``json``)."""
        return {
            "bins": self.bins,
            "rows": self.rows,
            "features": {
                name: {"edges": b.edges.tolist(), "shares": b.shares.tolist()}
                for name, b in self.features.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceBins:
        features = {}
        for name, b in data["features"].items():
            edges = np.asarray(b["edges"], dtype=np.float64)
            shares = np.asarray(b["shares"], dtype=np.float64)
            if shares.size != edges.size + 1:
                raise ValueError(f"{name}: {edges.size} edges need {edges.size + 1} shares")
            features[str(name)] = _Bins(edges, shares)
        return cls(int(data["bins"]), features, int(data.get("rows", 0)))


@dataclass(frozen=True)
class DriftThresholds:
    """PSI below ``psi_warn`` is stable, from ``psi_alert`` significant (and alerts).
    ``min_samples`` live vectors (and, separately, outcomes) are needed for a verdict; the
    monitor keeps the last ``window``. Live performance is degraded when it falls more than
    ``performance_z`` standard errors below the validation figure."""

    psi_warn: float = 0.1
    psi_alert: float = 0.25
    min_samples: int = 200
    window: int = 2000
    performance_z: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.psi_warn <= self.psi_alert:
            raise ValueError("need 0 < psi_warn <= psi_alert")
        if not 1 <= self.min_samples <= self.window:
            raise ValueError("need 1 <= min_samples <= window")

    def level(self, value: float) -> Level:
        if value >= self.psi_alert:
            return "significant"
        return "moderate" if value >= self.psi_warn else "stable"


@dataclass(frozen=True)
class DriftReport:
    """One check. Without ``min_samples`` live vectors there is no verdict: ``psi`` and
    ``levels`` are empty and ``drifted`` is False (likewise ``live``/``degraded`` for
    outcomes). ``features`` are the significantly drifted ones; ``alerted`` the keys (features,
    or ``performance``) this check alerted on."""

    model: str
    version: int
    samples: int
    psi: dict[str, float] = field(default_factory=dict)
    levels: dict[str, Level] = field(default_factory=dict)
    features: tuple[str, ...] = ()
    outcomes: int = 0
    metric: str = "auc"
    live: dict[str, float] = field(default_factory=dict)
    validation: float | None = None
    degraded: bool = False
    alerted: tuple[str, ...] = ()

    @property
    def has_verdict(self) -> bool:
        return bool(self.levels)

    @property
    def drifted(self) -> bool:
        return bool(self.features)


class DriftMonitor:
    """Rolling live features and outcomes of one model version, checked against its training
    reference and validation figure.

    Alerting has hysteresis: a feature alerts when its PSI reaches ``psi_alert`` and not again
    until it has recovered (PSI back below ``psi_warn``) and drifted anew; live performance
    alerts when degraded and re-arms once it is not. ``metric`` is ``auc`` for classifiers
    (hit rate reported beside it) and ``ic`` for regressors.
    """

    def __init__(
        self,
        reference: ReferenceBins,
        thresholds: DriftThresholds | None = None,
        *,
        model: str = "",
        version: int = 0,
        kind: Literal["classifier", "regressor"] = "classifier",
        validation: float | None = None,
        alert: DriftAlert | None = None,
    ) -> None:
        self.reference = reference
        self.thresholds = thresholds or DriftThresholds()
        self.model, self.version, self.kind = model, version, kind
        self.metric = "auc" if kind == "classifier" else "ic"
        self.validation = validation
        self.alert = alert
        self._columns = reference.columns
        window = self.thresholds.window
        self._vectors: deque[FloatArray] = deque(maxlen=window)
        self._outcomes: deque[tuple[float, float]] = deque(maxlen=window)
        self._alerting: set[str] = set()

    def observe(self, features: Mapping[str, float]) -> None:
        """Add one live feature vector (NaN for a missing feature)."""
        self._vectors.append(
            np.array([features.get(c, math.nan) for c in self._columns], dtype=np.float64)
        )

    def observe_frame(self, frame: pd.DataFrame) -> None:
        """Add every row of ``frame`` (columns by name; absent ones are NaN)."""
        matrix = frame.reindex(columns=self._columns).to_numpy(dtype=np.float64)
        self._vectors.extend(matrix)

    def observe_matrix(self, matrix: npt.ArrayLike) -> None:
        """Add rows already in the reference's column order (what the model was given)."""
        rows = np.asarray(matrix, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(self._columns):
            raise ValueError(f"rows must have {len(self._columns)} columns in reference order")
        self._vectors.extend(rows)

    def observe_outcome(self, prediction: float, realised: float) -> None:
        """Add a prediction and its realised label (a return: positive is the positive class)."""
        self._outcomes.append((float(prediction), float(realised)))

    def observe_outcomes(self, predictions: Iterable[float], realised: Iterable[float]) -> None:
        for p, y in zip(predictions, realised, strict=True):
            self.observe_outcome(p, y)

    def check(self) -> DriftReport:
        t = self.thresholds
        report: dict[str, Any] = {"samples": len(self._vectors), "outcomes": len(self._outcomes)}
        if len(self._vectors) >= t.min_samples:
            matrix = np.vstack(self._vectors)
            values = {
                name: self.reference._psi(name, matrix[:, i])
                for i, name in enumerate(self._columns)
            }
            # A feature with no finite live value (still warming up) has no verdict either.
            scores = {k: v for k, v in values.items() if not math.isnan(v)}
            levels = {k: t.level(v) for k, v in scores.items()}
            report |= {
                "psi": scores,
                "levels": levels,
                "features": tuple(k for k, lv in levels.items() if lv == "significant"),
            }
            for name, value in scores.items():
                if value < t.psi_warn:
                    self._alerting.discard(name)  # recovered: re-armed
        if len(self._outcomes) >= t.min_samples:
            live, degraded = self._performance()
            report |= {"live": live, "degraded": degraded}
            if not degraded:
                self._alerting.discard(PERFORMANCE)
        out = DriftReport(
            self.model, self.version, metric=self.metric, validation=self.validation, **report
        )
        return self._notify(out)

    def _performance(self) -> tuple[dict[str, float], bool]:
        pred, y = np.array(self._outcomes, dtype=np.float64).T
        if self.kind == "classifier":
            m = classification_metrics(y, pred)
            hit = float(np.mean((pred > 0.5) == (y > 0)))
            live = {"auc": m["auc"], "hit_rate": hit, "n": float(m["n"])}
            se = auc_standard_error(int(m["n_pos"]), int(m["n"] - m["n_pos"]))
        else:
            r = regression_metrics(y, pred)
            live = {"ic": r["ic"], "hit_rate": r.get("hit_rate", math.nan), "n": float(r["n"])}
            se = 1.0 / math.sqrt(max(r["n"] - 3, 1))
        value = live[self.metric]
        if self.validation is None or math.isnan(value) or math.isnan(se):
            return live, False
        return live, value < self.validation - self.thresholds.performance_z * se

    def _notify(self, report: DriftReport) -> DriftReport:
        fresh = [f for f in report.features if f not in self._alerting]
        if report.degraded and PERFORMANCE not in self._alerting:
            fresh.append(PERFORMANCE)
        if not fresh:
            return report
        self._alerting.update(fresh)
        if self.alert is not None:
            who = f"{self.model} v{self.version}"
            for name in fresh:
                title, body = self._describe(report, name, who)
                self.alert(MODEL_DRIFT, title, body, f"{MODEL_DRIFT}:{who}:{name}")
        return replace(report, alerted=tuple(fresh))

    def _describe(self, report: DriftReport, name: str, who: str) -> tuple[str, str]:
        if name == PERFORMANCE:
            live = report.live[self.metric]
            return (
                f"{who}: live {self.metric} below validation",
                f"live {self.metric} {live:.3f} over the last {report.outcomes} outcomes vs "
                f"validation {self.validation:.3f}",
            )
        return (
            f"{who}: feature {name} drifted",
            f"PSI {report.psi[name]:.3f} >= {self.thresholds.psi_alert} over the last "
            f"{report.samples} live rows",
        )


def alert_sink(service: AlertSink, user_id: int | None = None) -> DriftAlert:
    """A :data:`DriftAlert` callback that hands each alert to ``service.notify`` (an
    :class:`~quantdesk.alerts.AlertService`) as a warning for ``user_id`` (None: system)."""
    from quantdesk.alerts.model import Alert, AlertKind, Severity

    def alert(kind: str, title: str, body: str, key: str) -> None:
        service.notify(
            Alert(AlertKind(kind), Severity.WARNING, title, body, user_id, dedup_key=key)
        )

    return alert
