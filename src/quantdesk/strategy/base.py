"""The strategy SDK: a strategy is a class with typed parameters and callbacks.

A strategy talks only to its :class:`~quantdesk.strategy.context.Context`: orders, positions,
cash, past bars, indicators and model signals. The same object runs in a backtest, on the paper
broker and live; only the context behind it differs, and the strategy cannot tell which.

Callbacks, in the order they happen on each bar (all optional):

- ``on_start(ctx)``: once, before the first bar. Create indicators here (``ctx.sma(...)``).
- ``on_bar(ctx)``: once per bar time, after every subscribed symbol's bar at that time closed.
  Orders placed here act from the NEXT bar on (a MARKET order fills at the next bar's open).
- ``on_fill(ctx, fill)`` and ``on_order_update(ctx, order)``: when the engine fills, cancels,
  rejects or expires one of the strategy's orders (before the next ``on_bar``).
- scheduled methods, marked ``@at("15:10")``: once per session, at the close of the first bar
  that ends at or after that exchange-local time (after that bar's ``on_bar``).
- ``on_stop(ctx)``: once, after the last bar.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping
from datetime import time
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

if TYPE_CHECKING:
    import numpy as np

    from quantdesk.strategy.context import BarArrays, Context, FillEvent, OrderUpdate

__all__ = [
    "InvalidParams",
    "Strategy",
    "StrategyParams",
    "at",
    "scheduled_methods",
    "source_hash",
]

F = TypeVar("F", bound=Callable[..., Any])
_SCHEDULE_ATTR = "__quantdesk_schedule__"


class StrategyParams(BaseModel):
    """Base of a strategy's parameters: a pydantic model whose fields carry defaults, bounds
    (``Field(ge=..., le=...)``) and descriptions; unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class InvalidParams(ValueError):
    """Parameters a strategy refuses: unknown, wrong type or out of bounds."""

    code = "STRATEGY_BAD_PARAMS"

    def __init__(self, strategy: str, errors: list[dict[str, Any]]) -> None:
        self.strategy = strategy
        self.errors = errors
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in errors]
        super().__init__(f"bad parameters for {strategy}: " + "; ".join(parts))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.strategy, self.errors))


def at(when: str) -> Callable[[F], F]:
    """Mark a method ``(self, ctx)`` to run once per session at exchange-local ``HH:MM``."""
    moment = time.fromisoformat(when)

    def mark(method: F) -> F:
        setattr(method, _SCHEDULE_ATTR, (*getattr(method, _SCHEDULE_ATTR, ()), moment))
        return method

    return mark


class Strategy:
    """Base class of every strategy. Subclasses set ``name`` and ``Params`` and override the
    callbacks they need; ``self.params`` holds the validated parameters."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Params: ClassVar[type[StrategyParams]] = StrategyParams
    # Suggested defaults for a run (the caller may override them).
    default_interval: ClassVar[str] = "1d"
    default_symbols: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: StrategyParams | Mapping[str, Any] | None = None) -> None:
        self.params = self.parse_params(params)

    @classmethod
    def parse_params(cls, params: StrategyParams | Mapping[str, Any] | None) -> Any:
        if isinstance(params, cls.Params):
            return params
        try:
            return cls.Params.model_validate(dict(params or {}))
        except ValidationError as exc:
            raise InvalidParams(cls.name or cls.__name__, _plain_errors(exc)) from exc

    @classmethod
    def params_schema(cls) -> dict[str, Any]:
        """The parameters' JSON Schema (a UI renders a form from it)."""
        return cls.Params.model_json_schema()

    # -- callbacks -------------------------------------------------------------------------

    def on_start(self, ctx: Context) -> None:
        """Before the first bar: create indicators, read parameters."""

    def on_bar(self, ctx: Context) -> None:
        """After each bar time closed."""

    def on_fill(self, ctx: Context, fill: FillEvent) -> None:
        """One of this strategy's orders filled (fully or partly)."""

    def on_order_update(self, ctx: Context, order: OrderUpdate) -> None:
        """One of this strategy's orders changed state (filled, cancelled, rejected, expired)."""

    def on_stop(self, ctx: Context) -> None:
        """After the last bar."""

    # -- vectorized fast path (optional) ----------------------------------------------------

    @classmethod
    def signals(cls, bars: BarArrays, params: Any) -> np.ndarray | None:
        """Target exposure per bar as a float array (fraction of equity; NaN: no opinion), for
        the vectorized engine; None when the strategy cannot state it as arrays.

        Contract: at every bar where the value differs from the previous bar's, the engine does
        what ``ctx.order_target_percent(symbol, value)`` would at that bar's close. A strategy
        that implements it must make the same decisions in ``on_bar`` (a test holds the two
        engines' fills equal)."""
        return None


def scheduled_methods(strategy: Strategy) -> list[tuple[time, Callable[[Context], None]]]:
    """The ``@at`` methods of a strategy, bound, sorted by time."""
    found: list[tuple[time, Callable[[Context], None]]] = []
    for name, member in inspect.getmembers(type(strategy), inspect.isfunction):
        for moment in getattr(member, _SCHEDULE_ATTR, ()):
            found.append((moment, getattr(strategy, name)))
    return sorted(found, key=lambda pair: pair[0])


def source_hash(cls: type[Strategy]) -> str:
    """SHA-256 of the strategy's module source (what a run records for reproducibility)."""
    module = inspect.getmodule(cls)
    try:
        text = inspect.getsource(module) if module is not None else inspect.getsource(cls)
    except (OSError, TypeError):
        text = cls.__qualname__
    return hashlib.sha256(text.encode()).hexdigest()


def _plain_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
