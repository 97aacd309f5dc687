"""The strategy SDK: :class:`Strategy`, its typed parameters, the :class:`Context` it trades
through, indicators, and the registry of built-in and user strategies."""

from quantdesk.strategy.base import InvalidParams, Strategy, StrategyParams, at
from quantdesk.strategy.context import BarArrays, Context, FillEvent, OrderUpdate

__all__ = [
    "BarArrays",
    "Context",
    "FillEvent",
    "InvalidParams",
    "OrderUpdate",
    "Strategy",
    "StrategyParams",
    "at",
]
