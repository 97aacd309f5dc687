"""The HTML tearsheet of a :class:`~quantdesk.backtest.result.BacktestResult`."""

from __future__ import annotations

from pathlib import Path

from .report import render_report
from .result import BacktestResult

__all__ = ["report_html", "write_report"]


def report_html(result: BacktestResult) -> str:
    run = result.run
    title = f"{run.get('strategy')} on {', '.join(run.get('symbols') or [])}"
    return render_report(
        title=title,
        run=run,
        metrics=result.metrics,
        equity=result.equity,
        benchmark_equity=result.benchmark,
        round_trips=result.round_trips,
        charges=result.charges,
    )


def write_report(result: BacktestResult, path: Path) -> None:
    path.write_text(report_html(result), encoding="utf-8")
