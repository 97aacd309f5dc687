"""Parameter sweeps and walk-forward optimisation: many backtests of one strategy, in parallel.

A sweep runs the same :class:`~quantdesk.backtest.runner.BacktestRequest` once per parameter
point (a grid's cartesian product, or seeded random samples of ranges) and ranks the points by an
objective metric. Walk-forward optimisation splits the date range into rolling folds, sweeps each
fold's train window, runs the best point on the following test window, and reports in-sample
against out-of-sample numbers.

Where the backtests run (an *executor*):

* :class:`LocalExecutor`: a :class:`concurrent.futures.ProcessPoolExecutor` on this machine.
* :class:`DaskExecutor`: a ``dask.distributed`` cluster, for more cores than one machine has.

Both submit the same top-level function, :func:`evaluate_point`, with a small
:class:`PointTask` (the request as JSON and a :class:`Workspace` of plain strings). Each worker
process opens its own :class:`~quantdesk.market.store.BarStore` and strategy
:class:`~quantdesk.strategy.registry.Registry` from those paths (once, then cached), so no bars,
strategies or results bigger than a few hundred bytes cross a process boundary. Every point runs
with the request's seed, and ties rank by the point's position in the list, so results do not
depend on the executor, the number of processes or the order in which points finish.

Why Dask distributed and not Ray: it installs as a few pure-Python wheels (``pip install
'quantdesk[distributed]'``) where Ray ships a large native runtime; it needs nothing but a
scheduler address; and ``dask scheduler`` / ``dask worker tcp://host:8786`` are commands people
already run. Sweeps need only "run this function on these small inputs", which is the core of
both. Workers must have quantdesk installed and see the bar store and the strategy directory at
the same paths as the machine that submits (a shared or copied ``QUANTDESK_DATA_DIR``).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from quantdesk.core.fills import FillModel
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.strategy.base import InvalidParams, Strategy
from quantdesk.strategy.registry import Registry, UnknownStrategy

from .runner import BacktestError, BacktestRequest

if TYPE_CHECKING:
    from rich.table import Table

    from quantdesk.market.store import BarStore
    from quantdesk.settings import Settings

__all__ = [
    "METRICS",
    "OBJECTIVES",
    "DaskExecutor",
    "Executor",
    "LocalExecutor",
    "PointTask",
    "SweepResult",
    "WalkForwardResult",
    "Window",
    "Workspace",
    "check_objective",
    "check_points",
    "evaluate_point",
    "exchange_sessions",
    "grid",
    "month_windows",
    "parse_grid_option",
    "parse_range_option",
    "random_points",
    "rank_rows",
    "run_sweep",
    "session_windows",
    "sweep_table",
    "walk_forward",
    "walk_forward_summary",
    "walk_forward_table",
]

Objective = Literal["sharpe", "total_return", "cagr", "calmar", "sortino"]
OBJECTIVES: tuple[str, ...] = ("sharpe", "total_return", "cagr", "calmar", "sortino")
# The metrics a point's result carries (all of them "higher is better" except the drawdown).
METRICS: tuple[str, ...] = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "annual_volatility",
    "win_rate",
    "trades",
    "exposure",
)
PERIODS_PER_YEAR = 252
Progress = Callable[[int, int], None]


# -- parameter spaces ------------------------------------------------------------------------


def grid(space: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the values (the cartesian product), in the order given: the last
    key varies fastest. ``{}`` gives one empty point (the base parameters)."""
    for key, values in space.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise BacktestError(
                "SWEEP_BAD_SPACE", f"grid values of {key!r} must be a non-empty list"
            )
    keys = list(space)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*space.values())]


Sampler = Callable[[np.random.Generator], Any]


