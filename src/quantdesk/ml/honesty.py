"""The pipeline's honesty checks (``quantdesk ml check`` and the tests).

(a) On a seeded random walk the whole pipeline (features, labels, purged walk-forward, the
    signal backtest net of costs) must find nothing: out-of-sample AUC within four standard
    errors of 0.5, and a net Sharpe ratio no better than noise (three standard errors of a
    Sharpe estimate over the test period, ~ 3 / sqrt(years)).
(b) On bars whose daily returns follow an AR(1) with phi = 0.35 (the sign of the next return is
    predictable from the last one) it must find the pattern: AUC above 0.5 by more than four
    standard errors (the best achievable accuracy is ~0.61).
(c) A feature that reads the next bar must be refused by the look-ahead guard.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantdesk.market.calendars import get_calendar
from quantdesk.market.store import BarStore
from quantdesk.ml.dataset import LabelSpec
from quantdesk.ml.features import (
    Feature,
    FeatureSet,
    LookAheadError,
    assert_no_lookahead,
    default_feature_set,
)
from quantdesk.ml.pipeline import TrainRequest, train
from quantdesk.ml.tracking import Tracker

__all__ = ["run_checks", "synthetic_daily"]

SYMBOLS = ["NSE:HONA", "NSE:HONB", "NSE:HONC", "NSE:HOND"]


def synthetic_daily(
    symbol: str, start: date, end: date, *, phi: float, seed: int, sigma: float = 0.015
) -> pd.DataFrame:
    """Daily bars on NSE sessions (stamped at the open) whose close-to-close returns are AR(1)
    with ``phi`` (0: a random walk); open at the previous close, high/low around the path."""
    rng = np.random.default_rng(seed)
    opens = get_calendar("NSE").sessions_frame(start, end)["open"]
    n = len(opens)
    shocks = rng.normal(0.0, sigma, n)
    r = np.empty(n)
    r[0] = shocks[0]
    for t in range(1, n):
        r[t] = phi * r[t - 1] + shocks[t]
    close = 100.0 * np.exp(np.cumsum(r))
    prev = np.r_[100.0, close[:-1]]
    spread = np.abs(rng.normal(0.0, sigma / 3, n)) * close
    high = np.maximum(prev, close) + spread
    low = np.minimum(prev, close) - spread
    return pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(opens).tz_convert("UTC"),
            "open": np.round(prev, 2),
            "high": np.round(high, 2),
            "low": np.round(low, 2),
            "close": np.round(close, 2),
            "volume": rng.integers(100_000, 1_000_000, n),
        }
    )


def _next_close(bars: pd.DataFrame) -> pd.Series:
    """A feature that peeks: tomorrow's close over today's."""
    return bars["close"].shift(-1) / bars["close"]


def _store(root: Path, phi: float, start: date, end: date, seed: int) -> BarStore:
    store = BarStore(root)
    for k, symbol in enumerate(SYMBOLS):
        store.write(symbol, synthetic_daily(symbol, start, end, phi=phi, seed=seed + k), "1d")
    return store


def run_checks(
    *, seed: int = 7, years: int = 6, say: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run (a), (b) and (c) on synthetic data in a scratch directory; a verdict per check."""
    say = say or (lambda _: None)
    start, end = date(2016, 1, 1), date(2016 + years - 1, 12, 31)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="qd-ml-check-") as tmp:
        root = Path(tmp)
        tracker = Tracker(f"sqlite:///{(root / 'mlflow.db').as_posix()}", root / "artifacts")
        for name, phi in (("random_walk", 0.0), ("planted_pattern", 0.35)):
            say(f"{name}: training on {len(SYMBOLS)} synthetic symbols x {years} years")
            store = _store(root / name, phi, start, end, seed)
            request = TrainRequest(
                model="xgboost",
                symbols=SYMBOLS,
                interval="1d",
                start=start,
                end=end,
                label=LabelSpec("forward", 1),
                folds=4,
                name=f"check-{name}",
                costs="bps:3",
                params={"n_estimators": 150, "max_depth": 3, "learning_rate": 0.05},
            )
            result = train(request, store=store, tracker=tracker)
            auc, se = float(result.oos["auc"]), float(result.oos["auc_se"])
            sharpe = result.oos.get("sharpe_net")
            test_years = max(years * (request.folds / (request.folds + 1)), 1e-9)
            if name == "random_walk":
                band = 3.0 / math.sqrt(test_years)
                passed = abs(auc - 0.5) <= 4 * se and (sharpe is None or sharpe <= band)
                rule = f"|auc - 0.5| <= 4 se and sharpe_net <= {band:.2f}"
            else:
                passed = auc > 0.5 + 4 * se
                rule = "auc > 0.5 + 4 se"
            out[name] = {
                "passed": bool(passed),
                "auc": auc,
                "auc_se": se,
                "sharpe_net": sharpe,
                "rows": result.oos.get("rows"),
                "rule": rule,
            }
        say("lookahead: a feature that reads the next close")
        bars = synthetic_daily("NSE:HONA", start, end, phi=0.0, seed=seed).set_index("timestamp")
        base = default_feature_set()
        peeking = FeatureSet(
            "peeking",
            1,
            (*base.features, Feature.custom("next_close", _next_close, 1)),
        )
        try:
            assert_no_lookahead(peeking, {"NSE:HONA": bars}, checkpoints=6)
            out["lookahead"] = {"passed": False, "error": "the guard accepted a peeking feature"}
        except LookAheadError as exc:
            out["lookahead"] = {"passed": True, "refused": exc.feature}
    out["passed"] = all(v["passed"] for v in out.values() if isinstance(v, dict))
    return out
