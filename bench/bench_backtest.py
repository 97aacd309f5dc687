"""Backtester speed: sma_cross (10/50) on 1,000,000 one-minute bars of one symbol, bps:3.

Run: python bench/bench_backtest.py [--bars N] [--skip-momentum]

Prints bars/s of the event-driven engine and of the vectorized path, each beside a reference
run in the same process: a plain numpy + Python loop of the same rules (SMAs by numpy, a loop
over bars with float cash and position, sizing at the close, fill at the next open, 3 bps
costs). The ratios say what the engines' generality (core order state machine, Decimal money,
cost and fill models, callbacks) costs on top of the bare rules. Also: peak RSS, the
momentum_rotation run over 50 symbols x 5 years of daily bars, and the fill counts of all three
(they must agree).

Targets (issue 10): event >= 500,000 bars/s, vector >= 3,000,000 bars/s, peak memory <= 500 MB,
momentum_rotation <= 2 s.
"""

from __future__ import annotations

import argparse
import math
import resource
import tempfile
import time
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd

from quantdesk.backtest.costs import parse_costs
from quantdesk.backtest.data import load_dataset
from quantdesk.backtest.engine import EngineConfig, EventEngine
from quantdesk.backtest.runner import BacktestRequest, run_backtest
from quantdesk.backtest.vector import run_vector
from quantdesk.core.fills import FillModel
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.market.store import BarStore
from quantdesk.market.synthetic import generate_bars
from quantdesk.strategy.builtin import SmaCross
from quantdesk.strategy.builtin.momentum_rotation import nifty50
from quantdesk.strategy.registry import Registry

SYMBOL = "NSE:BENCH"


def minute_bars(n: int) -> pd.DataFrame:
    """At least ``n`` synthetic 1-minute bars (375 a session), cut to exactly ``n``."""
    sessions = math.ceil(n / 375) + 10
    years = sessions / 245
    start = date(2024, 12, 31).replace(year=2024 - math.ceil(years))
    frame = generate_bars(SYMBOL, start, date(2024, 12, 31), seed=7, start_price=100.0)
    return frame.iloc[-n:].reset_index(drop=True)


def numpy_reference(o: np.ndarray, c: np.ndarray, cash0: float, bps: float) -> tuple[int, float]:
    """The same rules with numpy SMAs and a plain Python loop over floats."""
    cs = np.cumsum(c)
    fast = np.full(len(c), np.nan)
    slow = np.full(len(c), np.nan)
    fast[9:] = (cs[9:] - np.r_[0.0, cs[:-10]]) / 10
    slow[49:] = (cs[49:] - np.r_[0.0, cs[:-50]]) / 50
    rate = bps / 10_000
    cash, held, fills, pending = cash0, 0, 0, 0
    above = (fast > slow).tolist()
    valid = (~np.isnan(slow)).tolist()
    opens, closes = o.tolist(), c.tolist()
    for i in range(len(closes)):
        if pending:
            price = opens[i]
            qty = pending
            if qty > 0 and qty * price * (1 + rate) > cash:
                qty = int(cash / (price * (1 + rate)))
            if qty:
                cash -= qty * price + abs(qty) * price * rate
                held += qty
                fills += 1
            pending = 0
        if not valid[i]:
            continue
        if held == 0 and above[i]:
            pending = int((cash + held * closes[i]) / (closes[i] * (1 + rate)))
        elif held > 0 and not above[i]:
            pending = -held
    return fills, cash + held * closes[-1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--skip-momentum", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = BarStore(tmp)
        t = time.perf_counter()
        frame = minute_bars(args.bars)
        store.write(SYMBOL, frame, "1m")
        first = frame["timestamp"].iloc[0].tz_convert("Asia/Kolkata").date()
        last = frame["timestamp"].iloc[-1].tz_convert("Asia/Kolkata").date()
        print(
            f"data: {len(frame):,} bars {first}..{last} generated+stored in "
            f"{time.perf_counter() - t:.1f}s"
        )
        t = time.perf_counter()
        data = load_dataset(store, [SYMBOL], "1m", first, last)
        print(f"load: {time.perf_counter() - t:.2f}s ({len(data):,} bars)")
        config = EngineConfig(
            cash=Decimal(1_000_000),
            costs=parse_costs("bps:3"),
            fill_model=FillModel(max_volume_share=None),
            specs={SYMBOL: InstrumentSpec(Decimal("0.05"))},
        )
        cols = data.fields[SYMBOL]
        t = time.perf_counter()
        ref_fills, ref_equity = numpy_reference(cols["open"], cols["close"], 1e6, 3.0)
        ref_s = time.perf_counter() - t
        n = len(data)
        event = EventEngine(SmaCross({"fast": 10, "slow": 50}), data, config).run()
        vector = run_vector(SmaCross({"fast": 10, "slow": 50}), data, config)
        same = [(f.index, f.quantity, f.price) for f in event.book.fills] == [
            (f.index, f.quantity, f.price) for f in vector.book.fills
        ]
        print(f"\n{'engine':<22}{'seconds':>9}{'bars/s':>14}{'vs numpy loop':>15}{'fills':>8}")
        print(
            f"{'numpy+loop reference':<22}{ref_s:>9.3f}{n / ref_s:>14,.0f}{1:>15.2f}{ref_fills:>8}"
        )
        for name, run in (("event-driven", event), ("vectorized", vector)):
            print(
                f"{name:<22}{run.seconds:>9.3f}{n / run.seconds:>14,.0f}"
                f"{ref_s / run.seconds:>15.2f}{len(run.book.fills):>8}"
            )
        print(
            f"event and vector fills identical: {same}; final cash event {event.book.cash}, "
            f"vector {vector.book.cash}; reference equity {ref_equity:,.2f}"
        )
        print(f"peak RSS so far: {peak_rss_mb():.0f} MB")
        print("targets: event >= 500,000 bars/s, vector >= 3,000,000 bars/s, memory <= 500 MB")

        if not args.skip_momentum:
            symbols = list(nifty50())[:50]
            for k, s in enumerate(symbols):
                daily = generate_bars(s, date(2019, 1, 1), date(2023, 12, 31), seed=k)
                daily["session"] = daily["timestamp"].dt.tz_convert("Asia/Kolkata").dt.date
                day = daily.groupby("session").agg(
                    timestamp=("timestamp", "first"),
                    open=("open", "first"),
                    high=("high", "max"),
                    low=("low", "min"),
                    close=("close", "last"),
                    volume=("volume", "sum"),
                )
                store.write(s, day.reset_index(drop=True), "1d")
            request = BacktestRequest(
                strategy="momentum_rotation",
                symbols=symbols,
                interval="1d",
                start=date(2019, 1, 1),
                end=date(2023, 12, 31),
                costs="bps:3",
            )
            t = time.perf_counter()
            result = run_backtest(request, store=store, registry=Registry(None))
            total = time.perf_counter() - t
            print(
                f"\nmomentum_rotation, {len(symbols)} symbols x 5 years daily "
                f"({result.bars:,} symbol-bars): engine {result.seconds:.3f}s, with loading "
                f"and metrics {total:.3f}s (target <= 2 s); {len(result.fills)} fills"
            )
        print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
