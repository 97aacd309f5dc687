"""RSI mean reversion: long-only. Buy when RSI falls below ``lower``; sell everything when it
rises above ``upper``."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, model_validator

from quantdesk.strategy.base import Strategy, StrategyParams
from quantdesk.strategy.context import BarArrays, Context
from quantdesk.strategy.indicators import RSI


class RsiParams(StrategyParams):
    period: int = Field(14, ge=2, le=500, description="RSI period (Wilder).")
    lower: float = Field(30.0, gt=0, lt=100, description="Enter below this RSI.")
    upper: float = Field(70.0, gt=0, lt=100, description="Exit above this RSI.")

    @model_validator(mode="after")
    def _ordered(self) -> RsiParams:
        if self.lower >= self.upper:
            raise ValueError("lower must be below upper")
        return self


class RsiMeanReversion(Strategy):
    name = "rsi_mean_reversion"
    description = "Buy oversold (RSI below lower), sell when overbought (RSI above upper)."
    Params = RsiParams
    default_interval = "1d"

    def on_start(self, ctx: Context) -> None:
        self.weight = 1.0 / len(ctx.symbols)
        self.lines = [(s, ctx.rsi(s, self.params.period)) for s in ctx.symbols]

    def on_bar(self, ctx: Context) -> None:
        lower, upper = self.params.lower, self.params.upper
        for symbol, rsi in self.lines:
            r = rsi.value
            if r is None:
                continue
            held = ctx.position(symbol)
            if held == 0 and r < lower:
                ctx.order_target_percent(symbol, self.weight)
            elif held > 0 and r > upper:
                ctx.order_target_quantity(symbol, 0)

    @classmethod
    def signals(cls, bars: BarArrays, params: Any) -> np.ndarray:
        rsi = RSI(params.period).batch(bars.close)["value"]
        with np.errstate(invalid="ignore"):
            state = np.where(rsi < params.lower, 1.0, np.where(rsi > params.upper, 0.0, np.nan))
        return _hold(state)


def _hold(state: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs (keep the last decided state)."""
    idx = np.where(~np.isnan(state), np.arange(len(state)), -1)
    idx = np.maximum.accumulate(idx) if len(idx) else idx
    out = np.where(idx >= 0, state[np.maximum(idx, 0)], np.nan)
    return out
