"""The whole training pipeline on a year of 5-minute bars of the 50 demo symbols.

Run: python bench/bench_ml_pipeline.py [--symbols 50] [--days 250] [--folds 5] [--trees 200]

What ``quantdesk ml train --model xgboost --interval 5m --folds 5`` does, timed by stage:
synthetic 1-minute bars of the NIFTY 50 demo symbols (stored in a scratch Parquet store, 5-minute
candles built from them as the charts and backtests build them), the platform's feature set
(cross-sectional ranks included), labels, the 5-fold purged walk-forward of XGBoost, the signal
backtest of the out-of-sample predictions through the event engine net of charges, and the MLflow
run and registration (embedded store).

Target (issue 11): a 5-fold XGBoost walk-forward on one year of 5-minute bars of the 50 demo
symbols <= 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from quantdesk.market.store import BarStore
from quantdesk.market.synthetic import generate_bars
from quantdesk.ml.dataset import LabelSpec
from quantdesk.ml.pipeline import TrainRequest, train
from quantdesk.ml.tracking import Tracker
from quantdesk.strategy.builtin.momentum_rotation import nifty50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--days", type=int, default=250, help="sessions of 1-minute bars")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--trees", type=int, default=200)
    args = parser.parse_args()
    symbols = list(nifty50())[: args.symbols]
    end = date(2025, 6, 30)
    start = end - timedelta(days=int(args.days * 7 / 5) + 10)
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = BarStore(root / "bars")
        t = time.perf_counter()
        rows = 0
        for k, symbol in enumerate(symbols):
            bars = generate_bars(symbol, start, end, seed=k, start_price=100.0 + 10 * k)
            sessions = bars["timestamp"].dt.tz_convert("Asia/Kolkata").dt.date
            keep = sessions.isin(sorted(set(sessions))[-args.days :])
            bars = bars[keep].reset_index(drop=True)
            rows += len(bars)
            store.write(symbol, bars, "1m")
        first = min(sessions[keep])
        print(
            f"data: {rows:,} one-minute bars of {len(symbols)} symbols stored in "
            f"{time.perf_counter() - t:.1f}s (not timed below)"
        )
        tracker = Tracker(f"sqlite:///{(root / 'mlflow.db').as_posix()}", root / "art")
        stages: dict[str, float] = {}
        last = [time.perf_counter(), ""]

        def progress(stage: str, done: int, total: int) -> None:
            now = time.perf_counter()
            if stage != last[1]:
                if last[1]:
                    stages[last[1]] = stages.get(last[1], 0.0) + now - float(last[0])
                last[0], last[1] = now, stage

        t = time.perf_counter()
        result = train(
            TrainRequest(
                model="xgboost",
                symbols=symbols,
                interval="5m",
                start=first,
                end=end,
                label=LabelSpec("forward", 6),
                folds=args.folds,
                name="bench-5m",
                costs="bps:3",
                params={"n_estimators": args.trees, "max_depth": 5, "n_jobs": 2},
            ),
            store=store,
            tracker=tracker,
            progress=progress,
        )
        total = time.perf_counter() - t
        stages[str(last[1])] = stages.get(str(last[1]), 0.0) + time.perf_counter() - float(last[0])
        print(
            f"\n{result.rows:,} labelled rows x {len(result.features)} features, "
            f"{args.folds} folds, {args.trees} trees max (early stopping on a purged tail)"
        )
        print("stage seconds (from the start of each stage to the next):")
        for stage, secs in stages.items():
            print(f"  {stage:<10} {secs:7.1f}")
        print(
            f"whole pipeline: {total:.1f}s (target <= 120 s); pooled OOS AUC "
            f"{result.oos['auc']:.4f} +- {result.oos['auc_se']:.4f}; signal backtest "
            f"{result.oos.get('trades')} fills, net Sharpe {result.oos.get('sharpe_net')}"
        )


if __name__ == "__main__":
    main()
