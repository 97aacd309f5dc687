"""A sweep on a real two-worker Dask cluster gives exactly the local process pool's results."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from quantdesk.backtest.runner import BacktestRequest
from quantdesk.backtest.sweep import (
    DaskExecutor,
    LocalExecutor,
    Workspace,
    grid,
    month_windows,
    run_sweep,
    walk_forward,
)
from quantdesk.cli import app
from tests.unit.test_sweep import write_daily_bars

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes with one thread each, started and closed by this test module."""
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as local:
        yield local


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("dask-sweep")
    write_daily_bars(root / "bars")
    return Workspace(bars_dir=str(root / "bars"), strategy_dir=str(root / "strategies"))


def request() -> BacktestRequest:
    return BacktestRequest(
        strategy="sma_cross",
        symbols=["NSE:INFY", "NSE:TCS"],
        start=date(2021, 1, 1),
        end=date(2023, 12, 31),
        costs="bps:3",
    )


def without_timing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_dask_and_local_executors_give_the_same_sweep_and_walk_forward(
    cluster: Any, workspace: Workspace
) -> None:
    points = grid({"fast": [5, 10, 30], "slow": [30, 60, 120]})
    windows = month_windows(date(2021, 1, 1), date(2023, 12, 31), train_months=12, test_months=6)
    with DaskExecutor(cluster.scheduler_address) as dask:
        assert len(dask.client.scheduler_info()["workers"]) == 2
        remote = run_sweep(request(), points, workspace=workspace, executor=dask)
        remote_wf = walk_forward(request(), points, windows, workspace=workspace, executor=dask)
        # Both worker processes ran points (each opened the bar store once).
        opened = dask.client.run(
            lambda: len(__import__("quantdesk.backtest.sweep", fromlist=["_OPEN"])._OPEN)
        )
        assert len(opened) == 2 and all(n == 1 for n in opened.values())
    with LocalExecutor(2) as local:
        here = run_sweep(request(), points, workspace=workspace, executor=local)
        here_wf = walk_forward(request(), points, windows, workspace=workspace, executor=local)
    assert remote.executor.startswith("dask (tcp://127.0.0.1:")
    assert len(remote.rows) == 8 and len(remote.refused) == 1
    assert without_timing(remote.rows) == without_timing(here.rows)
    assert remote_wf.folds == here_wf.folds
    assert remote_wf.overall == here_wf.overall


def test_the_sweep_command_runs_on_a_dask_scheduler(
    cluster: Any, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTDESK_DATA_DIR", str(Path(workspace.bars_dir).parent))
    common = [
        "backtest", "sweep", "sma_cross", "--symbols", "NSE:INFY,NSE:TCS", "--start", "2021-01-01",
        "--end", "2023-12-31", "--costs", "bps:3", "--grid", "fast=5,10", "--grid", "slow=30,60",
        "--json",
    ]  # fmt: skip
    on_dask = CliRunner().invoke(app, [*common, "--dask", cluster.scheduler_address])
    assert on_dask.exit_code == 0, on_dask.stderr
    locally = CliRunner().invoke(app, [*common, "--processes", "1"])
    assert locally.exit_code == 0, locally.stderr
    remote, here = json.loads(on_dask.stdout), json.loads(locally.stdout)
    assert remote["executor"].startswith("dask") and here["executor"] == "local (1 process)"
    assert without_timing(remote["rows"]) == without_timing(here["rows"])
