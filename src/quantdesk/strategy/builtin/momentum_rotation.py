"""Momentum rotation: daily bars, a universe (NIFTY 50 by default), hold the top N by 12-1
month return (the return from 12 months ago to 1 month ago, skipping the last month's
reversal), equal weights, rebalanced on the first session of each month."""

from __future__ import annotations

import csv
import math
from importlib import resources

from pydantic import Field, model_validator

from quantdesk.strategy.base import Strategy, StrategyParams
from quantdesk.strategy.context import Context
from quantdesk.strategy.indicators import ROC


def nifty50() -> tuple[str, ...]:
    text = resources.files("quantdesk.market").joinpath("data", "nifty50.csv").read_text("utf-8")
    lines = (line for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return tuple(
        f"{r['exchange']}:{r['symbol']}"
        for r in csv.DictReader(lines)
        if r["instrument_type"] == "EQ"
    )


class MomentumParams(StrategyParams):
    top: int = Field(10, ge=1, le=50, description="How many symbols to hold.")
    lookback: int = Field(252, ge=20, le=1000, description="Sessions in the long window (12m).")
    skip: int = Field(21, ge=0, le=250, description="Most recent sessions skipped (1m).")

    @model_validator(mode="after")
    def _skip_inside(self) -> MomentumParams:
        if self.skip >= self.lookback:
            raise ValueError("skip must be shorter than lookback")
        return self


class MomentumRotation(Strategy):
    name = "momentum_rotation"
    description = "Hold the top N symbols by 12-1 month return, equal weight, monthly rebalance."
    Params = MomentumParams
    default_interval = "1d"

    @classmethod
    def default_universe(cls) -> tuple[str, ...]:
        return nifty50()

    def on_start(self, ctx: Context) -> None:
        self.month: tuple[int, int] | None = None
        p = self.params
        self.momentum = {s: ctx.indicator(ROC(p.lookback, skip=p.skip), s) for s in ctx.symbols}

    def on_bar(self, ctx: Context) -> None:
        now = ctx.time
        month = (now.year, now.month)
        if month == self.month:
            return
        first = self.month is None
        self.month = month
        if first:
            return  # start on a whole month
        p = self.params
        scores: list[tuple[float, str]] = []
        for symbol, momentum in self.momentum.items():
            value = momentum.value
            if value is not None and ctx.has_bar(symbol) and math.isfinite(value):
                scores.append((value, symbol))
        if not scores:
            return
        chosen = {s for _, s in sorted(scores, reverse=True)[: p.top]}
        weight = 1.0 / p.top
        # Sells first: their proceeds pay for the buys at the next open.
        for symbol in ctx.symbols:
            if symbol not in chosen and ctx.position(symbol) > 0:
                ctx.order_target_quantity(symbol, 0)
        for symbol in sorted(chosen):
            ctx.order_target_percent(symbol, weight)