def _sampler(key: str, spec: Any) -> Sampler:
    if isinstance(spec, list | tuple):
        if not spec:
            raise BacktestError("SWEEP_BAD_SPACE", f"the choices of {key!r} are empty")
        choices = list(spec)
        return lambda rng: choices[int(rng.integers(len(choices)))]
    if not isinstance(spec, Mapping):
        raise BacktestError(
            "SWEEP_BAD_SPACE",
            f"{key!r} must be a list of choices or a range {{low, high, type, log}}, got {spec!r}",
        )
    unknown = set(spec) - {"low", "high", "type", "log"}
    if unknown or "low" not in spec or "high" not in spec:
        raise BacktestError(
            "SWEEP_BAD_SPACE",
            f"the range of {key!r} needs low and high (and optionally type int|float, log); "
            f"got {dict(spec)!r}",
        )
    low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
        raise BacktestError("SWEEP_BAD_SPACE", f"low and high of {key!r} must be numbers")
    kind = spec.get("type") or (
        "int" if isinstance(low, int) and isinstance(high, int) else "float"
    )
    if kind not in ("int", "float"):
        raise BacktestError("SWEEP_BAD_SPACE", f"type of {key!r} must be int or float")
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise BacktestError("SWEEP_BAD_SPACE", f"the range of {key!r} needs low <= high")
    if log and low <= 0:
        raise BacktestError("SWEEP_BAD_SPACE", f"a log range of {key!r} needs low > 0")
    if kind == "int":
        lo, hi = math.ceil(low), math.floor(high)
        if lo > hi:
            raise BacktestError("SWEEP_BAD_SPACE", f"the range of {key!r} holds no integer")
        if log:
            a, b = math.log(lo), math.log(hi + 1)
            return lambda rng: min(hi, int(math.exp(rng.uniform(a, b))))
        return lambda rng: int(rng.integers(lo, hi + 1))
    if log:
        a, b = math.log(low), math.log(high)
        return lambda rng: float(f"{math.exp(rng.uniform(a, b)):.6g}")
    return lambda rng: float(f"{rng.uniform(low, high):.6g}")


