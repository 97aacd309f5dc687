"""The files of one backtest job, under ``<data_dir>/backtests/<id>/``.

- ``result.json``: fills, round trips, orders and charges (money as decimal strings);
- ``equity.parquet``: per bar ``time`` (bar end, UTC), ``equity``, ``benchmark`` (null without
  one) and ``drawdown`` (a fraction <= 0 from the running peak, the initial cash the first peak);
- ``report.html``: the tearsheet;
- while the job runs, ``progress.json`` (the worker process's pid and the fraction done, written
  by the worker) and ``cancel`` (written by whoever cancels the job; the worker checks for it).

Every file is written under a temporary name and renamed into place, so a reader never sees
half a file. The directory goes when its run's row goes (:func:`quantdesk.backtest.service.
delete_run`; the job runner also sweeps directories without a row when it starts).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from quantdesk.settings import Settings

if TYPE_CHECKING:
    from quantdesk.backtest.metrics import RoundTrip
    from quantdesk.backtest.result import BacktestResult

RUN_ID_PATTERN = r"^[0-9a-f]{32}$"
RUN_ID = re.compile(RUN_ID_PATTERN)
RESULT_FILE = "result.json"
EQUITY_FILE = "equity.parquet"
REPORT_FILE = "report.html"
PROGRESS_FILE = "progress.json"
CANCEL_FILE = "cancel"


def runs_root(settings: Settings) -> Path:
    """Where every job's directory lives (absolute: worker processes get it as text)."""
    return (settings.data_dir / "backtests").absolute()


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def decimal_text(value: Decimal | str) -> str:
    """A decimal as plain text, never with an exponent."""
    return format(Decimal(value), "f")


def jsonable(value: Any) -> Any:
    """``value`` made of JSON types only: decimals as text, times as ISO 8601, numpy scalars as
    Python numbers, and NaN or infinity as None (JSON has neither; PostgreSQL refuses them)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return decimal_text(value) if value.is_finite() else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def round_trip_json(t: RoundTrip) -> dict[str, Any]:
    return {
        "symbol": t.symbol,
        "side": t.side,
        "quantity": t.quantity,
        "entry_time": t.entry_time.isoformat(),
        "exit_time": t.exit_time.isoformat(),
        "entry_price": decimal_text(t.entry_price),
        "exit_price": decimal_text(t.exit_price),
        "gross_pnl": decimal_text(t.gross_pnl),
        "charges": decimal_text(t.charges),
        "net_pnl": decimal_text(t.net_pnl),
        "bars_held": t.bars_held,
    }


def result_document(result: BacktestResult) -> dict[str, Any]:
    fills = [
        {**f, "price": decimal_text(f["price"]), "fees": decimal_text(f["fees"])}
        for f in result.fills_table()
    ]
    return {
        "fills": fills,
        "round_trips": [round_trip_json(t) for t in result.round_trips],
        "orders": jsonable(result.orders),
        "charges": {k: decimal_text(v) for k, v in result.charges.items()},
    }


@dataclass(frozen=True, slots=True)
class Progress:
    pid: int
    fraction: float


@dataclass(frozen=True, slots=True)
class EquityPoint:
    time: datetime
    equity: float
    benchmark: float | None
    drawdown: float | None


def sample_indices(n: int, max_points: int) -> np.ndarray:
    """Of ``n`` points, the last of each of ``max_points`` equal buckets (all when they fit);
    the final point is always kept."""
    if n <= max_points:
        return np.arange(n)
    return np.ceil(np.arange(1, max_points + 1) * (n / max_points)).astype(np.int64) - 1


class RunFiles:
    """The directory of one job."""

    def __init__(self, root: Path, run_id: str) -> None:
        if not RUN_ID.match(run_id):
            raise ValueError(f"not a run id: {run_id!r}")
        self.dir = root / run_id

    def path(self, name: str) -> Path:
        return self.dir / name

    # -- results (written by the worker process) --------------------------------------------

    def write_result(self, result: BacktestResult) -> None:
        import pandas as pd

        from quantdesk.backtest.metrics import drawdown_series
        from quantdesk.backtest.tearsheet import report_html

        doc = result_document(result)
        atomic_write(self.path(RESULT_FILE), json.dumps(doc, separators=(",", ":")).encode())
        equity = result.equity
        drawdown = drawdown_series(equity, initial=float(result.run["cash"])).reindex(equity.index)
        benchmark = (
            result.benchmark.reindex(equity.index)
            if result.benchmark is not None
            else pd.Series(np.nan, index=equity.index)
        )
        frame = pd.DataFrame(
            {
                "time": equity.index,
                "equity": equity.to_numpy(dtype=float),
                "benchmark": benchmark.to_numpy(dtype=float),
                "drawdown": drawdown.to_numpy(dtype=float),
            }
        )
        tmp = self.path(f".{EQUITY_FILE}.{uuid.uuid4().hex}.tmp")
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, self.path(EQUITY_FILE))
        finally:
            tmp.unlink(missing_ok=True)
        atomic_write(self.path(REPORT_FILE), report_html(result).encode("utf-8"))

    # -- results (read by the API) -----------------------------------------------------------

    def has_result(self) -> bool:
        return all(self.path(n).is_file() for n in (RESULT_FILE, EQUITY_FILE, REPORT_FILE))

    def read_result(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.path(RESULT_FILE).read_bytes())
        return doc

    def read_equity(self, max_points: int) -> list[EquityPoint]:
        import pyarrow.parquet as pq

        table = pq.read_table(self.path(EQUITY_FILE))
        taken = table.take(sample_indices(table.num_rows, max_points)).to_pydict()
        return [
            EquityPoint(t, e, _finite(b), _finite(d))
            for t, e, b, d in zip(
                taken["time"],
                taken["equity"],
                taken["benchmark"],
                taken["drawdown"],
                strict=True,
            )
        ]

    def read_report(self) -> bytes:
        return self.path(REPORT_FILE).read_bytes()

    # -- while running -----------------------------------------------------------------------

    def write_progress(self, fraction: float) -> None:
        body = {"pid": os.getpid(), "progress": fraction}
        atomic_write(self.path(PROGRESS_FILE), json.dumps(body).encode())

    def read_progress(self) -> Progress | None:
        try:
            body = json.loads(self.path(PROGRESS_FILE).read_bytes())
            return Progress(int(body["pid"]), float(body["progress"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def request_cancel(self) -> None:
        atomic_write(self.path(CANCEL_FILE), b"")

    def cancel_requested(self) -> bool:
        return self.path(CANCEL_FILE).exists()

    def clear_runtime(self) -> None:
        """Remove the progress and cancel files (a job starting again, or finished)."""
        for name in (PROGRESS_FILE, CANCEL_FILE):
            self.path(name).unlink(missing_ok=True)

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.dir)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def run_dirs(root: Path) -> list[str]:
    """The run ids that have a directory under ``root``."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and RUN_ID.match(p.name))
