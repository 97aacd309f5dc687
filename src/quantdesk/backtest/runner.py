"""One backtest from a request: validate everything first, load bars, run an engine, build the
result with its metrics and the record that makes it reproducible.

Used by ``quantdesk backtest run``, sweeps and the API's job worker; nothing here needs the
database (instrument specs are passed in).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from quantdesk import __version__
from quantdesk.core.charges import ChargesError
from quantdesk.core.fills import FillModel
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.market.store import BarStore, normalise_symbol
from quantdesk.strategy.base import InvalidParams, Strategy, source_hash
from quantdesk.strategy.registry import Registry, UnknownStrategy

from .costs import CostModel, IndiaCosts, parse_costs
from .data import BacktestDataError, Dataset, load_dataset
from .engine import EngineConfig, EventEngine, SignalReader
from .result import BacktestResult, build_result
from .vector import VectorUnsupported, run_vector

__all__ = ["BacktestError", "BacktestRequest", "prepare", "run_backtest"]

DEFAULT_TICK = Decimal("0.05")
Engine = Literal["event", "vector"]
Progress = Callable[[int, int], None]


class BacktestError(ValueError):
    """A request that cannot run: the message names the problem; ``code`` is stable."""

    def __init__(self, code: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = dict(details or {})

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process boundaries (sweeps, jobs)
        return (type(self), (self.code, str(self), self.details))


class BacktestRequest(BaseModel):
    """What to backtest. Money is a decimal string in JSON."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(min_length=1, max_length=100)
    symbols: list[str] = Field(min_length=1, max_length=200)
    interval: Literal["1m", "5m", "15m", "30m", "1h", "1d"] = "1d"
    start: date
    end: date
    params: dict[str, Any] = Field(default_factory=dict)
    cash: Decimal = Field(default=Decimal(1_000_000), gt=0, le=Decimal(10) ** 12)
    costs: str = Field(default="india", max_length=32)
    slippage_bps: Decimal | None = Field(default=None, ge=0, le=1000)
    engine: Engine = "event"
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    benchmark: str | None = Field(default=None, max_length=64)

    @field_validator("cash", "slippage_bps")
    @classmethod
    def _finite(cls, v: Decimal | None) -> Decimal | None:
        if v is not None and not v.is_finite():
            raise ValueError("must be a finite number")
        return v

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        out = []
        for s in v:
            if ":" not in s or not s.partition(":")[2].strip():
                raise ValueError(f"symbol must look like EXCHANGE:SYMBOL, got {s!r}")
            out.append(normalise_symbol(s.strip()))
        return out

    @field_validator("costs")
    @classmethod
    def _costs(cls, v: str) -> str:
        return parse_costs(v).spec


@dataclasses.dataclass
class Prepared:
    request: BacktestRequest
    strategy: Strategy
    data: Dataset
    config: EngineConfig
    benchmark: np.ndarray | None = None
    benchmark_name: str | None = None


def _fill_model(request: BacktestRequest, paper: FillModel) -> FillModel:
    if request.slippage_bps is None:
        return paper
    return dataclasses.replace(
        paper, slippage_ticks=0, random_slippage_ticks=0, slippage_bps=request.slippage_bps
    )


def prepare(
    request: BacktestRequest,
    *,
    store: BarStore,
    registry: Registry,
    paper_fill_model: FillModel | None = None,
    specs: Mapping[str, InstrumentSpec] | None = None,
    signals: SignalReader | None = None,
) -> Prepared:
    """Everything checked and loaded; raises :class:`BacktestError` naming the problem."""
    try:
        cls = registry.get(request.strategy)
    except UnknownStrategy as exc:
        raise BacktestError(exc.code, str(exc), {"known": exc.known}) from exc
    try:
        strategy = cls(request.params)
    except InvalidParams as exc:
        raise BacktestError(exc.code, str(exc), {"errors": exc.errors}) from exc
    if request.end < request.start:
        raise BacktestError(
            "BACKTEST_BAD_RANGE",
            f"the date range is inverted: start {request.start} is after end {request.end}",
        )
    try:
        data = load_dataset(store, request.symbols, request.interval, request.start, request.end)
    except BacktestDataError as exc:
        raise BacktestError(exc.code, str(exc)) from exc
    costs = parse_costs(request.costs)
    _check_costs_cover(costs, data)
    model = _fill_model(request, paper_fill_model or FillModel(max_volume_share=None))
    known = dict(specs or {})
    specs_of = {s: known.get(s) or InstrumentSpec(tick_size=DEFAULT_TICK) for s in data.symbols}
    data = data.on_ticks({s: spec.tick_size for s, spec in specs_of.items()})
    config = EngineConfig(
        cash=request.cash,
        costs=costs,
        fill_model=model,
        specs=specs_of,
        seed=request.seed,
        signals=signals,
    )
    if request.engine == "vector":
        try:
            from .vector import _check

            _check(strategy, data, config)
        except VectorUnsupported as exc:
            raise BacktestError(exc.code, str(exc)) from exc
        if type(strategy).signals.__func__ is Strategy.signals.__func__:  # type: ignore[attr-defined]
            raise BacktestError(
                "BACKTEST_VECTOR_UNSUPPORTED",
                f"{cls.name} has no vectorized form; use --engine event",
            )
    prepared = Prepared(request, strategy, data, config)
    prepared.benchmark, prepared.benchmark_name = _benchmark(prepared, store)
    return prepared


