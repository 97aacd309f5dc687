"""Donchian channel breakout: long-only. Buy when the close breaks above the highest high of
the previous ``entry`` bars; sell everything when it breaks below the lowest low of the
previous ``exit`` bars."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from quantdesk.strategy.base import Strategy, StrategyParams
from quantdesk.strategy.builtin.rsi_mean_reversion import _hold
from quantdesk.strategy.context import BarArrays, Context
from quantdesk.strategy.indicators import Highest, Indicator, Lowest


def _on(indicator: Indicator, field: str) -> Indicator:
    """The indicator fed with another bar field than the close."""
    indicator.inputs = (field,)  # type: ignore[misc]
    return indicator


@dataclass(slots=True)
class _Line:
    symbol: str
    high: Indicator
    low: Indicator
    prev_high: float | None = None  # the channel up to the previous bar
    prev_low: float | None = None


class DonchianParams(StrategyParams):
    entry: int = Field(20, ge=2, le=1000, description="Breakout channel length (bars).")
    exit: int = Field(10, ge=2, le=1000, description="Exit channel length (bars).")


class DonchianBreakout(Strategy):
    name = "donchian_breakout"
    description = "Buy a close above the previous N-bar high; sell below the previous M-bar low."
    Params = DonchianParams
    default_interval = "1d"

    def on_start(self, ctx: Context) -> None:
        p = self.params
        self.weight = 1.0 / len(ctx.symbols)
        self.lines = [
            _Line(
                s,
                ctx.indicator(_on(Highest(p.entry), "high"), s),
                ctx.indicator(_on(Lowest(p.exit), "low"), s),
            )
            for s in ctx.symbols
        ]

    def on_bar(self, ctx: Context) -> None:
        for line in self.lines:
            symbol = line.symbol
            close = ctx.close(symbol)
            if line.prev_high is not None and line.prev_low is not None:
                held = ctx.position(symbol)
                if held == 0 and close > line.prev_high:
                    ctx.order_target_percent(symbol, self.weight)
                elif held > 0 and close < line.prev_low:
                    ctx.order_target_quantity(symbol, 0)
            line.prev_high, line.prev_low = line.high.value, line.low.value

    @classmethod
    def signals(cls, bars: BarArrays, params: Any) -> np.ndarray:
        high = Highest(params.entry).batch(bars.high)["value"]
        low = Lowest(params.exit).batch(bars.low)["value"]
        prev_high = np.r_[np.nan, high[:-1]]
        prev_low = np.r_[np.nan, low[:-1]]
        valid = ~np.isnan(prev_high) & ~np.isnan(prev_low)
        with np.errstate(invalid="ignore"):
            state = np.where(
                valid & (bars.close > prev_high),
                1.0,
                np.where(valid & (bars.close < prev_low), 0.0, np.nan),
            )
        return _hold(state)
