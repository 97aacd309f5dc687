"""Live inference latency: streaming features + XGBoost prediction for 50 symbols per bar.

Run: python bench/bench_inference.py [--symbols 50] [--sessions 6] [--bars 400]

A model is trained by the real pipeline (``quantdesk.ml.pipeline.train``: default feature set,
cross-sectional ranks included, XGBoost, purged walk-forward, registered in a scratch MLflow
store) on synthetic 1-minute bars of ``--symbols`` symbols; the inference service loads the
champion, warms up on the history, then gets the last ``--bars`` bar times bar by bar. Per bar
time it prints the p50 / p99 of the whole step (every symbol's feature update, the
cross-sectional vector, the prediction of all symbols, signals buffered) and, apart, what
writing the buffered signals to the store costs.

Target (issue 11): p99 <= 10 ms per bar for 50 symbols.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd

from quantdesk.market.store import BarStore
from quantdesk.market.synthetic import generate_bars
from quantdesk.ml.dataset import LabelSpec
from quantdesk.ml.inference import InferenceService
from quantdesk.ml.pipeline import TrainRequest, train
from quantdesk.ml.signals import SignalStore
from quantdesk.ml.tracking import Tracker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--bars", type=int, default=400)
    args = parser.parse_args()
    names = [f"NSE:S{i:02d}" for i in range(args.symbols)]
    first, last = date(2025, 6, 2), date(2025, 6, 30)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = BarStore(root / "bars")
        frames = {}
        for k, name in enumerate(names):
            bars = generate_bars(name, first, last, seed=k, start_price=100.0 + k)
            sessions = bars["timestamp"].dt.tz_convert("Asia/Kolkata").dt.date
            keep = sessions.isin(sorted(set(sessions))[: args.sessions])
            bars = bars[keep].reset_index(drop=True)
            store.write(name, bars, "1m")
            frames[name] = bars.set_index("timestamp")
        end = max(frames[names[0]].index).tz_convert("Asia/Kolkata").date()
        t = time.perf_counter()
        tracker = Tracker(f"sqlite:///{(root / 'mlflow.db').as_posix()}", root / "art")
        result = train(
            TrainRequest(
                model="xgboost",
                symbols=names,
                interval="1m",
                start=first,
                end=end,
                label=LabelSpec("forward", 5),
                folds=3,
                name="bench",
                costs="bps:3",
                params={"n_estimators": 100, "max_depth": 4},
            ),
            store=store,
            tracker=tracker,
        )
        tracker.set_alias("bench", "champion", result.version)
        print(
            f"model: {result.rows:,} training rows, {len(result.features)} features, "
            f"trained and registered in {time.perf_counter() - t:.1f}s"
        )
        signals = SignalStore(root / "signals")
        service = InferenceService(
            tracker, "bench", signals, download_dir=root / "serving", flush_every=1e9
        )
        service.load()
        n = len(frames[names[0]])
        split = n - args.bars
        for name in names:
            service.warm_up(name, frames[name].iloc[:split])
        columns = [
            {c: frames[name][c].to_numpy(np.float64) for c in ("open", "high", "low", "close")}
            | {"volume": frames[name]["volume"].to_numpy(np.float64)}
            for name in names
        ]
        times = frames[names[0]].index
        steps, predicted = [], 0
        if os.environ.get("QD_PROFILE"):
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        for i in range(split, n):
            ts = times[i]
            closes_at = ts + pd.Timedelta(minutes=1)
            t0 = time.perf_counter()
            for name, cols in zip(names, columns, strict=True):
                out = service.on_bar(
                    name,
                    ts,
                    cols["open"][i],
                    cols["high"][i],
                    cols["low"][i],
                    cols["close"][i],
                    cols["volume"][i],
                    known_at=closes_at,
                )
                predicted += len(out)
            steps.append(time.perf_counter() - t0)
        if os.environ.get("QD_PROFILE"):
            import pstats

            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        t0 = time.perf_counter()
        service.flush()
        flush = time.perf_counter() - t0
        ms = np.array(steps) * 1e3
        print(
            f"\n{args.symbols} symbols x {args.bars} bar times, {predicted:,} predictions\n"
            f"per bar time (features of every symbol, ranks, prediction): "
            f"p50 {np.percentile(ms, 50):.2f} ms  p99 {np.percentile(ms, 99):.2f} ms  "
            f"max {ms.max():.2f} ms  (target p99 <= 10 ms)\n"
            f"writing the {predicted:,} buffered signals: {flush * 1e3:.0f} ms "
            f"({args.symbols} Parquet files)"
        )


if __name__ == "__main__":
    main()
