"""Candle-query latency: p50/p95 per interval for a year of 1-minute bars of one symbol.

Run: python bench/bench_candles.py [--queries N] [--real]. The reference is a plain pyarrow
read of the same partition files in the same process; the ratio says what resampling and
session alignment cost on top of just reading the data. "cold" uses a store with the
decoded-partition cache disabled (every query reads Parquet); "warm" is the default store.
--real uses NIFTY50 2022 from ../shared/data/market instead of synthetic bars.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from quantdesk.market.candles import INTERVALS, candles
from quantdesk.market.store import BarStore
from quantdesk.market.synthetic import generate_bars

START = datetime(2022, 1, 1, tzinfo=UTC)
END = datetime(2023, 1, 1, tzinfo=UTC)


def year_of_bars(real: bool) -> tuple[str, pd.DataFrame]:
    if not real:
        return "NSE:BENCH", generate_bars("NSE:BENCH", date(2022, 1, 1), date(2022, 12, 31))
    shared = Path(
        os.environ.get("QUANTDESK_SHARED_DIR", Path(__file__).parents[1] / ".." / "shared")
    )
    frame = pd.read_parquet(shared / "data" / "market" / "nse_index_intraday_1min.parquet")
    frame = frame[(frame["symbol"] == "NIFTY50") & (frame["session"] == "regular")]
    frame = frame[frame["timestamp"].dt.year == 2022]
    # The file is labelled by bar END; the store keeps bar START.
    return "NSE:NIFTY50", frame.assign(timestamp=frame["timestamp"] - pd.Timedelta(minutes=1))


def latencies(run: Callable[[], object], queries: int) -> np.ndarray:
    run()  # warm-up
    out = np.empty(queries)
    for i in range(queries):
        start = time.perf_counter()
        run()
        out[i] = time.perf_counter() - start
    return out * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--real", action="store_true")
    args = parser.parse_args()
    symbol, bars = year_of_bars(args.real)
    with tempfile.TemporaryDirectory() as root:
        BarStore(root).write(symbol, bars)
        files = [str(f) for f in BarStore(root).files(symbol, "1m")]
        reference = latencies(lambda: pq.read_table(files), args.queries)
        ref50 = float(np.percentile(reference, 50))
        print(
            f"{symbol}: {len(bars):,} 1-minute bars in {len(files)} monthly files; "
            f"{args.queries} queries each over {START.date()}..{END.date()}"
        )
        print(
            f"reference pyarrow read of the same files: p50 {ref50:.1f} ms, "
            f"p95 {np.percentile(reference, 95):.1f} ms"
        )
        print(
            f"{'interval':<9}{'candles':>8}{'cold p50':>10}{'cold p95':>10}{'x ref':>7}"
            f"{'warm p50':>10}{'warm p95':>10}"
        )
        cold, warm = BarStore(root, cache_bytes=0), BarStore(root)
        for interval in INTERVALS:
            count = len(candles(warm, symbol, interval, START, END))
            c = latencies(
                lambda s=cold, i=interval: candles(s, symbol, i, START, END), args.queries
            )
            w = latencies(
                lambda s=warm, i=interval: candles(s, symbol, i, START, END), args.queries
            )
            c50, w50 = np.percentile(c, 50), np.percentile(w, 50)
            print(
                f"{interval:<9}{count:>8}{c50:>10.1f}{np.percentile(c, 95):>10.1f}"
                f"{c50 / ref50:>7.2f}{w50:>10.1f}{np.percentile(w, 95):>10.1f}"
            )


if __name__ == "__main__":
    main()
