"""Nested hyperparameter search: seeded and reproducible, counts every configuration, picks the
best inner-CV score, and only ever sees the training rows of the outer fold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantdesk.ml.cv import PurgedWalkForward
from quantdesk.ml.evaluation import walk_forward_predict
from quantdesk.ml.search import NestedSearch, SearchResult, default_space, search_hyperparameters

FAST = {"n_jobs": 1, "seed": 0}


def ar1(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    r = np.zeros(n + 1)
    e = rng.normal(size=n + 1)
    for t in range(1, n + 1):
        r[t] = 0.35 * r[t - 1] + e[t]
    X = pd.DataFrame({"r0": r[:-1], "noise": rng.normal(size=n)})
    t0 = np.arange(n)
    return X, (r[1:] > 0).astype(float), t0, t0 + 1


def small_space(trial):
    return {
        "n_estimators": trial.suggest_int("n_estimators", 10, 60, step=10),
        "max_depth": trial.suggest_int("max_depth", 1, 4),
        "learning_rate": trial.suggest_float("learning_rate", 0.03, 0.3, log=True),
    }


def run(seed: int, **kwargs) -> SearchResult:
    X, y, t0, t1 = ar1(800, seed=1)
    options = {"space": small_space, "n_trials": 4, "base_params": FAST, "seed": seed}
    return search_hyperparameters("xgboost", "classifier", X, y, t0, t1, **(options | kwargs))


def test_the_same_seed_gives_the_same_search_and_another_seed_another():
    a, b, c = run(seed=11), run(seed=11), run(seed=12)
    assert a == b
    assert [t["params"] for t in a.trials] != [t["params"] for t in c.trials]


def test_every_configuration_is_counted_and_the_best_one_is_returned():
    result = run(seed=3, metric="auc")
    assert result.n_trials == 4 == len(result.trials)
    values = [t["value"] for t in result.trials]
    assert result.best_value == max(values)
    best = result.trials[int(np.argmax(values))]["params"]
    assert result.best_params == FAST | best
    low = run(seed=3, metric="log_loss")
    assert low.best_value == min(t["value"] for t in low.trials)


def test_the_search_sees_only_the_training_rows_of_each_outer_fold():
    X, y, t0, t1 = ar1(2400, seed=2)
    seen = []

    class Recording(NestedSearch):
        def __call__(self, train_idx):
            seen.append(train_idx)
            return super().__call__(train_idx)

    tuner = Recording(
        "xgboost",
        "classifier",
        X,
        y,
        t0,
        t1,
        options={"space": small_space, "n_trials": 2, "base_params": FAST, "inner_splits": 2},
    )
    oos = walk_forward_predict(
        "xgboost", "classifier", X, y, t0, t1, PurgedWalkForward(2, embargo=0), tune=tuner
    )
    assert oos.n_configurations == 4
    for rows, test in zip(seen, oos.folds, strict=True):
        assert not np.intersect1d(rows, test).size
        assert (t1[rows] < t0[test].min()).all()


def test_a_training_set_too_small_for_the_inner_split_fails_before_any_trial():
    X, y, t0, t1 = ar1(3, seed=0)
    with pytest.raises(ValueError, match="too few samples for 3 folds"):
        search_hyperparameters("xgboost", "classifier", X, y, t0, t1, n_trials=2)


def test_bad_search_requests_are_refused():
    X, y, t0, t1 = ar1(100, seed=0)
    with pytest.raises(ValueError, match="unknown metric"):
        search_hyperparameters("xgboost", "classifier", X, y, t0, t1, metric="sharpe")
    with pytest.raises(ValueError, match="n_trials"):
        search_hyperparameters("xgboost", "classifier", X, y, t0, t1, n_trials=0)
    with pytest.raises(ValueError, match="no default search space"):
        default_space("forest")


def test_default_spaces_build_valid_models():
    import optuna

    from quantdesk.ml.models import make_model

    for name in ("xgboost", "lstm"):
        trial = optuna.trial.FixedTrial(
            {
                "n_estimators": 100,
                "max_depth": 3,
                "learning_rate": 0.01,
                "min_child_weight": 1.0,
                "subsample": 0.8,
                "colsample_bytree": 0.8,
                "reg_lambda": 1.0,
                "window": 8,
                "hidden_size": 16,
                "weight_decay": 1e-4,
            }
        )
        assert make_model(name, **default_space(name)(trial)).params
