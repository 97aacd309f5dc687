"""Feature drift (PSI against training deciles) and the monitor's verdicts and alerts."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from quantdesk.alerts.model import Alert, AlertKind, Severity
from quantdesk.ml.drift import (
    DriftMonitor,
    DriftThresholds,
    ReferenceBins,
    alert_sink,
    psi,
)


def _normal(n: int, mean: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, 1.0, n)


@pytest.fixture(scope="module")
def reference() -> ReferenceBins:
    train = pd.DataFrame({"x": _normal(20_000), "y": _normal(20_000, seed=1)})
    return ReferenceBins.fit(train)


def test_psi_formula_and_floor() -> None:
    ref, live = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi(ref, live) == pytest.approx(expected)
    # An empty live bin is floored at eps rather than giving an infinite PSI.
    assert psi([0.5, 0.5], [1.0, 0.0]) == pytest.approx(
        0.5 * math.log(1.0 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    )


def test_deciles_hold_a_tenth_of_the_training_data_each(reference: ReferenceBins) -> None:
    bins = reference.features["x"]
    assert bins.edges.size == 9
    np.testing.assert_allclose(bins.shares, 0.1, atol=1e-3)


def test_identical_distribution_has_psi_near_zero(reference: ReferenceBins) -> None:
    live = pd.DataFrame({"x": _normal(5000, seed=7), "y": _normal(5000, seed=8)})
    scores = reference.psi(live)
    assert set(scores) == {"x", "y"}
    assert all(v < 0.02 for v in scores.values())


def test_a_one_sd_shift_is_significant(reference: ReferenceBins) -> None:
    live = pd.DataFrame({"x": _normal(5000, mean=1.0, seed=7), "y": _normal(5000, seed=8)})
    scores = reference.psi(live)
    assert scores["x"] > 0.25
    assert scores["y"] < 0.02


def test_values_outside_the_training_range_fall_into_the_edge_bins(
    reference: ReferenceBins,
) -> None:
    shares = reference.shares("x", [-1e9, -50.0, 50.0, 1e9, 1e9])
    assert shares.size == 10
    assert shares[0] == pytest.approx(0.4)
    assert shares[-1] == pytest.approx(0.6)
    assert shares[1:-1].sum() == 0


def test_ties_collapse_to_unique_edges_with_real_shares() -> None:
    # 70% zeros: the first six deciles are all 0.
    values = np.r_[np.zeros(700), np.arange(1, 301, dtype=float)]
    bins = ReferenceBins.fit(pd.DataFrame({"z": values})).features["z"]
    assert np.unique(bins.edges).size == bins.edges.size
    assert bins.edges[0] == 0.0
    assert bins.shares[0] == pytest.approx(0.7)
    assert bins.shares.sum() == pytest.approx(1.0)


def test_a_constant_column_gets_one_bin_and_never_drifts() -> None:
    ref = ReferenceBins.fit(pd.DataFrame({"c": np.full(500, 3.0), "x": _normal(500)}))
    assert ref.features["c"].edges.size == 0
    np.testing.assert_array_equal(ref.features["c"].shares, [1.0])
    scores = ref.psi(pd.DataFrame({"c": _normal(300), "x": _normal(300, seed=3)}))
    assert scores["c"] == 0.0


def test_nan_is_ignored_and_an_all_nan_live_column_has_no_score() -> None:
    train = pd.DataFrame({"x": np.r_[np.full(50, np.nan), _normal(1000)]})
    ref = ReferenceBins.fit(train)
    assert ref.features["x"].shares.sum() == pytest.approx(1.0)
    assert math.isnan(ref.psi(pd.DataFrame({"x": [np.nan, np.nan]}))["x"])


def test_round_trips_through_json(reference: ReferenceBins) -> None:
    back = ReferenceBins.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert back.bins == reference.bins and back.rows == reference.rows
    assert back.columns == reference.columns
    for name, bins in reference.features.items():
        np.testing.assert_array_equal(back.features[name].edges, bins.edges)
        np.testing.assert_array_equal(back.features[name].shares, bins.shares)
    live = pd.DataFrame({"x": _normal(1000, mean=0.5, seed=9), "y": _normal(1000, seed=10)})
    assert back.psi(live) == reference.psi(live)


def test_a_missing_live_column_is_an_error(reference: ReferenceBins) -> None:
    with pytest.raises(KeyError, match="'y'"):
        reference.psi(pd.DataFrame({"x": [0.0]}))


# -- the monitor ----------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, str]] = []

    def __call__(self, kind: str, title: str, body: str, key: str) -> None:
        self.calls.append((kind, title, body, key))


def _monitor(reference: ReferenceBins, alert: Recorder | None = None, **kw: object) -> DriftMonitor:
    thresholds = DriftThresholds(min_samples=200, window=400)
    return DriftMonitor(reference, thresholds, model="m", version=3, alert=alert, **kw)  # type: ignore[arg-type]


def _feed(monitor: DriftMonitor, n: int, mean: float, seed: int) -> None:
    monitor.observe_frame(pd.DataFrame({"x": _normal(n, mean, seed), "y": _normal(n, seed=seed)}))


def test_fewer_than_min_samples_gives_no_verdict_and_no_alert(reference: ReferenceBins) -> None:
    alert = Recorder()
    monitor = _monitor(reference, alert)
    _feed(monitor, 199, mean=3.0, seed=1)  # wildly drifted, but too few rows
    report = monitor.check()
    assert report.samples == 199
    assert not report.has_verdict and not report.drifted and report.psi == {}
    assert alert.calls == []
    monitor.observe({"x": 3.0, "y": 0.0})
    assert monitor.check().drifted


def test_the_monitor_alerts_once_then_again_after_recovery(reference: ReferenceBins) -> None:
    alert = Recorder()
    monitor = _monitor(reference, alert)
    _feed(monitor, 400, mean=0.0, seed=1)
    stable = monitor.check()
    assert stable.has_verdict and not stable.drifted
    assert stable.levels == {"x": "stable", "y": "stable"}
    assert alert.calls == []

    _feed(monitor, 400, mean=1.0, seed=2)  # the window now holds only shifted rows
    first = monitor.check()
    assert first.drifted and first.features == ("x",) and first.levels["x"] == "significant"
    assert first.alerted == ("x",)
    assert len(alert.calls) == 1
    kind, title, body, key = alert.calls[0]
    assert kind == "model_drift" and key == "model_drift:m v3:x"
    assert "x" in title and "PSI" in body

    for seed in (3, 4):  # still drifted: no alert storm
        _feed(monitor, 100, mean=1.0, seed=seed)
        assert monitor.check().drifted
    assert len(alert.calls) == 1

    _feed(monitor, 400, mean=0.0, seed=5)  # recovered
    assert not monitor.check().drifted
    _feed(monitor, 400, mean=1.0, seed=6)  # and drifted anew
    assert monitor.check().alerted == ("x",)
    assert len(alert.calls) == 2


def test_a_moderate_dip_does_not_rearm_the_alert(reference: ReferenceBins) -> None:
    alert = Recorder()
    monitor = _monitor(reference, alert)
    _feed(monitor, 400, mean=1.0, seed=1)
    monitor.check()
    _feed(monitor, 400, mean=0.45, seed=2)  # PSI between warn and alert
    assert monitor.check().levels["x"] == "moderate"
    _feed(monitor, 400, mean=1.0, seed=3)
    assert monitor.check().drifted
    assert len(alert.calls) == 1


def test_live_auc_below_validation_is_degraded_and_alerts_once(reference: ReferenceBins) -> None:
    alert = Recorder()
    monitor = _monitor(reference, alert, validation=0.8)
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    monitor.observe_outcomes(rng.uniform(size=199), y[:199])
    assert monitor.check().live == {}  # too few outcomes
    monitor.observe_outcomes(rng.uniform(size=201), y[199:])  # uninformative: AUC ~ 0.5
    report = monitor.check()
    assert report.outcomes == 400 and report.metric == "auc"
    assert abs(report.live["auc"] - 0.5) < 0.1 and 0.0 <= report.live["hit_rate"] <= 1.0
    assert report.degraded and report.alerted == ("performance",)
    assert monitor.check().alerted == ()
    assert [c[3] for c in alert.calls] == ["model_drift:m v3:performance"]


def test_live_auc_matching_validation_is_not_degraded(reference: ReferenceBins) -> None:
    monitor = _monitor(reference, validation=0.75)
    rng = np.random.default_rng(1)
    y = rng.normal(size=400)
    p = 1 / (1 + np.exp(-(y + rng.normal(scale=0.9, size=400))))  # informative scores
    monitor.observe_outcomes(p, y)
    report = monitor.check()
    assert report.live["auc"] > 0.7 and not report.degraded


def test_alert_sink_notifies_a_model_drift_warning() -> None:
    class Sink:
        def __init__(self) -> None:
            self.alerts: list[Alert] = []

        def notify(self, alert: Alert) -> None:
            self.alerts.append(alert)

    sink = Sink()
    alert_sink(sink, user_id=7)("model_drift", "t", "b", "k")
    (alert,) = sink.alerts
    assert alert.kind is AlertKind.MODEL_DRIFT and alert.severity is Severity.WARNING
    assert (alert.title, alert.body, alert.user_id, alert.key) == ("t", "b", 7, "k")


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError, match="psi_warn"):
        DriftThresholds(psi_warn=0.3, psi_alert=0.2)
    with pytest.raises(ValueError, match="min_samples"):
        DriftThresholds(min_samples=500, window=100)