def _check_costs_cover(costs: CostModel, data: Dataset) -> None:
    """The india schedule has dated rows: a run outside them cannot be charged honestly."""
    if not isinstance(costs, IndiaCosts) or not len(data):
        return
    for day in (int(data.session[0]), int(data.session[-1])):
        when = date(1970, 1, 1) + timedelta(days=day)
        try:
            costs.calculator.schedule.rates_on(when)
            costs.calculator.tariff.rates_on(when)
        except ChargesError as exc:
            raise BacktestError(
                "BACKTEST_COSTS_UNAVAILABLE",
                f"the india charges schedule does not cover {when} ({exc}); backtest that "
                "period with --costs bps:N instead",
            ) from exc


def _benchmark(p: Prepared, store: BarStore) -> tuple[np.ndarray | None, str | None]:
    data = p.data
    name = p.request.benchmark
    if name:
        symbol = normalise_symbol(name)
        if symbol in data.fields:
            return data.fields[symbol]["close"], symbol
        try:
            other = load_dataset(
                store, [symbol], p.request.interval, p.request.start, p.request.end
            )
        except BacktestDataError as exc:
            raise BacktestError("BACKTEST_BAD_BENCHMARK", str(exc)) from exc
        pos = np.clip(np.searchsorted(other.time, data.time, side="right") - 1, 0, None)
        return other.fields[symbol]["close"][pos], symbol
    if len(data.symbols) == 1:
        return data.fields[data.symbols[0]]["close"], data.symbols[0]
    closes = np.stack([data.fields[s]["close"] / data.fields[s]["close"][0] for s in data.symbols])
    return closes.mean(axis=0), "equal-weight " + ",".join(data.symbols)


def run_backtest(
    request: BacktestRequest,
    *,
    store: BarStore,
    registry: Registry,
    paper_fill_model: FillModel | None = None,
    specs: Mapping[str, InstrumentSpec] | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
    signals: SignalReader | None = None,
) -> BacktestResult:
    """``signals`` answers the strategy's ``ctx.signal`` (the ML pipeline backtests a model's
    out-of-sample predictions through it); None: every signal is None."""
    p = prepare(
        request,
        store=store,
        registry=registry,
        paper_fill_model=paper_fill_model,
        specs=specs,
        signals=signals,
    )
    if request.engine == "vector":
        engine_run = run_vector(p.strategy, p.data, p.config, progress=progress)
    else:
        engine_run = EventEngine(p.strategy, p.data, p.config, progress=progress).run()
    bench, bench_name = p.benchmark, p.benchmark_name
    run = {
        "run_id": run_id or uuid.uuid4().hex,
        "strategy": request.strategy,
        "params": p.strategy.params.model_dump(mode="json"),
        "symbols": list(p.data.symbols),
        "interval": request.interval,
        "start": request.start.isoformat(),
        "end": request.end.isoformat(),
        "first_bar": p.data.datetime_at(0).isoformat(),
        "last_bar": p.data.end_at(len(p.data) - 1).isoformat(),
        "cash": str(request.cash),
        "costs": p.config.costs.spec,
        "engine": request.engine,
        "fill_model": _model_json(p.config.fill_model),
        "instruments": {
            s: {"tick_size": str(spec.tick_size), "lot_size": spec.lot_size}
            for s, spec in p.config.specs.items()
        },
        "seed": request.seed,
        "benchmark": bench_name,
        "source_hash": source_hash(type(p.strategy)),
        "data_fingerprint": p.data.fingerprint,
        "code_version": __version__,
    }
    return build_result(engine_run, run, benchmark_close=bench)


def _model_json(model: FillModel) -> dict[str, Any]:
    return {
        "slippage_ticks": model.slippage_ticks,
        "slippage_bps": str(model.slippage_bps),
        "random_slippage_ticks": model.random_slippage_ticks,
        "max_volume_share": None if model.max_volume_share is None else str(model.max_volume_share),
        "latency_ms": int(model.latency / timedelta(milliseconds=1)),
    }


def parse_param(text: str) -> tuple[str, Any]:
    """``k=v`` from the command line: v as JSON when it parses (numbers, true/false), else text."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise BacktestError("BACKTEST_BAD_PARAM", f"a parameter must look like k=v, got {text!r}")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed
