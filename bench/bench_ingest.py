"""Ingest throughput: rows/s reading + validating (+ storing) a year of 1-minute bars.

Run: python bench/bench_ingest.py [--repeat N]. Data is synthetic (seeded), written once to a
temporary folder as CSV (naive IST timestamps, the common vendor export) and as Parquet.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from quantdesk.market.ingest import ingest, load_bars
from quantdesk.market.store import BarStore
from quantdesk.market.synthetic import generate_bars

SYMBOL = "NSE:BENCH"


def write_inputs(folder: Path) -> tuple[Path, Path, int]:
    bars = generate_bars(SYMBOL, date(2024, 1, 1), date(2024, 12, 31), seed=1)
    local = bars.assign(timestamp=bars["timestamp"].dt.tz_convert("Asia/Kolkata"))
    csv = folder / "year.csv"
    local.assign(timestamp=local["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(
        csv, index=False
    )
    parquet = folder / "year.parquet"
    local.to_parquet(parquet)
    return csv, parquet, len(bars)


def timed(run: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root)
        csv, parquet, rows = write_inputs(folder)
        load_bars(parquet, SYMBOL)  # warm up imports and the calendar cache
        print(
            f"a year of 1-minute bars: {rows:,} rows; CSV {csv.stat().st_size / 1e6:.1f} MB, "
            f"Parquet {parquet.stat().st_size / 1e6:.1f} MB; best / median of {args.repeat}"
        )
        print(f"{'input':<10}{'stage':<22}{'best s':>9}{'median s':>10}{'rows/s (best)':>16}")
        for name, path in (("csv", csv), ("parquet", parquet)):
            for stage, run in (
                ("read+validate", lambda p=path: load_bars(p, SYMBOL)),
                ("read+validate+store", lambda p=path: ingest(p, SYMBOL, BarStore(folder / "s"))),
            ):
                times = timed(run, args.repeat)
                best, median = min(times), statistics.median(times)
                print(f"{name:<10}{stage:<22}{best:>9.3f}{median:>10.3f}{rows / best:>16,.0f}")


if __name__ == "__main__":
    main()
