"""SMA crossover: long-only on closes.

When flat and SMA(fast) > SMA(slow), enter with ``order_target_percent(1.0)`` (split equally
when several symbols run); when holding and SMA(fast) <= SMA(slow), sell everything. No trade
before both averages exist.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, model_validator

from quantdesk.strategy.base import Strategy, StrategyParams
from quantdesk.strategy.context import BarArrays, Context
from quantdesk.strategy.indicators import SMA


class SmaCrossParams(StrategyParams):
    fast: int = Field(10, ge=1, le=5000, description="Bars in the fast moving average.")
    slow: int = Field(50, ge=2, le=10000, description="Bars in the slow moving average.")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError("fast must be shorter than slow")
        return self


class SmaCross(Strategy):
    name = "sma_cross"
    description = "Long while the fast SMA is above the slow SMA; flat otherwise."
    Params = SmaCrossParams
    default_interval = "1d"

    def on_start(self, ctx: Context) -> None:
        p = self.params
        self.weight = 1.0 / len(ctx.symbols)
        self.lines = [(s, ctx.sma(s, p.fast), ctx.sma(s, p.slow)) for s in ctx.symbols]

    def on_bar(self, ctx: Context) -> None:
        for symbol, fast, slow in self.lines:
            f, s = fast.value, slow.value
            if f is None or s is None:
                continue
            held = ctx.position(symbol)
            if held == 0:
                if f > s:
                    ctx.order_target_percent(symbol, self.weight)
            elif held > 0 and f <= s:
                ctx.order_target_quantity(symbol, 0)

    @classmethod
    def signals(cls, bars: BarArrays, params: Any) -> np.ndarray:
        fast = SMA(params.fast).batch(bars.close)["value"]
        slow = SMA(params.slow).batch(bars.close)["value"]
        with np.errstate(invalid="ignore"):
            target = np.where(fast > slow, 1.0, 0.0)
        target[np.isnan(fast) | np.isnan(slow)] = np.nan
        return target
