"""XGBoostModel: learns what is there, early-stops on an eval set, is deterministic, matches
columns by name, and round-trips through save/load with identical predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from quantdesk.ml.models import Model, XGBoostModel


def data(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["signal", "noise", "other"])
    value = 0.8 * X["signal"].to_numpy() + rng.normal(size=n)
    return X, (value > 0).astype(float), value


def test_classifier_learns_the_signal_and_returns_probabilities():
    X, y, _ = data()
    model = XGBoostModel(n_estimators=50, max_depth=2).fit(X[:2000], y[:2000])
    p = model.predict(X[2000:])
    assert p.shape == (1000,) and ((p >= 0) & (p <= 1)).all()
    hit = np.mean((p > 0.5) == (y[2000:] > 0))
    assert hit > 0.68
    gain = model.importance("total_gain")
    assert max(gain, key=gain.__getitem__) == "signal"


def test_classifier_treats_minus_one_zero_labels_as_negative():
    X, y, _ = data(800)
    signed = np.where(y > 0, 1.0, -1.0)
    a = XGBoostModel(n_estimators=20).fit(X, y).predict(X)
    b = XGBoostModel(n_estimators=20).fit(X, signed).predict(X)
    np.testing.assert_array_equal(a, b)


def test_regressor_predicts_values():
    X, _, value = data()
    model = XGBoostModel("regressor", n_estimators=80, max_depth=2).fit(X[:2000], value[:2000])
    pred = model.predict(X[2000:])
    assert np.corrcoef(pred, value[2000:])[0, 1] > 0.5


def test_early_stopping_keeps_the_best_iteration_on_the_eval_set():
    X, y, _ = data(3000, seed=3)
    model = XGBoostModel(n_estimators=500, learning_rate=0.3, early_stopping_rounds=10)
    model.fit(X[:2000], y[:2000], eval_set=(X[2000:], y[2000:]))
    assert model.best_iteration is not None
    assert model.best_iteration < 100
    full = model.booster.predict(model._dmatrix(X[:5]))
    assert not np.allclose(full, model.predict(X[:5])), "predict must stop at the best tree"


def test_sample_weights_matter_and_are_validated():
    X, y, _ = data(1000)
    w = np.where(X["noise"] > 0, 5.0, 0.1)
    a = XGBoostModel(n_estimators=20).fit(X, y).predict(X)
    b = XGBoostModel(n_estimators=20).fit(X, y, sample_weight=w).predict(X)
    assert not np.array_equal(a, b)
    with pytest.raises(ValueError, match="sample_weight must be finite and >= 0"):
        XGBoostModel().fit(X, y, sample_weight=-w)
    with pytest.raises(ValueError, match="y has 999"):
        XGBoostModel().fit(X, y[:-1])
    with pytest.raises(ValueError, match="NaN"):
        XGBoostModel().fit(X, np.where(y > 0, np.nan, 0.0))


def test_two_fits_with_the_same_seed_are_identical_and_the_seed_matters():
    X, y, _ = data(1000)
    params = {"n_estimators": 20, "subsample": 0.7, "colsample_bytree": 0.7, "n_jobs": 2}
    a = XGBoostModel(seed=1, **params).fit(X, y).predict(X)
    b = XGBoostModel(seed=1, **params).fit(X, y).predict(X)
    c = XGBoostModel(seed=2, **params).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_columns_are_matched_by_name_at_predict_time():
    X, y, _ = data(500)
    model = XGBoostModel(n_estimators=10).fit(X, y)
    np.testing.assert_array_equal(model.predict(X[["other", "signal", "noise"]]), model.predict(X))
    with pytest.raises(ValueError, match="lacks the fitted features"):
        model.predict(X[["signal", "noise"]])
    with pytest.raises(ValueError, match="X has 2 features"):
        model.predict(X[["signal", "noise"]].to_numpy())


def test_missing_values_are_allowed_in_features():
    X, y, _ = data(500)
    X.loc[X.index[::7], "noise"] = np.nan
    p = XGBoostModel(n_estimators=10).fit(X, y).predict(X)
    assert np.isfinite(p).all()


def test_save_and_load_round_trip_gives_identical_predictions(tmp_path):
    X, y, _ = data(2000)
    model = XGBoostModel(n_estimators=300, learning_rate=0.3, early_stopping_rounds=5, seed=4)
    model.fit(X[:1500], y[:1500], eval_set=(X[1500:], y[1500:]))
    path = model.save(tmp_path / "xgb")
    meta = json.loads((path / "model.json").read_text())
    assert meta["model"] == "xgboost" and meta["feature_names"] == list(X.columns)
    loaded = Model.load(path)
    assert isinstance(loaded, XGBoostModel)
    assert loaded.best_iteration == model.best_iteration
    assert loaded.params == model.params
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
