"""LSTMModel: windows that never cross symbols, train-only standardisation, determinism without
side effects on torch's global state, save/load, and learning a simple sequence signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from quantdesk.ml.models import LSTMModel, Model
from quantdesk.ml.models.lstm import sequence_index

SMALL = {"window": 4, "hidden_size": 8, "max_epochs": 5, "batch_size": 128}


def test_sequence_windows_stay_inside_their_group_in_time_order():
    codes = np.array([0, 1, 0, 1, 0, 1, 0])
    times = np.array([0, 0, 1, 1, 2, 2, 3])
    seq = sequence_index(codes, times, 3)
    pad = len(codes)
    np.testing.assert_array_equal(seq[0], [pad, pad, 0])
    np.testing.assert_array_equal(seq[4], [0, 2, 4])
    np.testing.assert_array_equal(seq[6], [2, 4, 6])
    np.testing.assert_array_equal(seq[5], [1, 3, 5])
    # Unsorted rows: the window follows time, not row order.
    seq = sequence_index(np.zeros(4, dtype=int), np.array([3, 1, 0, 2]), 2)
    np.testing.assert_array_equal(seq, [[3, 0], [2, 1], [4, 2], [1, 3]])


def panel(n_times: int, symbols: list[str], seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """AR(1) returns per symbol; the feature is the return, the label the sign of the next."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01", periods=n_times, freq="5min", tz="UTC")
    frames, labels = [], []
    for s in symbols:
        r = np.zeros(n_times + 1)
        e = rng.normal(size=n_times + 1)
        for t in range(1, n_times + 1):
            r[t] = 0.35 * r[t - 1] + e[t]
        idx = pd.MultiIndex.from_arrays([times, [s] * n_times], names=["timestamp", "symbol"])
        frames.append(pd.DataFrame({"ret": r[:-1], "vol": np.abs(r[:-1])}, index=idx))
        labels.append((r[1:] > 0).astype(float))
    X = pd.concat(frames)
    y = np.concatenate(labels)
    order = np.lexsort((X.index.get_level_values("symbol"), X.index.get_level_values(0)))
    return X.iloc[order], y[order]


def test_predictions_for_one_symbol_ignore_the_other_symbols():
    X, y = panel(300, ["AAA", "BBB"], seed=1)
    model = LSTMModel(**SMALL).fit(X, y)
    before = model.predict(X)
    changed = X.copy()
    is_b = changed.index.get_level_values("symbol") == "BBB"
    changed.loc[is_b, "ret"] = 50.0
    after = model.predict(changed)
    np.testing.assert_array_equal(before[~is_b], after[~is_b])
    assert not np.allclose(before[is_b], after[is_b])


def test_groups_argument_gives_the_same_sequences_as_a_symbol_level():
    X, y = panel(200, ["AAA", "BBB"], seed=2)
    params = {**SMALL, "validation_fraction": 0.0}
    by_index = LSTMModel(**params).fit(X, y).predict(X)
    groups = X.index.get_level_values("symbol").to_numpy()
    plain = X.to_numpy()
    by_groups = LSTMModel(**params).fit(plain, y, groups=groups).predict(plain, groups=groups)
    np.testing.assert_array_equal(by_index, by_groups)


def test_a_multiindex_without_a_symbol_level_is_refused():
    X, y = panel(50, ["AAA"], seed=3)
    with pytest.raises(ValueError, match="'symbol' level"):
        LSTMModel(**SMALL).fit(X.rename_axis(["timestamp", "ticker"]), y)


def test_features_are_standardised_with_training_statistics_only():
    rng = np.random.default_rng(4)
    X = rng.normal(5.0, 2.0, size=(400, 2))
    y = rng.integers(0, 2, 400)
    model = LSTMModel(**{**SMALL, "validation_fraction": 0.25}).fit(X, y)
    np.testing.assert_allclose(model.mean, X[:300].mean(axis=0))
    np.testing.assert_allclose(model.std, X[:300].std(axis=0))


def test_fit_is_deterministic_and_leaves_torch_global_state_alone():
    X, y = panel(300, ["AAA", "BBB"], seed=5)
    torch.manual_seed(123)
    rng_state = torch.get_rng_state()
    threads = torch.get_num_threads()
    flag = torch.are_deterministic_algorithms_enabled()
    a = LSTMModel(**SMALL, seed=7).fit(X, y).predict(X)
    b = LSTMModel(**SMALL, seed=7).fit(X, y).predict(X)
    c = LSTMModel(**SMALL, seed=8).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == flag


def test_save_and_load_round_trip_gives_identical_predictions(tmp_path):
    X, y = panel(300, ["AAA", "BBB"], seed=6)
    model = LSTMModel(**SMALL).fit(X, y)
    loaded = Model.load(model.save(tmp_path / "lstm"))
    assert isinstance(loaded, LSTMModel)
    assert loaded.params == model.params and loaded.feature_names == ["ret", "vol"]
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_early_stopping_on_an_eval_set_and_a_regressor_on_the_target_scale():
    X, y = panel(400, ["AAA"], seed=7)
    value = np.where(y > 0, 0.002, -0.002) + X["ret"].to_numpy() * 1e-4
    model = LSTMModel("regressor", **{**SMALL, "max_epochs": 40, "patience": 2})
    model.fit(X.iloc[:300], value[:300], eval_set=(X.iloc[300:], value[300:]))
    assert model.epochs_run < 40
    pred = model.predict(X)
    assert np.abs(pred).max() < 0.01  # back on the target's scale, not standardised units
    assert np.corrcoef(pred[300:], value[300:])[0, 1] > 0.2