def random_points(space: Mapping[str, Any], n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` distinct points drawn from ``space`` with a generator seeded by ``seed``.

    Each key maps to a list of choices or a range ``{"low": 5, "high": 50, "type": "int"}``
    (``type`` defaults to int when both bounds are ints, else float; ``"log": true`` draws
    log-uniformly). Int ranges include ``high``; floats are rounded to 6 significant digits.
    A space with fewer than ``n`` distinct points gives as many as were found.
    """
    if n < 1:
        raise BacktestError("SWEEP_BAD_SPACE", f"the number of random points must be >= 1, not {n}")
    if not space:
        raise BacktestError("SWEEP_BAD_SPACE", "a random search needs at least one range")
    samplers = [(key, _sampler(key, spec)) for key, spec in space.items()]
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    points: list[dict[str, Any]] = []
    for _ in range(max(100, 50 * n)):
        point = {key: draw(rng) for key, draw in samplers}
        fingerprint = json.dumps(point, sort_keys=True, default=str)
        if fingerprint in seen:
            continue
        seen.add(fingerprint)
        points.append(point)
        if len(points) == n:
            break
    return points


def check_points(
    cls: type[Strategy], base_params: Mapping[str, Any], points: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split points into those the strategy's ``Params`` accept (merged over ``base_params``)
    and those it refuses, each refused one as ``{"point", "reason"}``."""
    valid: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for point in points:
        try:
            cls.parse_params({**base_params, **point})
        except InvalidParams as exc:
            refused.append({"point": dict(point), "reason": str(exc)})
            continue
        valid.append(dict(point))
    return valid, refused


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()


def parse_grid_option(text: str) -> tuple[str, list[Any]]:
    """``--grid fast=5,10,20`` -> ``("fast", [5, 10, 20])`` (values as JSON when they parse)."""
    key, _, raw = text.partition("=")
    items = [_value(v) for v in raw.split(",") if v.strip()]
    if not key.strip() or not items:
        raise BacktestError("SWEEP_BAD_SPACE", f"a grid must look like k=v1,v2,..., got {text!r}")
    return key.strip(), items


def parse_range_option(text: str) -> tuple[str, Any]:
    """``--range fast=5:50`` (int range), ``x=0.5:2.5``, ``x=0.001:1:log`` or choices ``m=a,b``."""
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or not raw.strip():
        raise BacktestError(
            "SWEEP_BAD_SPACE", f"a range must look like k=low:high or k=a,b,c, got {text!r}"
        )
    if ":" not in raw:
        return key, [_value(v) for v in raw.split(",") if v.strip()]
    parts = raw.split(":")
    log = len(parts) == 3 and parts[2].strip() == "log"
    if len(parts) != 2 and not log:
        raise BacktestError(
            "SWEEP_BAD_SPACE", f"a range must look like k=low:high[:log], got {text!r}"
        )
    low, high = _value(parts[0]), _value(parts[1])
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
        raise BacktestError("SWEEP_BAD_SPACE", f"the bounds of {text!r} must be numbers")
    spec: dict[str, Any] = {"low": low, "high": high}
    if log:
        spec["log"] = True
    return key, spec


# -- what a worker gets and returns ------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    """Where a worker process finds bars and user strategies, as plain paths, and the run
    settings that are not in the request (the paper fill model, instrument specs)."""

    bars_dir: str
    strategy_dir: str | None = None
    fill_model: FillModel | None = None
    specs: tuple[tuple[str, InstrumentSpec], ...] = ()

    @classmethod
    def from_settings(
        cls, settings: Settings, specs: Mapping[str, InstrumentSpec] | None = None
    ) -> Workspace:
        return cls(
            bars_dir=str((settings.data_dir / "bars").resolve()),
            strategy_dir=str(settings.resolved_strategy_dir.resolve()),
            fill_model=settings.paper_fill_model(),
            specs=tuple(sorted((specs or {}).items())),
        )


@dataclass(frozen=True)
class PointTask:
    """One backtest to run: the request as JSON. ``curve`` asks for the per-session equity."""

    workspace: Workspace
    request: dict[str, Any]
    curve: bool = False


# A worker's store and registry, opened once per process and workspace (a Dask worker may run
# several points at once in threads: the lock keeps user strategy files imported once).
_OPEN: dict[tuple[str, str | None], tuple[BarStore, Registry]] = {}
_OPENING = threading.Lock()


def _open(ws: Workspace) -> tuple[BarStore, Registry]:
    key = (ws.bars_dir, ws.strategy_dir)
    with _OPENING:
        if key not in _OPEN:
            from quantdesk.market.store import BarStore

            _OPEN[key] = (
                BarStore(ws.bars_dir, cache_bytes=0),
                Registry(Path(ws.strategy_dir) if ws.strategy_dir else None),
            )
        return _OPEN[key]


def evaluate_point(task: PointTask) -> dict[str, Any]:
    """Run one backtest in a worker; return a small JSON-friendly dict (never raises for a
    request that cannot run: ``{"ok": False, "error": {"code", "message"}}``)."""
    from .runner import run_backtest

    started = time.perf_counter()
    try:
        store, registry = _open(task.workspace)
        request = BacktestRequest.model_validate(task.request)
        result = run_backtest(
            request,
            store=store,
            registry=registry,
            paper_fill_model=task.workspace.fill_model,
            specs=dict(task.workspace.specs),
            run_id="sweep",
        )
    except BacktestError as exc:
        return {"ok": False, "error": {"code": exc.code, "message": str(exc)}}
    except Exception as exc:  # a strategy's bug fails its point, not the sweep
        code = getattr(exc, "code", "BACKTEST_FAILED")
        return {"ok": False, "error": {"code": code, "message": f"{type(exc).__name__}: {exc}"}}
    out: dict[str, Any] = {
        "ok": True,
        "params": result.run["params"],
        "metrics": {k: result.metrics.get(k) for k in METRICS},
        "final_equity": str(result.final_equity),
        "fills": len(result.fills),
        "round_trips": len(result.round_trips),
        "bars": result.bars,
        "seconds": round(time.perf_counter() - started, 6),
    }
    if task.curve:
        out["curve"] = _session_curve(result.equity, request.symbols[0])
    return out


def _session_curve(equity: Any, symbol: str) -> list[list[Any]]:
    """The equity at each session's last bar, as ``[[iso date, float], ...]``."""
    from quantdesk.market.calendars import exchange_of, get_calendar

    if len(equity) == 0:
        return []
    tz = get_calendar(exchange_of(symbol)).tz
    local = equity.index.tz_convert(tz)
    daily = equity.groupby(local.date).last()
    return [[d.isoformat(), float(v)] for d, v in daily.items()]


# -- executors ---------------------------------------------------------------------------------


class Executor(Protocol):
    """Runs :func:`evaluate_point` over tasks; results come back in the tasks' order."""

    description: str

    def map(self, tasks: Sequence[PointTask], done: Callable[[], None]) -> list[dict[str, Any]]:
        """Evaluate every task, calling ``done()`` as each one finishes."""
        ...

    def close(self) -> None: ...


def _cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's core count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LocalExecutor:
    """A pool of ``processes`` worker processes on this machine (default: one per core).

    Workers start with ``spawn`` (a fresh interpreter; nothing of the parent's threads, open
    files or memory is inherited) and are kept for the executor's life, so a walk-forward's
    folds reuse them. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, processes: int | None = None) -> None:
        if processes is not None and processes < 1:
            raise BacktestError("SWEEP_BAD_PROCESSES", f"processes must be >= 1, not {processes}")
        self.processes = processes or _cores()
        self.description = f"local ({self.processes} process{'es' if self.processes > 1 else ''})"
        self._pool: ProcessPoolExecutor | None = None

    def map(self, tasks: Sequence[PointTask], done: Callable[[], None]) -> list[dict[str, Any]]:
        if self._pool is None:
            import multiprocessing

            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("spawn")
            )
        futures = {self._pool.submit(evaluate_point, t): i for i, t in enumerate(tasks)}
        results: list[dict[str, Any]] = [{} for _ in tasks]
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                done()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DaskExecutor:
    """Tasks on a ``dask.distributed`` cluster: a scheduler address (``tcp://host:8786``) or a
    ``distributed.Client`` you already have (then :meth:`close` leaves it open)."""

    def __init__(self, scheduler: Any, *, timeout: float = 10.0) -> None:
        try:
            from distributed import Client
        except ImportError as exc:
            raise BacktestError(
                "SWEEP_DASK_MISSING",
                "the Dask executor needs dask[distributed]: pip install 'quantdesk[distributed]'",
            ) from exc
        if isinstance(scheduler, str):
            try:
                self.client = Client(scheduler, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise BacktestError(
                    "SWEEP_DASK_UNREACHABLE",
                    f"cannot reach the Dask scheduler at {scheduler}: {exc}",
                ) from exc
            self._owned = True
        else:
            self.client = scheduler
            self._owned = False
        address = getattr(self.client.scheduler, "address", scheduler)
        self.description = f"dask ({address})"

    def map(self, tasks: Sequence[PointTask], done: Callable[[], None]) -> list[dict[str, Any]]:
        from distributed import as_completed as dask_completed

        if not tasks:
            return []
        futures = self.client.map(evaluate_point, list(tasks), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[dict[str, Any]] = [{} for _ in tasks]
        try:
            for future in dask_completed(futures, loop=self.client.loop):
                results[index[future.key]] = future.result()
                done()
        except BaseException:
            self.client.cancel(futures)
            raise
        return results

    def close(self) -> None:
        if self._owned:
            self.client.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def _executing(executor: Executor | None) -> Iterator[Executor]:
    """The given executor (left open), or a default local pool closed afterwards."""
    if executor is not None:
        yield executor
        return
    with LocalExecutor() as local:
        yield local


def _run(
    executor: Executor,
    tasks: Sequence[PointTask],
    progress: Progress | None,
    done0: int,
    total: int,
) -> list[dict[str, Any]]:
    count = done0

    def done() -> None:
        nonlocal count
        count += 1
        if progress is not None:
            progress(count, total)

    return executor.map(tasks, done)


# -- sweeps ------------------------------------------------------------------------------------


def check_objective(objective: str) -> None:
    """Raise :class:`BacktestError` unless ``objective`` is one of :data:`OBJECTIVES`."""
    if objective not in OBJECTIVES:
        raise BacktestError(
            "SWEEP_BAD_OBJECTIVE",
            f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}",
        )


def _strategy(base: BacktestRequest, registry: Registry) -> type[Strategy]:
    try:
        return registry.get(base.strategy)
    except UnknownStrategy as exc:
        raise BacktestError(exc.code, str(exc), {"known": exc.known}) from exc


def _precheck(base: BacktestRequest, ws: Workspace, registry: Registry) -> None:
    """Fail before starting workers when the request cannot run at all (unknown symbol, no
    bars in the range, an engine the strategy lacks), if this machine sees the bar store."""
    if not Path(ws.bars_dir).is_dir():
        return
    from quantdesk.market.store import BarStore

    from .runner import prepare

    prepare(
        base,
        store=BarStore(ws.bars_dir, cache_bytes=0),
        registry=registry,
        paper_fill_model=ws.fill_model,
        specs=dict(ws.specs),
    )


def _request(base: BacktestRequest, point: Mapping[str, Any], **dates: date) -> dict[str, Any]:
    doc = base.model_dump(mode="json")
    doc["params"] = {**base.params, **point}
    doc.update({k: v.isoformat() for k, v in dates.items()})
    return doc


def _row(point: Mapping[str, Any], result: Mapping[str, Any], objective: str) -> dict[str, Any]:
    return {
        "point": dict(point),
        "params": result["params"],
        "objective": result["metrics"].get(objective),
        "metrics": result["metrics"],
        "final_equity": result["final_equity"],
        "fills": result["fills"],
        "round_trips": result["round_trips"],
        "seconds": result["seconds"],
    }


def rank_rows(rows: Sequence[dict[str, Any]], objective: str) -> list[dict[str, Any]]:
    """Best first by ``metrics[objective]`` (higher is better; None last); ties keep the
    input order. Each row gets its 1-based ``rank``."""
    check_objective(objective)

    def key(pair: tuple[int, dict[str, Any]]) -> tuple[bool, float, int]:
        i, row = pair
        value = row["metrics"].get(objective)
        return (value is None, -(value or 0.0), i)

    ranked = [dict(row) for _, row in sorted(enumerate(rows), key=key)]
    for n, row in enumerate(ranked, 1):
        row["rank"] = n
    return ranked


@dataclass
class SweepResult:
    """A finished sweep: ``rows`` ranked best first; refused and failed points listed."""

    strategy: str
    objective: str
    executor: str
    request: dict[str, Any]
    points: int
    rows: list[dict[str, Any]]
    refused: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def best(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "objective": self.objective,
            "executor": self.executor,
            "request": self.request,
            "points": self.points,
            "evaluated": len(self.rows),
            "refused": self.refused,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "best": self.best,
            "rows": self.rows,
        }


def _split(
    points: Sequence[Mapping[str, Any]], results: Sequence[dict[str, Any]], objective: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for point, result in zip(points, results, strict=True):
        if result.get("ok"):
            rows.append(_row(point, result, objective))
        else:
            failed.append({"point": dict(point), "error": result.get("error")})
    return rank_rows(rows, objective), failed


def _all_failed(failed: Sequence[dict[str, Any]]) -> BacktestError:
    first = failed[0]["error"] or {}
    return BacktestError(
        first.get("code", "SWEEP_ALL_FAILED"),
        f"every point failed; the first: {first.get('message', 'unknown error')}",
    )


def _valid_points(
    base: BacktestRequest,
    points: Sequence[Mapping[str, Any]],
    workspace: Workspace,
    registry: Registry | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    registry = registry or Registry(
        Path(workspace.strategy_dir) if workspace.strategy_dir else None
    )
    cls = _strategy(base, registry)
    valid, refused = check_points(cls, base.params, points)
    if not valid:
        why = f" (the first: {refused[0]['reason']})" if refused else ""
        raise BacktestError(
            "SWEEP_NO_POINTS",
            f"no point to run: {cls.name}'s parameters refuse all {len(points)} points{why}",
        )
    _precheck(base.model_copy(update={"params": {**base.params, **valid[0]}}), workspace, registry)
    return valid, refused


def run_sweep(
    base: BacktestRequest,
    points: Sequence[Mapping[str, Any]],
    *,
    workspace: Workspace,
    objective: str = "sharpe",
    executor: Executor | None = None,
    progress: Progress | None = None,
    registry: Registry | None = None,
) -> SweepResult:
    """Backtest ``base`` once per point (its params overridden by the point), rank by
    ``objective``. Points the strategy refuses are skipped and listed in ``refused``; points
    whose run fails are listed in ``failed`` (if all fail, the first error is raised).
    ``executor`` defaults to a :class:`LocalExecutor` with a process per core."""
    check_objective(objective)
    started = time.perf_counter()
    valid, refused = _valid_points(base, points, workspace, registry)
    tasks = [PointTask(workspace, _request(base, p)) for p in valid]
    with _executing(executor) as ex:
        results = _run(ex, tasks, progress, 0, len(tasks))
        description = ex.description
    rows, failed = _split(valid, results, objective)
    if not rows:
        raise _all_failed(failed)
    return SweepResult(
        strategy=base.strategy,
        objective=objective,
        executor=description,
        request=base.model_dump(mode="json"),
        points=len(points),
        rows=rows,
        refused=refused,
        failed=failed,
        seconds=time.perf_counter() - started,
    )


# -- walk-forward windows ----------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One walk-forward fold: train on [train_start, train_end], test on [test_start,
    test_end] (dates inclusive; the test window starts the day after the train window)."""

    train_start: date
    train_end: date
    test_start: date
    test_end: date

    def as_json(self) -> dict[str, dict[str, str]]:
        return {
            "train": {"start": self.train_start.isoformat(), "end": self.train_end.isoformat()},
            "test": {"start": self.test_start.isoformat(), "end": self.test_end.isoformat()},
        }


def _add_months(d: date, months: int) -> date:
    year, month = divmod(d.month - 1 + months, 12)
    year += d.year
    month += 1
    days = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(d.day, days))


def _too_short(what: str) -> BacktestError:
    return BacktestError(
        "SWEEP_BAD_WINDOWS", f"the range is too short for one train window plus a test ({what})"
    )


def month_windows(start: date, end: date, *, train_months: int, test_months: int) -> list[Window]:
    """Folds by calendar months from ``start``: train ``train_months``, test the next
    ``test_months``, then roll forward by ``test_months``. The test windows are contiguous and
    never overlap their train window; the last one is cut at ``end``."""
    if train_months < 1 or test_months < 1:
        raise BacktestError("SWEEP_BAD_WINDOWS", "train and test months must be >= 1")
    if end < start:
        raise BacktestError("SWEEP_BAD_WINDOWS", f"start {start} is after end {end}")
    folds: list[Window] = []
    for i in itertools.count():
        test_start = _add_months(start, i * test_months + train_months)
        if test_start > end:
            break
        test_end = _add_months(start, (i + 1) * test_months + train_months) - timedelta(days=1)
        folds.append(
            Window(
                train_start=_add_months(start, i * test_months),
                train_end=test_start - timedelta(days=1),
                test_start=test_start,
                test_end=min(test_end, end),
            )
        )
    if not folds:
        raise _too_short(f"{train_months} + {test_months} months from {start} to {end}")
    return folds


def session_windows(
    sessions: Sequence[date], *, train_sessions: int, test_sessions: int
) -> list[Window]:
    """Folds by session count over the ordered ``sessions``: train ``train_sessions``, test
    the next ``test_sessions``, roll by ``test_sessions``; the last test window may be shorter."""
    if train_sessions < 1 or test_sessions < 1:
        raise BacktestError("SWEEP_BAD_WINDOWS", "train and test sessions must be >= 1")
    folds: list[Window] = []
    first_test = train_sessions
    while first_test < len(sessions):
        train = sessions[first_test - train_sessions : first_test]
        test = sessions[first_test : first_test + test_sessions]
        folds.append(Window(train[0], train[-1], test[0], test[-1]))
        first_test += test_sessions
    if not folds:
        raise _too_short(f"{train_sessions} + {test_sessions} sessions, {len(sessions)} in range")
    return folds


def exchange_sessions(symbol: str, start: date, end: date) -> list[date]:
    """The session dates of ``symbol``'s exchange in [start, end]."""
    from quantdesk.market.calendars import exchange_of, get_calendar

    calendar = get_calendar(exchange_of(symbol))
    lo = max(start, calendar.first_session)
    hi = min(end, calendar.last_session)
    return [s.date for s in calendar.sessions_in_range(lo, hi)] if lo <= hi else []


# -- walk-forward optimisation -----------------------------------------------------------------


@dataclass
class WalkForwardResult:
    """Per-fold best points with in- and out-of-sample numbers, and the stitched test run."""

    strategy: str
    objective: str
    executor: str
    request: dict[str, Any]
    points: int
    folds: list[dict[str, Any]]
    overall: dict[str, Any]
    refused: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "objective": self.objective,
            "executor": self.executor,
            "request": self.request,
            "points": self.points,
            "refused": self.refused,
            "seconds": round(self.seconds, 3),
            "folds": self.folds,
            "overall": self.overall,
        }


def _mean(values: Sequence[float | None]) -> float | None:
    real = [v for v in values if v is not None]
    return round(sum(real) / len(real), 6) if real else None


def _stitched(curves: Sequence[tuple[float, list[list[Any]]]]) -> dict[str, Any]:
    """Daily-return statistics of the test windows run back to back (each window's first day
    measured from its starting cash, as the per-run metrics do)."""
    returns: list[float] = []
    for cash, curve in curves:
        values = np.array([cash] + [v for _, v in curve], dtype=float)
        returns.extend((values[1:] / values[:-1] - 1.0).tolist())
    r = np.array(returns)
    n = len(r)
    if n == 0:
        return {
            "sessions": 0,
            "total_return": None,
            "cagr": None,
            "sharpe": None,
            "max_drawdown": None,
        }
    growth = np.cumprod(1.0 + r)
    total = float(growth[-1] - 1.0)
    std = float(r.std(ddof=1)) if n > 1 else 0.0
    peak = np.maximum.accumulate(np.r_[1.0, growth])
    drawdown = float((np.r_[1.0, growth] / peak - 1.0).min())
    cagr = float((1.0 + total) ** (PERIODS_PER_YEAR / n) - 1.0) if n > 1 and total > -1 else None
    return {
        "sessions": n,
        "total_return": round(total, 6),
        "cagr": None if cagr is None or not math.isfinite(cagr) else round(cagr, 6),
        "sharpe": round(float(r.mean()) / std * math.sqrt(PERIODS_PER_YEAR), 4) if std else None,
        "max_drawdown": round(drawdown, 6),
    }


def walk_forward(
    base: BacktestRequest,
    points: Sequence[Mapping[str, Any]],
    windows: Sequence[Window],
    *,
    workspace: Workspace,
    objective: str = "sharpe",
    executor: Executor | None = None,
    progress: Progress | None = None,
    registry: Registry | None = None,
) -> WalkForwardResult:
    """Walk-forward optimisation: for each window, sweep ``points`` over the train window, take
    the best by ``objective`` and run it on the test window. Every test run starts flat with
    ``base.cash`` (indicators warm up inside the window, as in any backtest of that range).

    ``overall`` holds the out-of-sample result: ``total_return`` compounded across the folds,
    ``mean_sharpe`` of the folds, the stitched daily statistics of the test windows, and the
    in-sample vs out-of-sample objective (``gap`` = in-sample mean minus out-of-sample mean;
    ``efficiency`` = out-of-sample mean / in-sample mean)."""
    check_objective(objective)
    if not windows:
        raise BacktestError("SWEEP_BAD_WINDOWS", "walk-forward needs at least one window")
    started = time.perf_counter()
    valid, refused = _valid_points(base, points, workspace, registry)
    total = len(windows) * len(valid) + len(windows)
    train_tasks = [
        PointTask(workspace, _request(base, p, start=w.train_start, end=w.train_end))
        for w in windows
        for p in valid
    ]
    with _executing(executor) as ex:
        train_results = _run(ex, train_tasks, progress, 0, total)
        per_fold = [
            _split(valid, train_results[i * len(valid) : (i + 1) * len(valid)], objective)
            for i in range(len(windows))
        ]
        tested = [i for i, (rows, _) in enumerate(per_fold) if rows]
        test_tasks = [
            PointTask(
                workspace,
                _request(
                    base,
                    per_fold[i][0][0]["point"],
                    start=windows[i].test_start,
                    end=windows[i].test_end,
                ),
                curve=True,
            )
            for i in tested
        ]
        if progress is not None and len(tested) < len(windows):
            progress(total - len(test_tasks), total)
        test_results = dict(
            zip(tested, _run(ex, test_tasks, progress, total - len(test_tasks), total), strict=True)
        )
        description = ex.description
    folds = [
        _fold(n, windows[n], per_fold[n][0], per_fold[n][1], test_results.get(n), objective)
        for n in range(len(windows))
    ]
    if not any(f["out_of_sample"] for f in folds):
        errors = [f["error"] for f in folds if f["error"]]
        raise BacktestError(
            "SWEEP_ALL_FAILED",
            f"no fold ran out of sample; the first error: {errors[0] if errors else 'unknown'}",
        )
    cash = float(base.cash)
    curves = [
        (cash, test_results[n]["curve"])
        for n in range(len(windows))
        if n in test_results and test_results[n].get("ok")
    ]
    return WalkForwardResult(
        strategy=base.strategy,
        objective=objective,
        executor=description,
        request=base.model_dump(mode="json"),
        points=len(points),
        folds=folds,
        overall=_overall(folds, curves),
        refused=refused,
        seconds=time.perf_counter() - started,
    )


def _fold(
    n: int,
    window: Window,
    rows: list[dict[str, Any]],
    failed: list[dict[str, Any]],
    test: dict[str, Any] | None,
    objective: str,
) -> dict[str, Any]:
    fold: dict[str, Any] = {
        "fold": n + 1,
        **window.as_json(),
        "evaluated": len(rows),
        "failed": len(failed),
        "best": None,
        "in_sample": None,
        "out_of_sample": None,
        "gap": None,
        "error": None,
    }
    if not rows:
        fold["error"] = (failed[0]["error"] or {}).get("message") if failed else "no point ran"
        return fold
    best = rows[0]
    fold["best"] = {"point": best["point"], "params": best["params"]}
    fold["in_sample"] = {"objective": best["objective"], "metrics": best["metrics"]}
    if test is None or not test.get("ok"):
        fold["error"] = ((test or {}).get("error") or {}).get("message", "the test run failed")
        return fold
    oos = test["metrics"].get(objective)
    fold["out_of_sample"] = {
        "objective": oos,
        "metrics": test["metrics"],
        "final_equity": test["final_equity"],
        "fills": test["fills"],
        "round_trips": test["round_trips"],
    }
    if best["objective"] is not None and oos is not None:
        fold["gap"] = round(best["objective"] - oos, 6)
    return fold


def _overall(
    folds: Sequence[dict[str, Any]], curves: Sequence[tuple[float, list[list[Any]]]]
) -> dict[str, Any]:
    tested = [f for f in folds if f["out_of_sample"]]
    sharpes = [f["out_of_sample"]["metrics"].get("sharpe") for f in tested]
    growth = 1.0
    for f in tested:
        growth *= 1.0 + (f["out_of_sample"]["metrics"].get("total_return") or 0.0)
    pairs = [
        (f["in_sample"]["objective"], f["out_of_sample"]["objective"])
        for f in tested
        if f["in_sample"]["objective"] is not None and f["out_of_sample"]["objective"] is not None
    ]
    is_mean = _mean([a for a, _ in pairs])
    oos_mean = _mean([b for _, b in pairs])
    return {
        "folds": len(folds),
        "folds_tested": len(tested),
        "total_return": round(growth - 1.0, 6),
        "mean_sharpe": _mean(sharpes),
        "sharpe_folds": sum(v is not None for v in sharpes),
        "mean_total_return": _mean(
            [f["out_of_sample"]["metrics"].get("total_return") for f in tested]
        ),
        "worst_max_drawdown": min(
            (
                d
                for f in tested
                if (d := f["out_of_sample"]["metrics"].get("max_drawdown")) is not None
            ),
            default=None,
        ),
        "stitched": _stitched(curves),
        "in_sample_objective": is_mean,
        "out_of_sample_objective": oos_mean,
        "gap": None if is_mean is None or oos_mean is None else round(is_mean - oos_mean, 6),
        "efficiency": (
            round(oos_mean / is_mean, 4)
            if is_mean is not None and oos_mean is not None and is_mean > 0
            else None
        ),
    }


# -- tables for the command line ---------------------------------------------------------------


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value * 100:.2f}%" if pct else f"{value:.3f}"
    return str(value)


def _point_text(point: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items()) or "(base)"


_COLUMNS = (
    ("total_return", "total return", True),
    ("cagr", "cagr", True),
    ("sharpe", "sharpe", False),
    ("sortino", "sortino", False),
    ("calmar", "calmar", False),
    ("max_drawdown", "max dd", True),
)


def sweep_table(result: SweepResult, top: int = 20) -> Table:
    """The ``top`` ranked points as a rich table (the objective's column marked ``*``)."""
    from rich.table import Table

    table = Table(
        "#",
        "params",
        *(f"{title} *" if key == result.objective else title for key, title, _ in _COLUMNS),
        "final equity",
        "fills",
        "seconds",
        title=(
            f"{result.strategy}: {len(result.rows)} of {result.points} points ranked by "
            f"{result.objective} ({len(result.refused)} refused, {len(result.failed)} failed)"
        ),
    )
    for row in result.rows[:top]:
        m = row["metrics"]
        table.add_row(
            str(row["rank"]),
            _point_text(row["point"]),
            *(_fmt(m.get(key), pct) for key, _, pct in _COLUMNS),
            row["final_equity"],
            str(row["fills"]),
            f"{row['seconds']:.2f}",
        )
    return table


def walk_forward_table(result: WalkForwardResult) -> Table:
    """One row per fold: windows, best point, in- and out-of-sample objective."""
    from rich.table import Column, Table

    objective = result.objective
    pct = objective in ("total_return", "cagr")
    extra = [(k, t, p) for k, t, p in _COLUMNS if k in ("total_return", "sharpe", "max_drawdown")]
    extra = [c for c in extra if c[0] != objective]
    table = Table(
        "fold",
        Column("train", no_wrap=True),
        Column("test", no_wrap=True),
        "best params",
        f"IS {objective}",
        f"OOS {objective}",
        *(f"OOS {title.split()[-1]}" for _, title, _ in extra),
        "OOS fills",
        title=f"{result.strategy}: walk-forward, {len(result.folds)} folds by {objective}",
    )
    for f in result.folds:
        oos = f["out_of_sample"] or {}
        m = oos.get("metrics") or {}
        table.add_row(
            str(f["fold"]),
            f"{f['train']['start']}..{f['train']['end']}",
            f"{f['test']['start']}..{f['test']['end']}",
            _point_text(f["best"]["point"]) if f["best"] else f"[red]{f['error']}[/]",
            _fmt((f["in_sample"] or {}).get("objective"), pct),
            _fmt(oos.get("objective"), pct),
            *(_fmt(m.get(key), p) for key, _, p in extra),
            str(oos.get("fills", "-")),
        )
    return table


def walk_forward_summary(result: WalkForwardResult) -> list[str]:
    """The overall out-of-sample result and the in-sample vs out-of-sample gap, in words."""
    o, s = result.overall, result.overall["stitched"]
    pct = result.objective in ("total_return", "cagr")
    return [
        f"out of sample ({o['folds_tested']} of {o['folds']} folds tested): compounded return "
        f"{_fmt(o['total_return'], True)}, mean Sharpe {_fmt(o['mean_sharpe'])} "
        f"({o['sharpe_folds']} folds with a Sharpe); the test windows stitched "
        f"({s['sessions']} sessions): Sharpe {_fmt(s['sharpe'])}, CAGR {_fmt(s['cagr'], True)}, "
        f"max drawdown {_fmt(s['max_drawdown'], True)}",
        f"{result.objective}: in-sample mean {_fmt(o['in_sample_objective'], pct)}, "
        f"out-of-sample mean {_fmt(o['out_of_sample_objective'], pct)}, gap "
        f"{_fmt(o['gap'], pct)}, efficiency (OOS / IS) {_fmt(o['efficiency'])}",
    ]
