"""ML training speed: a 5-fold purged walk-forward of XGBoost on one year of 5-minute bars of 50
symbols (~940k rows), and an LSTM fit on a small set.

Run: python bench/bench_ml_train.py [--symbols 50] [--days 250] [--n-jobs 2] [--trees 200]
                                    [--early-stopping] [--lstm-threads 1]

Synthetic bars: per symbol, returns with a weak AR(1) term and a volatility that drifts between
regimes, on a shared grid of 75 bars a session. Features are vectorised numpy over the (symbol,
bar) grid: lagged returns, multi-bar returns, rolling and EWM volatility, distance from a moving
mean, bar of the session. Labels: triple barrier (1.5 sigma, 12 bars, sigma = EWM std span 100),
weights: average uniqueness. All ``--trees`` trees are grown by default (the worst case);
``--early-stopping`` stops on a purged tail of each training set instead.

Target (issue 11): the walk-forward <= 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import time

# OpenMP threads that spin while waiting make XGBoost many times slower whenever the cores are
# shared (CI runners, pytest-xdist, a second job): measured 0.7 s -> 7.8 s for 2 threads on a
# busy 2-core box. It must be set before xgboost loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from quantdesk.ml.cv import PurgedWalkForward
from quantdesk.ml.evaluation import evaluate_oos, walk_forward_predict
from quantdesk.ml.labels import ewm_volatility, triple_barrier, uniqueness_weights
from quantdesk.ml.models import LSTMModel

BARS_PER_DAY = 75


def synthetic_returns(n_symbols: int, n_bars: int, seed: int) -> np.ndarray:
    """(symbols, bars) log returns: AR(1) phi=0.04, volatility regimes per symbol."""
    rng = np.random.default_rng(seed)
    regime = np.repeat(rng.choice([0.6, 1.0, 1.8], size=(n_symbols, n_bars // 750 + 1)), 750, 1)
    vol = 0.0015 * regime[:, :n_bars]
    noise = rng.normal(size=(n_symbols, n_bars)) * vol
    return np.asarray(lfilter([1.0], [1.0, -0.04], noise, axis=1))


def rolling_sum(x: np.ndarray, w: int) -> np.ndarray:
    c = np.cumsum(np.nan_to_num(x), axis=1)
    out = np.full_like(x, np.nan)
    out[:, w - 1 :] = c[:, w - 1 :] - np.c_[np.zeros((x.shape[0], 1)), c[:, :-w]]
    return out


def lag(x: np.ndarray, k: int) -> np.ndarray:
    return np.c_[np.full((x.shape[0], k), np.nan), x[:, :-k]]


def features(r: np.ndarray, close: np.ndarray) -> dict[str, np.ndarray]:
    """Each feature a (symbols, bars) array known at the bar's close."""
    log_close = np.log(close)
    ewm = pd.DataFrame(r.T).ewm(span=100, min_periods=20).std().to_numpy().T  # per symbol
    return {
        "ret_0": r,
        "ret_1": lag(r, 1),
        "ret_2": lag(r, 2),
        "ret_6": log_close - lag(log_close, 6),
        "ret_12": log_close - lag(log_close, 12),
        "ret_36": log_close - lag(log_close, 36),
        "vol_24": np.sqrt(rolling_sum(r**2, 24) / 24),
        "ewm_vol_100": ewm,
        "dist_48": log_close - np.log(rolling_sum(close, 48) / 48),
        "bar_of_day": np.broadcast_to(np.arange(r.shape[1]) % BARS_PER_DAY, r.shape) * 1.0,
    }


