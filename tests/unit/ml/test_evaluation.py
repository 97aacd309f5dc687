"""Evaluation: metrics against reference implementations, calibration bins, walk-forward
predictions that never fit on test rows, importance, SHAP consistency and PNG plots."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics

from quantdesk.ml.cv import PurgedWalkForward
from quantdesk.ml.evaluation import (
    auc_standard_error,
    calibration,
    classification_metrics,
    evaluate_oos,
    feature_importance,
    information_coefficient,
    plot_calibration,
    plot_feature_importance,
    regression_metrics,
    shap_importance,
    walk_forward_predict,
)
from quantdesk.ml.models import LSTMModel, XGBoostModel

PNG = b"\x89PNG\r\n\x1a\n"


def scores(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ret = rng.normal(size=n)
    prob = 1.0 / (1.0 + np.exp(-(ret + rng.normal(size=n))))
    return (ret > 0).astype(float), prob, ret


def test_auc_standard_error_follows_the_null_formula():
    assert auc_standard_error(10_000, 10_000) == pytest.approx(math.sqrt(20_000 / 12 / 1e8))
    assert 0.002 < auc_standard_error(20_000, 20_000) < 0.004
    assert math.isnan(auc_standard_error(0, 10))


def test_classification_metrics_match_sklearn():
    y, p, _ = scores()
    m = classification_metrics(y, p)
    assert m["auc"] == pytest.approx(metrics.roc_auc_score(y, p))
    assert m["log_loss"] == pytest.approx(metrics.log_loss(y, p))
    assert m["accuracy"] == pytest.approx(metrics.accuracy_score(y, p > 0.5))
    assert m["brier"] == pytest.approx(metrics.brier_score_loss(y, p))
    assert (m["n"], m["n_pos"]) == (2000, int(y.sum()))
    assert m["auc_se"] == pytest.approx(auc_standard_error(int(y.sum()), int(2000 - y.sum())))
    assert all(isinstance(v, int | float) for v in m.values())


def test_metrics_skip_missing_rows_and_a_one_class_auc_is_nan():
    y, p, _ = scores(100)
    p = p.copy()
    p[:10] = np.nan
    assert classification_metrics(y, p)["n"] == 90
    assert math.isnan(classification_metrics(np.ones(5), np.full(5, 0.3))["auc"])


def test_information_coefficients_match_scipy():
    _, p, ret = scores()
    ic = information_coefficient(p, ret)
    assert ic["ic"] == pytest.approx(stats.pearsonr(p, ret)[0])
    assert ic["rank_ic"] == pytest.approx(stats.spearmanr(p, ret)[0])
    reg = regression_metrics(ret, 0.5 * ret)
    assert reg["ic"] == pytest.approx(1.0) and reg["hit_rate"] == 1.0
    assert math.isnan(information_coefficient(np.ones(10), ret[:10])["ic"])


def test_calibration_bins_of_a_calibrated_and_an_overconfident_model():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=50_000)
    y = (rng.uniform(size=50_000) < p).astype(float)
    good = calibration(y, p, n_bins=10)
    assert sum(b["count"] for b in good["bins"]) == 50_000
    assert good["ece"] < 0.01
    for b in good["bins"]:
        assert b["lower"] <= b["mean_predicted"] <= b["upper"]
        assert b["observed_rate"] == pytest.approx(b["mean_predicted"], abs=0.03)
    overconfident = calibration(y, np.clip(2 * p - 0.5, 0, 1), n_bins=10)
    assert overconfident["ece"] > 0.1
    quantile = calibration(y, p, n_bins=5, strategy="quantile")
    counts = [b["count"] for b in quantile["bins"]]
    assert max(counts) - min(counts) <= 1
    assert good["brier"] == pytest.approx(metrics.brier_score_loss(y, p))


def test_evaluate_oos_reports_each_fold_and_the_pooled_rows():
    y, p, ret = scores(900)
    folds = [np.arange(300, 600), np.arange(600, 900)]
    report = evaluate_oos("classifier", y, p, folds, forward_return=ret)
    assert [f["n"] for f in report["folds"]] == [300, 300]
    assert report["overall"]["n"] == 600
    assert report["overall"]["auc"] == pytest.approx(metrics.roc_auc_score(y[300:], p[300:]))
    assert report["folds"][1]["ic_return"] == pytest.approx(
        information_coefficient(p[600:], ret[600:])["ic"]
    )
    aucs = [f["auc"] for f in report["folds"]]
    assert report["auc_fold_mean"] == pytest.approx(np.mean(aucs))
    assert report["auc_fold_std"] == pytest.approx(np.std(aucs, ddof=1))


def ar1_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    r = np.zeros(n + 1)
    e = rng.normal(size=n + 1)
    for t in range(1, n + 1):
        r[t] = 0.35 * r[t - 1] + e[t]
    X = pd.DataFrame({"r0": r[:-1], "r1": np.r_[0.0, r[:-2]], "noise": rng.normal(size=n)})
    return X, (r[1:] > 0).astype(float)


class SpyTuner:
    """Records the rows a nested search is given and proposes a fixed configuration."""

    def __init__(self) -> None:
        self.seen = []

    def __call__(self, train_idx):
        self.seen.append(train_idx)

        class Found:
            best_params = {"max_depth": 2}
            n_trials = 3

        return Found()


def test_walk_forward_predict_fits_each_fold_on_its_purged_past_only():
    X, y = ar1_frame(3000, seed=2)
    t0 = np.arange(3000)
    t1 = t0 + 1
    cv = PurgedWalkForward(4, embargo=0)
    tuner = SpyTuner()
    oos = walk_forward_predict(
        "xgboost",
        "classifier",
        X,
        y,
        t0,
        t1,
        cv,
        params={"n_estimators": 30},
        tune=tuner,
        keep_models=True,
    )
    tested = np.concatenate(oos.folds)
    assert np.isnan(np.delete(oos.pred, tested)).all()
    assert np.isfinite(oos.pred[tested]).all()
    np.testing.assert_array_equal(oos.fold[oos.folds[2]], 2)
    assert oos.n_configurations == 12
    assert all(p == {"n_estimators": 30, "max_depth": 2} for p in oos.params)
    for seen, test in zip(tuner.seen, oos.folds, strict=True):
        assert (t1[seen] < t0[test].min()).all()
    # Early stopping used a purged tail of the training rows, never the test fold.
    assert all(m.best_iteration is not None for m in oos.models)
    report = evaluate_oos("classifier", y, oos.pred, oos.folds)
    assert report["overall"]["auc"] > 0.6


def test_walk_forward_predict_gives_sequence_models_their_history():
    X, y = ar1_frame(1200, seed=3)
    t0 = np.arange(1200)
    params = {"window": 4, "hidden_size": 8, "max_epochs": 3}
    oos = walk_forward_predict(
        "lstm",
        "classifier",
        X,
        y,
        t0,
        t0 + 1,
        PurgedWalkForward(2, embargo=0),
        params=params,
        keep_models=True,
    )
    last = oos.models[-1]
    assert isinstance(last, LSTMModel)
    test = oos.folds[-1]
    np.testing.assert_array_equal(oos.pred[test], last.predict(X)[test])


def test_importance_and_shap_find_the_informative_feature():
    X, y = ar1_frame(3000, seed=4)
    model = XGBoostModel(n_estimators=60, max_depth=3).fit(X, y)
    gain = feature_importance(model)
    assert sum(gain.values()) == pytest.approx(1.0)
    assert max(gain, key=gain.__getitem__) == "r0"
    shap = shap_importance(model, X, max_rows=1000)
    assert set(shap) == {"r0", "r1", "noise"}
    assert shap["r0"] > 3 * shap["noise"]
    # SHAP values plus the bias add up to the margin of each prediction.
    contrib = model.booster_predict(model._dmatrix(X[:50]), pred_contribs=True)
    margin = model.booster_predict(model._dmatrix(X[:50]), output_margin=True)
    np.testing.assert_allclose(contrib.sum(axis=1), margin, rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match="XGBoostModel"):
        feature_importance(LSTMModel())


def test_plots_write_png_files(tmp_path):
    y, p, _ = scores()
    bar = plot_feature_importance({"a": 0.5, "b": 0.3, "c": 0.2}, tmp_path / "imp.png")
    curve = plot_calibration(calibration(y, p), tmp_path / "sub" / "calib.png")
    for path in (bar, curve):
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 2000
