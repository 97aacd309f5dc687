"""A finished backtest: orders, fills, round trips, equity, positions, charges and metrics.

Money (cash, fill prices, charges, final equity) is exact ``Decimal``. The per-bar equity curve
is float64 (analytics and charts), derived after the run from the fills and the closes: cash and
positions change at the bars with fills, and each bar's equity is cash plus positions at its
close. ``final_equity`` is computed again exactly from the book.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from quantdesk.core.charges import COMPONENTS, Charges
from quantdesk.core.orders import Side

from .book import BookFill
from .engine import EngineRun
from .metrics import RoundTrip, compute_metrics

__all__ = ["BacktestResult", "build_result", "round_trips"]

_US = 1_000_000


@dataclass
class BacktestResult:
    run: dict[str, Any]  # metadata: what was run, on what, how (reproducibility)
    fills: list[BookFill]
    orders: list[dict[str, Any]]
    round_trips: list[RoundTrip]
    equity: pd.Series  # float per bar, UTC DatetimeIndex (bar end)
    positions: pd.DataFrame  # signed quantity per symbol per bar
    benchmark: pd.Series | None  # benchmark equity scaled to the initial cash
    charges: dict[str, Decimal]
    final_equity: Decimal
    final_cash: Decimal
    metrics: dict[str, Any]
    bars: int
    seconds: float

    def summary(self) -> dict[str, Any]:
        """The JSON document ``backtest run --json`` prints."""
        return {
            "run_id": self.run.get("run_id"),
            "strategy": self.run.get("strategy"),
            "params": self.run.get("params"),
            "symbols": self.run.get("symbols"),
            "interval": self.run.get("interval"),
            "start": self.run.get("start"),
            "end": self.run.get("end"),
            "engine": self.run.get("engine"),
            "costs": self.run.get("costs"),
            "fills": len(self.fills),
            "orders": len(self.orders),
            "round_trips": len(self.round_trips),
            "initial_cash": str(self.run.get("cash")),
            "final_equity": str(self.final_equity),
            "final_cash": str(self.final_cash),
            "charges": {k: str(v) for k, v in self.charges.items()},
            "bars": self.bars,
            "seconds": round(self.seconds, 6),
            "metrics": self.metrics,
            "reproducibility": {
                k: self.run.get(k)
                for k in (
                    "source_hash",
                    "data_fingerprint",
                    "fill_model",
                    "seed",
                    "code_version",
                )
            },
        }

    def fills_table(self) -> list[dict[str, Any]]:
        return [fill_json(f) for f in self.fills]


def fill_json(f: BookFill) -> dict[str, Any]:
    return {
        "time": f.time.isoformat(),
        "order_id": f.order_id,
        "symbol": f.symbol,
        "side": str(f.side),
        "product": str(f.product),
        "quantity": f.quantity,
        "price": str(f.price),
        "fees": str(f.fees),
        "tag": f.tag,
    }


def round_trips(fills: Sequence[BookFill], times: np.ndarray) -> list[RoundTrip]:
    """Round trips per symbol and product: from a flat position to flat again (a fill that
    flips the position closes one trip and opens the next with the rest)."""
    open_trips: dict[tuple[str, str], dict[str, Any]] = {}
    done: list[RoundTrip] = []
    qty: dict[tuple[str, str], int] = defaultdict(int)
    for f in fills:
        key = (f.symbol, str(f.product))
        remaining = f.quantity
        sign = 1 if f.side is Side.BUY else -1
        per_fee = f.fees / f.quantity
        while remaining:
            held = qty[key]
            trip = open_trips.get(key)
            if held == 0 or (held > 0) == (sign > 0):
                if trip is None:
                    trip = open_trips[key] = {
                        "side": "LONG" if sign > 0 else "SHORT",
                        "entry_qty": 0,
                        "entry_value": Decimal(0),
                        "exit_qty": 0,
                        "exit_value": Decimal(0),
                        "charges": Decimal(0),
                        "entry_time": f.time,
                        "entry_index": f.index,
                    }
                trip["entry_qty"] += remaining
                trip["entry_value"] += remaining * f.price
                trip["charges"] += per_fee * remaining
                qty[key] += sign * remaining
                remaining = 0
                continue
            assert trip is not None
            closing = min(remaining, abs(held))
            trip["exit_qty"] += closing
            trip["exit_value"] += closing * f.price
            trip["charges"] += per_fee * closing
            qty[key] += sign * closing
            remaining -= closing
            if qty[key] == 0:
                done.append(_trip(key[0], trip, f.time, f.index))
                del open_trips[key]
    return done


def _trip(symbol: str, t: dict[str, Any], exit_time: datetime, exit_index: int) -> RoundTrip:
    q = t["entry_qty"]
    entry = t["entry_value"] / q
    exit_ = t["exit_value"] / t["exit_qty"]
    gross = (t["exit_value"] - t["entry_value"]) * (1 if t["side"] == "LONG" else -1)
    charges = t["charges"].quantize(Decimal("0.01"))
    return RoundTrip(
        symbol=symbol,
        side=t["side"],
        quantity=q,
        entry_time=t["entry_time"],
        exit_time=exit_time,
        entry_price=entry.quantize(Decimal("0.0001")),
        exit_price=exit_.quantize(Decimal("0.0001")),
        gross_pnl=gross,
        charges=charges,
        net_pnl=gross - charges,
        bars_held=exit_index - t["entry_index"],
    )


def build_result(
    engine_run: EngineRun,
    run: dict[str, Any],
    *,
    benchmark_close: np.ndarray | None = None,
) -> BacktestResult:
    data = engine_run.dataset
    book = engine_run.book
    n = len(data)
    cash0 = float(engine_run.config.cash)
    cash_delta = np.zeros(n)
    traded = 0.0
    positions: dict[str, np.ndarray] = {s: np.zeros(n, np.int64) for s in data.symbols}
    for f in book.fills:
        signed = f.signed_quantity
        value = float(f.price) * f.quantity
        traded += value
        cash_delta[f.index] += -signed * float(f.price) - float(f.fees)
        positions[f.symbol][f.index] += signed
    cash = cash0 + np.cumsum(cash_delta)
    equity = cash.copy()
    for s, delta in positions.items():
        held = np.cumsum(delta)
        positions[s] = held
        equity += held * data.fields[s]["close"]
    index = pd.DatetimeIndex(pd.to_datetime(data.end, unit="us", utc=True))
    equity_series = pd.Series(equity, index=index, name="equity")
    pos_frame = pd.DataFrame(positions, index=index)
    exposure = float(np.mean(np.any(pos_frame.to_numpy() != 0, axis=1))) if n else 0.0
    marks = {s: to_mark(engine_run, s) for s in data.symbols}
    final_equity = book.equity(marks)
    totals = Charges()
    for f in book.fills:
        totals = totals + f.charges
    charges = {c: getattr(totals, c) for c in COMPONENTS}
    if engine_run.config.costs.spec.startswith("bps"):
        charges = {"bps": totals.total}
    charges["total"] = totals.total
    trips = round_trips(book.fills, data.time)
    benchmark = None
    if benchmark_close is not None and len(benchmark_close) == n and n:
        benchmark = pd.Series(
            cash0 * benchmark_close / benchmark_close[0], index=index, name="benchmark"
        )
    avg_equity = float(np.mean(equity)) if n else cash0
    metrics = compute_metrics(
        equity_series,
        initial_cash=cash0,
        round_trips=trips,
        exposure=exposure,
        turnover=traded / avg_equity if avg_equity else 0.0,
        benchmark=benchmark,
        periods_per_year=252,
    )
    orders = [
        {
            "order_id": o.id,
            "symbol": o.symbol,
            "side": str(o.side),
            "order_type": str(o.order_type),
            "product": str(o.product),
            "quantity": o.quantity,
            "filled_quantity": o.filled_quantity,
            "average_price": None if o.average_fill_price is None else str(o.average_fill_price),
            "status": str(o.status),
            "tag": book.tags.get(o.id),
        }
        for o in book.orders
    ]
    return BacktestResult(
        run=run,
        fills=list(book.fills),
        orders=orders,
        round_trips=trips,
        equity=equity_series,
        positions=pos_frame,
        benchmark=benchmark,
        charges=charges,
        final_equity=final_equity,
        final_cash=book.cash,
        metrics=metrics,
        bars=data.bars_processed(),
        seconds=engine_run.seconds,
    )


def to_mark(engine_run: EngineRun, symbol: str) -> Decimal:
    from .book import to_price

    close = engine_run.dataset.fields[symbol]["close"]
    return to_price(float(close[-1]), engine_run.config.specs[symbol].tick_size)