def build(n_symbols: int, n_bars: int, seed: int) -> tuple[pd.DataFrame, list[str], float, float]:
    """Labelled rows sorted by (bar, symbol); the feature names; seconds for features, labels."""
    t = time.perf_counter()
    r = synthetic_returns(n_symbols, n_bars, seed)
    close = 100.0 * np.exp(np.cumsum(r, axis=1))
    feats = features(r, close)
    t_feat = time.perf_counter() - t
    t = time.perf_counter()
    label = np.full((n_symbols, n_bars), np.nan)
    t1 = np.full((n_symbols, n_bars), -1)
    weight = np.zeros((n_symbols, n_bars))
    ret = np.full((n_symbols, n_bars), np.nan)
    for s in range(n_symbols):
        tb = triple_barrier(close[s], ewm_volatility(close[s], 100), 1.5, 1.5, 12)
        ok = tb.valid
        label[s], t1[s], ret[s] = tb.label, tb.t1, tb.ret
        weight[s, ok] = uniqueness_weights(np.flatnonzero(ok), tb.t1[ok], n_bars)
    t_label = time.perf_counter() - t
    symbol = np.repeat(np.arange(n_symbols), n_bars)
    frame = pd.DataFrame({k: v.ravel() for k, v in feats.items()})
    frame = frame.assign(
        label=label.ravel(),
        t0=np.tile(np.arange(n_bars), n_symbols),
        t1=t1.ravel(),
        weight=weight.ravel(),
        ret=ret.ravel(),
        symbol=symbol,
    )
    keep = frame["t1"].ge(0) & frame["label"].ne(0) & frame[list(feats)].notna().all(axis=1)
    frame = frame[keep].sort_values(["t0", "symbol"], kind="stable").reset_index(drop=True)
    return frame, list(feats), t_feat, t_label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--days", type=int, default=250)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--lstm-threads", type=int, default=1)
    parser.add_argument(
        "--early-stopping",
        action="store_true",
        help="stop on a purged 10%% tail of each training set (default: all trees, the worst case)",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    n_bars = args.days * BARS_PER_DAY
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )

    frame, names, t_feat, t_label = build(args.symbols, n_bars, args.seed)
    print(
        f"data: {args.symbols} symbols x {n_bars} bars = {args.symbols * n_bars:,} bars, "
        f"{len(frame):,} labelled rows x {len(names)} features; "
        f"features {t_feat:.2f}s, triple barrier + weights {t_label:.2f}s"
    )
    params = {
        "n_estimators": args.trees,
        "learning_rate": 0.1,
        "max_depth": 5,
        "early_stopping_rounds": 20,
        "n_jobs": args.n_jobs,
    }
    cv = PurgedWalkForward(args.folds, "expanding", embargo=0.01)
    started = time.perf_counter()
    oos = walk_forward_predict(
        "xgboost",
        "classifier",
        frame[names],
        frame["label"].to_numpy(),
        frame["t0"].to_numpy(),
        frame["t1"].to_numpy(),
        cv,
        params=params,
        sample_weight=frame["weight"].to_numpy(),
        early_stopping=0.1 if args.early_stopping else 0.0,
        keep_models=True,
    )
    wall = time.perf_counter() - started
    report = evaluate_oos(
        "classifier", frame["label"].to_numpy(), oos.pred, oos.folds, frame["ret"].to_numpy()
    )
    print(f"\n{'fold':>4}{'train rows':>12}{'test rows':>11}{'trees':>7}{'fit s':>8}{'AUC':>8}")
    for k, (test, seconds) in enumerate(zip(oos.folds, oos.fit_seconds, strict=True)):
        model = oos.models[k]
        best = getattr(model, "best_iteration", None)
        trees = args.trees if best is None else best + 1
        n_train = int((frame["t1"].to_numpy() < frame["t0"].to_numpy()[test].min()).sum())
        print(
            f"{k:>4}{n_train:>12,}{len(test):>11,}{trees:>7}{seconds:>8.2f}"
            f"{report['folds'][k]['auc']:>8.4f}"
        )
    overall = report["overall"]
    print(
        f"\nXGBoost walk-forward ({args.folds} folds, n_jobs={args.n_jobs}): {wall:.1f}s wall, "
        f"{wall / args.folds:.1f}s per fold (target <= 120s); pooled OOS AUC "
        f"{overall['auc']:.4f} +- {overall['auc_se']:.4f}"
    )

    small = frame[frame["symbol"] < 5].iloc[:10_000]
    lstm = LSTMModel(window=16, hidden_size=16, max_epochs=10, n_threads=args.lstm_threads)
    started = time.perf_counter()
    lstm.fit(small[names], small["label"].to_numpy(), groups=small["symbol"].to_numpy())
    print(
        f"LSTM fit: {len(small):,} rows x {len(names)} features, window 16, "
        f"{lstm.epochs_run} epochs, {args.lstm_threads} thread(s): "
        f"{time.perf_counter() - started:.1f}s"
    )


if __name__ == "__main__":
    main()
