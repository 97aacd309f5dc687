"""``quantdesk backtest ...`` and ``quantdesk strategies ...``."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from quantdesk.backtest.result import BacktestResult
    from quantdesk.settings import Settings
    from quantdesk.strategy.registry import Registry

backtest_app = typer.Typer(help="Backtest strategies over stored bars.", no_args_is_help=True)
strategies_app = typer.Typer(help="Strategies: built-in and user files.", no_args_is_help=True)

out = Console()
err = Console(stderr=True)

# The options `backtest run` and `backtest sweep` share.
StrategyArg = Annotated[
    str, typer.Argument(metavar="STRATEGY", help="Strategy name (see `quantdesk strategies list`).")
]
SymbolsOpt = Annotated[str, typer.Option("--symbols", help="NSE:INFY[,NSE:TCS...]")]
IntervalOpt = Annotated[str, typer.Option(help="1m|5m|15m|30m|1h|1d")]
StartOpt = Annotated[str, typer.Option(help="First session, YYYY-MM-DD.")]
EndOpt = Annotated[str, typer.Option(help="Last session, YYYY-MM-DD.")]


def _settings() -> Settings:
    from quantdesk.cli import _settings

    return _settings()


def _registry(settings: Settings) -> Registry:
    from quantdesk.strategy.registry import Registry

    registry = Registry(settings.resolved_strategy_dir)
    for e in registry.errors:
        where = f"{e.file}:{e.line}" if e.line else e.file
        err.print(f"[yellow]strategy file skipped[/] {where}: {e.message}")
    return registry


def _fail(code: str, message: str) -> typer.Exit:
    err.print(f"[bold red]Error[/] ({code}): {message}")
    return typer.Exit(2)


@strategies_app.command("list")
def strategies_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """List strategies with their parameters (JSON Schema with --json)."""
    registry = _registry(_settings())
    described = registry.describe_all()
    if as_json:
        doc = {"strategies": described, "errors": [e.as_dict() for e in registry.errors]}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    table = Table("name", "source", "vector", "parameters (default)", "description")
    for d in described:
        props = d["params_schema"].get("properties", {})
        params = ", ".join(f"{k}={v.get('default')}" for k, v in props.items())
        table.add_row(
            d["name"], d["source"], "yes" if d["vectorized"] else "", params, d["description"]
        )
    out.print(table)


def _metrics_table(result: BacktestResult) -> Table:
    m = result.metrics
    bench = m.get("benchmark") or {}
    table = Table("metric", "strategy", f"benchmark ({result.run.get('benchmark')})")

    def fmt(v: Any, pct: bool) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v * 100:.2f}%" if pct else f"{v:.3f}"
        return str(v)

    rows = [
        ("total_return", True),
        ("cagr", True),
        ("annual_volatility", True),
        ("sharpe", False),
        ("sortino", False),
        ("calmar", False),
        ("max_drawdown", True),
        ("max_drawdown_duration_days", False),
        ("win_rate", True),
        ("profit_factor", False),
        ("average_trade", False),
        ("trades", False),
        ("exposure", True),
        ("turnover", False),
    ]
    for key, pct in rows:
        table.add_row(key, fmt(m.get(key), pct), fmt(bench.get(key), pct) if bench else "")
    return table


@backtest_app.command("run")
def backtest_run(
    strategy: StrategyArg,
    symbols: SymbolsOpt = "",
    interval: IntervalOpt = "1d",
    start: StartOpt = "",
    end: EndOpt = "",
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Strategy parameter k=v (repeatable).")
    ] = None,
    cash: Annotated[str, typer.Option(help="Starting cash (INR).")] = "1000000",
    costs: Annotated[str, typer.Option(help="india | bps:N")] = "india",
    slippage_bps: Annotated[
        str | None,
        typer.Option(help="Slippage in basis points (default: the paper broker's setting)."),
    ] = None,
    engine: Annotated[str, typer.Option(help="event | vector")] = "event",
    seed: Annotated[int, typer.Option(help="Seed of random slippage.")] = 0,
    benchmark: Annotated[
        str | None, typer.Option(help="Benchmark symbol (default: the symbol, or equal weight).")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Also write the HTML tearsheet to this file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Backtest STRATEGY over stored bars; prints the metrics (or JSON with --json)."""
    from pydantic import ValidationError
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from quantdesk.backtest.runner import BacktestError, BacktestRequest, parse_param, run_backtest
    from quantdesk.market.store import BarStore

    settings = _settings()
    registry = _registry(settings)
    try:
        params = dict(parse_param(p) for p in (param or []))
        request = BacktestRequest.model_validate(
            {
                "strategy": strategy,
                "symbols": [s for s in symbols.split(",") if s.strip()],
                "interval": interval,
                "start": _date(start, "--start"),
                "end": _date(end, "--end"),
                "params": params,
                "cash": cash,
                "costs": costs,
                "slippage_bps": slippage_bps,
                "engine": engine,
                "seed": seed,
                "benchmark": benchmark,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise _fail("BACKTEST_BAD_REQUEST", f"{field}: {first['msg']}") from exc
    except BacktestError as exc:
        raise _fail(exc.code, str(exc)) from exc

    with Progress(
        TextColumn("backtest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=err.is_terminal,
    ) as bars:
        task = bars.add_task("bars", total=0)

        def progress(done: int, total: int) -> None:
            bars.update(task, completed=done, total=total)

        try:
            result = run_backtest(
                request,
                store=BarStore(settings.data_dir / "bars", cache_bytes=0),  # one read
                registry=registry,
                paper_fill_model=settings.paper_fill_model(),
                specs=_specs(request.symbols),
                progress=progress,
            )
        except BacktestError as exc:
            raise _fail(exc.code, str(exc)) from exc
        except Exception as exc:
            trace = getattr(exc, "trace", None)
            if trace:
                err.print(trace)
            code = getattr(exc, "code", "BACKTEST_FAILED")
            raise _fail(code, str(exc)) from exc
    if report is not None:
        from quantdesk.backtest.tearsheet import write_report

        write_report(result, report)
    if as_json:
        sys.stdout.write(json.dumps(result.summary(), indent=2, default=str) + "\n")
        return
    out.print(
        f"[bold]{strategy}[/] on {', '.join(request.symbols)} {interval} "
        f"{request.start}..{request.end}: {result.bars:,} bars in {result.seconds:.3f}s, "
        f"{len(result.fills)} fills, {len(result.round_trips)} round trips, "
        f"final equity {result.final_equity} (costs {request.costs}, charges "
        f"{result.charges['total']})"
    )
    out.print(_metrics_table(result))
    if report is not None:
        out.print(f"report: {report}")


def _date(text: str, flag: str) -> date:
    from quantdesk.backtest.runner import BacktestError

    if not text:
        raise BacktestError("BACKTEST_BAD_REQUEST", f"{flag} is required (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BacktestError(
            "BACKTEST_BAD_REQUEST", f"{flag} must be a date as YYYY-MM-DD, got {text!r}"
        ) from None


def _specs(symbols: list[str]) -> dict[str, Any]:
    """Tick and lot sizes of the shipped universe (others default to a 0.05 tick, lot 1)."""
    from quantdesk.market.instruments import demo_universe

    rows = {str(r.ref): r.spec for r in demo_universe()}
    return {s: rows[s] for s in symbols if s in rows}


@backtest_app.command("sweep")
def backtest_sweep(
    strategy: StrategyArg,
    symbols: SymbolsOpt = "",
    interval: IntervalOpt = "1d",
    start: StartOpt = "",
    end: EndOpt = "",
    grid_values: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            help="Grid values k=v1,v2,... (repeatable): every combination runs. With --random, "
            "a list of choices to draw from.",
        ),
    ] = None,
    random_points: Annotated[
        int | None,
        typer.Option("--random", help="Random search: N distinct points drawn with --seed."),
    ] = None,
    ranges: Annotated[
        list[str] | None,
        typer.Option(
            "--range",
            help="Random-search space k=low:high (int when both are ints), k=low:high:log, or "
            "choices k=a,b,c (repeatable; needs --random).",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Fixed strategy parameter k=v for every point (repeatable)."),
    ] = None,
    objective: Annotated[
        str,
        typer.Option(
            help="What ranks the points, higher first: sharpe|total_return|cagr|calmar|sortino."
        ),
    ] = "sharpe",
    processes: Annotated[
        int | None, typer.Option(help="Local worker processes (default: one per core).")
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            help="Run on a Dask cluster instead: the scheduler address, e.g. tcp://127.0.0.1:8786 "
            "(needs quantdesk\\[distributed]; workers must see the same data directory).",
        ),
    ] = None,
    walk_forward: Annotated[
        bool,
        typer.Option(
            "--walk-forward",
            help="Walk-forward optimisation: sweep each train window, run its best point on the "
            "next test window; rolls by the test window (default 12 train / 3 test months).",
        ),
    ] = False,
    train_months: Annotated[int | None, typer.Option(help="Walk-forward train window.")] = None,
    test_months: Annotated[int | None, typer.Option(help="Walk-forward test window.")] = None,
    train_sessions: Annotated[
        int | None, typer.Option(help="Walk-forward train window in sessions (not months).")
    ] = None,
    test_sessions: Annotated[
        int | None, typer.Option(help="Walk-forward test window in sessions (not months).")
    ] = None,
    cash: Annotated[str, typer.Option(help="Starting cash (INR) of every run.")] = "1000000",
    costs: Annotated[str, typer.Option(help="india | bps:N")] = "india",
    slippage_bps: Annotated[
        str | None,
        typer.Option(help="Slippage in basis points (default: the paper broker's setting)."),
    ] = None,
    engine: Annotated[str, typer.Option(help="event | vector (faster, if the strategy has it)")] = (
        "event"
    ),
    seed: Annotated[
        int, typer.Option(help="Seed of the random search and of random slippage.")
    ] = 0,
    top: Annotated[int, typer.Option(help="Ranked points shown in the table.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Backtest STRATEGY over a grid or random sample of parameters, in parallel, and rank them.

    Examples:

    quantdesk backtest sweep sma_cross --symbols NSE:INFY --start 2021-01-01 --end 2025-09-30
    --grid fast=5,10,20 --grid slow=50,100 --costs bps:3

    quantdesk backtest sweep sma_cross --symbols NSE:INFY --start 2021-01-01 --end 2025-09-30
    --random 50 --range fast=5:50 --range slow=60:200 --objective calmar --seed 7

    quantdesk backtest sweep sma_cross --symbols NSE:INFY --start 2021-01-01 --end 2025-09-30
    --grid fast=5,10,20 --grid slow=50,100 --walk-forward --train-months 12 --test-months 6

    Points the strategy's parameters refuse (say fast >= slow) are skipped and counted. Runs go
    to local worker processes (--processes) or to a Dask cluster (--dask); the results do not
    depend on which, nor on how many. With --walk-forward the table shows each fold's best
    point with its in-sample (train) and out-of-sample (test) objective, then the test windows'
    combined result and the in-sample vs out-of-sample gap.
    """
    from pydantic import ValidationError
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from quantdesk.backtest import sweep as sw
    from quantdesk.backtest.runner import BacktestError, BacktestRequest, parse_param

    settings = _settings()
    registry = _registry(settings)
    try:
        request = BacktestRequest.model_validate(
            {
                "strategy": strategy,
                "symbols": [s for s in symbols.split(",") if s.strip()],
                "interval": interval,
                "start": _date(start, "--start"),
                "end": _date(end, "--end"),
                "params": dict(parse_param(p) for p in (param or [])),
                "cash": cash,
                "costs": costs,
                "slippage_bps": slippage_bps,
                "engine": engine,
                "seed": seed,
            }
        )
        sw.check_objective(objective)
        space = dict(sw.parse_grid_option(g) for g in (grid_values or []))
        if random_points is not None:
            space.update(sw.parse_range_option(r) for r in (ranges or []))
            points = sw.random_points(space, random_points, seed=seed)
        elif ranges:
            raise BacktestError("SWEEP_BAD_SPACE", "--range needs --random N (points to draw)")
        elif space:
            points = sw.grid(space)
        else:
            raise BacktestError(
                "SWEEP_BAD_SPACE", "give --grid k=v1,v2,... or --random N with --range k=low:high"
            )
        windows = None
        by_sessions = train_sessions is not None or test_sessions is not None
        by_months = train_months is not None or test_months is not None
        if (by_sessions or by_months) and not walk_forward:
            raise BacktestError(
                "SWEEP_BAD_WINDOWS", "--train-*/--test-* windows need --walk-forward"
            )
        if walk_forward and by_sessions and by_months:
            raise BacktestError(
                "SWEEP_BAD_WINDOWS", "give the windows in months or in sessions, not both"
            )
        if walk_forward and by_sessions:
            if train_sessions is None or test_sessions is None:
                raise BacktestError(
                    "SWEEP_BAD_WINDOWS", "give both --train-sessions and --test-sessions"
                )
            windows = sw.session_windows(
                sw.exchange_sessions(request.symbols[0], request.start, request.end),
                train_sessions=train_sessions,
                test_sessions=test_sessions,
            )
        elif walk_forward:
            windows = sw.month_windows(
                request.start,
                request.end,
                train_months=train_months or 12,
                test_months=test_months or 3,
            )
        if dask and processes is not None:
            raise BacktestError("SWEEP_BAD_EXECUTOR", "choose --dask or --processes, not both")
        executor: sw.Executor = sw.DaskExecutor(dask) if dask else sw.LocalExecutor(processes)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise _fail("BACKTEST_BAD_REQUEST", f"{field}: {first['msg']}") from exc
    except BacktestError as exc:
        raise _fail(exc.code, str(exc)) from exc

    workspace = sw.Workspace.from_settings(settings, _specs(request.symbols))
    result: sw.SweepResult | sw.WalkForwardResult
    try:
        with Progress(
            TextColumn("walk-forward" if windows else "sweep"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=err.is_terminal,
        ) as bars:
            task = bars.add_task("points", total=None)

            def progress(done: int, total: int) -> None:
                bars.update(task, completed=done, total=total)

            common: dict[str, Any] = {
                "workspace": workspace,
                "objective": objective,
                "executor": executor,
                "progress": progress,
                "registry": registry,
            }
            if windows:
                result = sw.walk_forward(request, points, windows, **common)
            else:
                result = sw.run_sweep(request, points, **common)
    except BacktestError as exc:
        raise _fail(exc.code, str(exc)) from exc
    finally:
        executor.close()

    if as_json:
        kind = "walk_forward" if windows else "sweep"
        doc = {"kind": kind, **result.to_json()}
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        return
    where = f"{result.points} points on {result.executor} in {result.seconds:.1f}s"
    if result.refused:
        where += f"; {len(result.refused)} refused (e.g. {result.refused[0]['reason']})"
    if isinstance(result, sw.SweepResult):
        out.print(sw.sweep_table(result, top))
        best = result.best or {}
        out.print(
            f"best: [bold]{' '.join(f'{k}={v}' for k, v in best.get('point', {}).items())}[/] "
            f"{objective} {best.get('objective')} ({where})"
        )
        for failed in result.failed[:3]:
            err.print(f"[yellow]point failed[/] {failed['point']}: {failed['error']}")
        return
    out.print(sw.walk_forward_table(result))
    for line in sw.walk_forward_summary(result):
        out.print(line)
    out.print(where)
