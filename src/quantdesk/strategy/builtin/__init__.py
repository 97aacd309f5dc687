"""Built-in example strategies."""

from quantdesk.strategy.builtin.donchian_breakout import DonchianBreakout
from quantdesk.strategy.builtin.ml_signal import MlSignal
from quantdesk.strategy.builtin.momentum_rotation import MomentumRotation
from quantdesk.strategy.builtin.rsi_mean_reversion import RsiMeanReversion
from quantdesk.strategy.builtin.sma_cross import SmaCross

BUILTIN = (SmaCross, RsiMeanReversion, DonchianBreakout, MomentumRotation, MlSignal)

__all__ = [
    "BUILTIN",
    "DonchianBreakout",
    "MlSignal",
    "MomentumRotation",
    "RsiMeanReversion",
    "SmaCross",
]
