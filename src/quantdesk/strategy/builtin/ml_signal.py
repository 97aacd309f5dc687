"""Trade a model's signals: long while its probability is high, flat otherwise.

Reads ``ctx.signal(model, symbol)``: the model's latest prediction known at the bar's end (the
probability that the label is positive), stored by the inference service live and on paper and
given by the training pipeline for its out-of-sample backtest. When flat and the probability is
above ``long_threshold``, enter with ``order_target_percent`` (``allocation``, split equally
across the symbols); when holding and it falls below ``exit_threshold``, sell everything. No
signal: no trade.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from quantdesk.strategy.base import Strategy, StrategyParams
from quantdesk.strategy.context import Context


class MlSignalParams(StrategyParams):
    model: str = Field(
        "", max_length=200, description="Registered model whose signals to trade (its name)."
    )
    long_threshold: float = Field(
        0.55, gt=0, lt=1, description="Enter when the probability is above this."
    )
    exit_threshold: float = Field(
        0.5, gt=0, lt=1, description="Leave when the probability is below this."
    )
    allocation: float = Field(
        1.0, gt=0, le=1, description="Fraction of equity to invest, split across the symbols."
    )

    @model_validator(mode="after")
    def _ordered(self) -> MlSignalParams:
        if self.exit_threshold > self.long_threshold:
            raise ValueError("exit_threshold must not be above long_threshold")
        return self


class MlSignal(Strategy):
    name = "ml_signal"
    description = "Long while a model's probability is above a threshold; flat otherwise."
    Params = MlSignalParams
    default_interval = "1d"

    def on_start(self, ctx: Context) -> None:
        if not self.params.model:
            raise ValueError("ml_signal needs the model's name (parameter 'model')")
        self.weight = self.params.allocation / len(ctx.symbols)

    def on_bar(self, ctx: Context) -> None:
        p = self.params
        for symbol in ctx.symbols:
            value = ctx.signal(p.model, symbol)
            if value is None or not ctx.has_bar(symbol):
                continue
            held = ctx.position(symbol)
            if held == 0 and value > p.long_threshold:
                ctx.order_target_percent(symbol, self.weight)
            elif held > 0 and value < p.exit_threshold:
                ctx.order_target_quantity(symbol, 0)
