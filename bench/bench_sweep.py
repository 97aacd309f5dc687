"""Sweep throughput: a 100-point grid of sma_cross on synthetic bars, with 1 and 2 processes.

Run: python bench/bench_sweep.py [--interval 1d|1m] [--symbols N] [--years Y] [--dask]
     [--engine event|vector]

Default: 4 symbols x 5 years of daily bars (about 1,240 sessions each). ``--interval 1m`` sweeps
1-minute bars instead (--years 1 is about 93,000 bars a symbol: a heavier load per point).
Each executor first runs a warm-up (one point per worker: process start, imports, first reads);
then the 100 points. Prints the warm-up seconds, points/s and the speed-up over 1 process, and
whether every executor ranked the points identically. ``--dask`` adds a 2-worker Dask
LocalCluster (needs quantdesk[distributed]). No assertions: numbers only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date
from typing import Any

from quantdesk.backtest.runner import BacktestRequest
from quantdesk.backtest.sweep import (
    DaskExecutor,
    Executor,
    LocalExecutor,
    Workspace,
    grid,
    run_sweep,
)
from quantdesk.market.store import BarStore
from quantdesk.market.synthetic import generate_bars

END = date(2024, 12, 31)


def write_bars(store: BarStore, symbols: list[str], years: int, interval: str) -> date:
    """Synthetic 1-minute bars per symbol, stored as they are or as daily bars."""
    start = date(END.year - years + 1, 1, 1)
    for k, symbol in enumerate(symbols):
        minutes = generate_bars(symbol, start, END, seed=k, start_price=500.0 + 50 * k)
        if interval == "1m":
            store.write(symbol, minutes, "1m")
            continue
        minutes["session"] = minutes["timestamp"].dt.tz_convert("Asia/Kolkata").dt.date
        daily = minutes.groupby("session").agg(
            timestamp=("timestamp", "first"),
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
        )
        store.write(symbol, daily.reset_index(drop=True), "1d")
    return start


def timed(
    name: str,
    executor: Executor,
    request: BacktestRequest,
    points: list[dict[str, Any]],
    workspace: Workspace,
    workers: int,
) -> tuple[float, list[dict[str, Any]]]:
    with_executor = {"workspace": workspace, "executor": executor}
    t = time.perf_counter()
    run_sweep(request, points[:workers], **with_executor)
    warm = time.perf_counter() - t
    t = time.perf_counter()
    result = run_sweep(request, points, **with_executor)
    seconds = time.perf_counter() - t
    per_point = sum(r["seconds"] for r in result.rows) / len(result.rows)
    print(
        f"{name:<26}{warm:>9.2f}{seconds:>10.2f}{len(points) / seconds:>11.1f}"
        f"{per_point * 1000:>14.1f}",
        end="",
        flush=True,
    )
    rows = [{k: v for k, v in row.items() if k != "seconds"} for row in result.rows]
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interval", choices=("1d", "1m"), default="1d")
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--years", type=int, default=None)
    parser.add_argument("--engine", choices=("event", "vector"), default="event")
    parser.add_argument("--dask", action="store_true", help="also a 2-worker Dask LocalCluster")
    args = parser.parse_args()
    years = args.years or (5 if args.interval == "1d" else 1)

    points = grid({"fast": list(range(2, 22, 2)), "slow": list(range(25, 275, 25))})
    symbols = [f"NSE:SWEEP{k}" for k in range(args.symbols)]
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
        f"{len(points)} points of sma_cross, {args.engine} engine"
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = BarStore(f"{tmp}/bars")
        t = time.perf_counter()
        start = write_bars(store, symbols, years, args.interval)
        print(
            f"data: {len(symbols)} symbols x {years} years of {args.interval} bars "
            f"({start}..{END}) generated in {time.perf_counter() - t:.1f}s"
        )
        request = BacktestRequest(
            strategy="sma_cross",
            symbols=symbols,
            interval=args.interval,
            start=start,
            end=END,
            costs="bps:3",
            engine=args.engine,
        )
        workspace = Workspace(bars_dir=f"{tmp}/bars")
        print(
            f"\n{'executor':<26}{'warm-up s':>9}{'sweep s':>10}{'points/s':>11}"
            f"{'ms/point*':>14}{'speed-up':>10}"
        )
        runs: list[tuple[str, float, list[dict[str, Any]]]] = []
        for processes in (1, 2):
            name = f"local, {processes} process{'es' if processes > 1 else ''}"
            with LocalExecutor(processes) as local:
                seconds, rows = timed(name, local, request, points, workspace, processes)
            runs.append((name, seconds, rows))
            print(f"{runs[0][1] / seconds:>9.2f}x")
        if args.dask:
            from distributed import LocalCluster

            with (
                LocalCluster(
                    n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
                ) as cluster,
                DaskExecutor(cluster.scheduler_address) as dask,
            ):
                seconds, rows = timed(
                    "dask LocalCluster, 2 workers", dask, request, points, workspace, 2
                )
            runs.append(("dask", seconds, rows))
            print(f"{runs[0][1] / seconds:>9.2f}x")
        same = all(rows == runs[0][2] for _, _, rows in runs)
        print(f"load average (1, 5, 15 min) after the runs: {os.getloadavg()}")
        print(
            "\n* ms/point: mean time of one point inside its worker (load bars, run, metrics).\n"
            "speed-up: sweep seconds of 1 process over this executor's (warm workers).\n"
            f"every executor ranked the points identically: {same}"
        )


if __name__ == "__main__":
    main()
