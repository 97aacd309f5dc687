"""Honesty checks of the whole model + purged walk-forward pipeline (ml-validation.md):

* on i.i.d. returns nothing is predictable: out-of-sample AUC within 4 standard errors of 0.5;
* on AR(1) returns the sign of the next return IS predictable, up to ``0.5 + asin(phi) / pi``:
  the pipeline must get close to that bound, and never above it (above it is leakage);
* a feature that reads the future is caught by the same band;
* both models are deterministic and round-trip through save/load.

Features (lagged returns, known at the bar's close) and labels (sign of the next bar's return,
span [t, t+1]) are built here from scratch, on a panel of symbols sharing timestamps.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from quantdesk.ml.cv import PurgedWalkForward
from quantdesk.ml.evaluation import evaluate_oos, walk_forward_predict
from quantdesk.ml.models import Model, make_model

PHI = 0.35
BEST_ACCURACY = 0.5 + math.asin(PHI) / math.pi  # ~0.614
XGB = {"n_estimators": 150, "max_depth": 3, "learning_rate": 0.1, "early_stopping_rounds": 20}
LSTM = {"window": 8, "hidden_size": 8, "max_epochs": 15, "patience": 3, "batch_size": 128}


def returns(n: int, phi: float, rng: np.random.Generator) -> np.ndarray:
    e = rng.normal(0.0, 0.01, n)
    if phi == 0.0:
        return e
    r = np.empty(n)
    r[0] = e[0]
    for t in range(1, n):
        r[t] = phi * r[t - 1] + e[t]
    return r


def lagged_panel(
    n_symbols: int, n_bars: int, phi: float, seed: int, lags: int = 4
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Per symbol: features ``ret_lag{k}`` = r[t-k] (k = 0 is the bar's own return), label =
    1 if r[t+1] > 0; the last bar (no next return) and the first ``lags`` bars are dropped.
    Rows are sorted by (time, symbol); returns X, y, the next return, the time positions."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01 03:45", periods=n_bars, freq="5min", tz="UTC")
    frames = []
    for s in range(n_symbols):
        r = returns(n_bars, phi, rng)
        cols = {f"ret_lag{k}": np.r_[np.full(k, np.nan), r[: n_bars - k]] for k in range(lags)}
        frame = pd.DataFrame(cols | {"next": np.r_[r[1:], np.nan], "t": np.arange(n_bars)})
        frame.index = pd.MultiIndex.from_arrays(
            [times, [f"S{s:02d}"] * n_bars], names=["timestamp", "symbol"]
        )
        frames.append(frame.iloc[lags - 1 : -1])
    panel = pd.concat(frames).sort_index(level=["timestamp", "symbol"])
    X = panel[[f"ret_lag{k}" for k in range(lags)]]
    return X, (panel["next"] > 0).to_numpy(float), panel["next"].to_numpy(), panel["t"].to_numpy()


def oos_report(model: str, params: dict, X, y, ret, t, n_splits: int = 5) -> dict:
    cv = PurgedWalkForward(n_splits, "expanding", embargo=0.01)
    oos = walk_forward_predict(model, "classifier", X, y, t, t + 1, cv, params=params)
    return evaluate_oos("classifier", y, oos.pred, oos.folds, forward_return=ret) | {
        "fit_seconds": oos.fit_seconds
    }


def test_on_a_random_walk_out_of_sample_auc_is_noise():
    X, y, ret, t = lagged_panel(n_symbols=10, n_bars=3000, phi=0.0, seed=11)
    report = oos_report("xgboost", XGB, X, y, ret, t)
    overall = report["overall"]
    assert overall["n"] > 20_000
    assert abs(overall["auc"] - 0.5) < 4 * overall["auc_se"], overall
    assert overall["auc_se"] < 0.004
    for fold in report["folds"]:
        assert abs(fold["auc"] - 0.5) < 4 * fold["auc_se"], fold
    assert abs(overall["rank_ic_return"]) < 4 / math.sqrt(overall["n"])


def test_on_ar1_returns_the_sign_is_recovered_up_to_the_theoretical_bound():
    X, y, ret, t = lagged_panel(n_symbols=8, n_bars=3000, phi=PHI, seed=12)
    overall = oos_report("xgboost", XGB, X, y, ret, t)["overall"]
    accuracy_se = math.sqrt(BEST_ACCURACY * (1 - BEST_ACCURACY) / overall["n"])
    assert overall["auc"] > 0.6
    assert overall["accuracy"] > BEST_ACCURACY - 0.025, overall
    # Beating the best achievable accuracy would mean the features see the label.
    assert overall["accuracy"] < BEST_ACCURACY + 4 * accuracy_se, overall


def test_a_feature_that_reads_the_future_falls_outside_the_noise_band():
    X, y, ret, t = lagged_panel(n_symbols=4, n_bars=2500, phi=0.0, seed=13)
    leaky = X.assign(peek=ret + np.random.default_rng(0).normal(0, 0.02, len(ret)))
    overall = oos_report("xgboost", XGB, leaky, y, ret, t, n_splits=3)["overall"]
    assert abs(overall["auc"] - 0.5) > 10 * overall["auc_se"]


def test_lstm_on_small_ar1_data_trains_in_seconds_and_finds_the_signal():
    X, y, ret, t = lagged_panel(n_symbols=2, n_bars=2500, phi=PHI, seed=14, lags=1)
    started = time.perf_counter()
    report = oos_report("lstm", LSTM, X, y, ret, t, n_splits=2)
    assert time.perf_counter() - started < 30
    assert max(report["fit_seconds"]) < 10, report["fit_seconds"]
    assert report["overall"]["auc"] > 0.55, report["overall"]
    assert report["overall"]["ic_return"] > 0.1


@pytest.mark.parametrize(("name", "params"), [("xgboost", XGB), ("lstm", LSTM)])
def test_models_are_deterministic_and_round_trip_through_save_and_load(name, params, tmp_path):
    X, y, _, _ = lagged_panel(n_symbols=2, n_bars=1500, phi=PHI, seed=15, lags=2)
    fit, rest = slice(0, 2000), slice(2000, None)
    first = make_model(name, "classifier", **params, seed=3).fit(X.iloc[fit], y[fit])
    second = make_model(name, "classifier", **params, seed=3).fit(X.iloc[fit], y[fit])
    np.testing.assert_array_equal(first.predict(X), second.predict(X))
    loaded = Model.load(first.save(tmp_path / name))
    np.testing.assert_array_equal(loaded.predict(X), first.predict(X))
    assert np.isfinite(loaded.predict(X.iloc[rest])).all()
