"""Sweeps and walk-forward optimisation: parameter spaces, refused points, ranking, window
arithmetic, and results that do not depend on the number of worker processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from quantdesk.backtest.runner import BacktestError, BacktestRequest
from quantdesk.backtest.sweep import (
    LocalExecutor,
    Window,
    Workspace,
    check_points,
    exchange_sessions,
    grid,
    month_windows,
    parse_grid_option,
    parse_range_option,
    random_points,
    rank_rows,
    run_sweep,
    session_windows,
    walk_forward,
)
from quantdesk.cli import app
from quantdesk.market.store import BarStore
from quantdesk.strategy.builtin import SmaCross

IST = ZoneInfo("Asia/Kolkata")
SYMBOLS = ("NSE:INFY", "NSE:TCS")
START, END = date(2021, 1, 1), date(2023, 12, 31)


def write_daily_bars(bars_dir: Path, symbols: tuple[str, ...] = SYMBOLS) -> None:
    """Seeded random-walk daily bars (session open 09:15 IST) for ``symbols``, 2021..2023."""
    days = exchange_sessions(symbols[0], START, END)
    store = BarStore(bars_dir)
    for k, symbol in enumerate(symbols):
        rng = np.random.default_rng(k + 11)
        close = np.round(500 * np.exp(np.cumsum(rng.normal(0.0004, 0.016, len(days)))), 1)
        open_ = np.round(np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.004, len(days))), 1)
        frame = pd.DataFrame(
            {
                "timestamp": [datetime.combine(d, time(9, 15), IST) for d in days],
                "open": open_,
                "high": np.maximum(open_, close) + 1.0,
                "low": np.minimum(open_, close) - 1.0,
                "close": close,
                "volume": 1_000_000,
            }
        )
        store.write(symbol, frame, "1d")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("sweep")
    write_daily_bars(root / "bars")
    return Workspace(bars_dir=str(root / "bars"), strategy_dir=str(root / "strategies"))


@pytest.fixture(scope="module")
def one() -> Iterator[LocalExecutor]:
    with LocalExecutor(1) as executor:
        yield executor


@pytest.fixture(scope="module")
def two() -> Iterator[LocalExecutor]:
    with LocalExecutor(2) as executor:
        yield executor


def base(**changes: Any) -> BacktestRequest:
    fields: dict[str, Any] = {
        "strategy": "sma_cross",
        "symbols": list(SYMBOLS[:1]),
        "start": START,
        "end": END,
        "costs": "bps:3",
    }
    return BacktestRequest.model_validate({**fields, **changes})


def without_timing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


# -- parameter spaces ------------------------------------------------------------------------


def test_grid_is_the_cartesian_product_with_the_last_key_fastest() -> None:
    points = grid({"fast": [5, 10, 20], "slow": [50, 100]})
    assert points == [
        {"fast": 5, "slow": 50},
        {"fast": 5, "slow": 100},
        {"fast": 10, "slow": 50},
        {"fast": 10, "slow": 100},
        {"fast": 20, "slow": 50},
        {"fast": 20, "slow": 100},
    ]
    assert grid({}) == [{}]


def test_grid_refuses_an_empty_or_scalar_value_list() -> None:
    with pytest.raises(BacktestError) as empty:
        grid({"fast": []})
    assert empty.value.code == "SWEEP_BAD_SPACE" and "fast" in str(empty.value)
    with pytest.raises(BacktestError):
        grid({"fast": "5,10"})  # type: ignore[dict-item]


def test_random_points_are_seeded_distinct_and_inside_their_ranges() -> None:
    space = {
        "fast": {"low": 5, "high": 50, "type": "int"},
        "stop": {"low": 0.01, "high": 0.05},
        "scale": {"low": 1e-3, "high": 1.0, "log": True},
        "mode": ["a", "b"],
    }
    first = random_points(space, 40, seed=7)
    assert first == random_points(space, 40, seed=7)
    assert first != random_points(space, 40, seed=8)
    assert len(first) == 40
    assert len({json.dumps(p, sort_keys=True) for p in first}) == 40
    for p in first:
        assert isinstance(p["fast"], int) and 5 <= p["fast"] <= 50
        assert isinstance(p["stop"], float) and 0.01 <= p["stop"] <= 0.05
        assert 1e-3 <= p["scale"] <= 1.0
        assert p["mode"] in ("a", "b")
    # Both ends of an int range are reachable.
    ints = {p["x"] for p in random_points({"x": {"low": 1, "high": 3}}, 3, seed=0)}
    assert ints == {1, 2, 3}


def test_a_random_search_of_a_small_space_gives_what_it_holds() -> None:
    points = random_points({"x": [1, 2], "y": {"low": 0, "high": 1}}, 10, seed=1)
    assert sorted((p["x"], p["y"]) for p in points) == [(1, 0), (1, 1), (2, 0), (2, 1)]


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"x": {"low": 5, "high": 1}}, "low <= high"),
        ({"x": {"low": 0, "high": 1, "log": True}}, "log range"),
        ({"x": {"low": 1}}, "needs low and high"),
        ({"x": 3}, "list of choices or a range"),
        ({"x": {"low": 0.2, "high": 0.8, "type": "int"}}, "no integer"),
    ],
)
def test_a_bad_random_space_is_refused_with_its_key(space: dict[str, Any], message: str) -> None:
    with pytest.raises(BacktestError) as caught:
        random_points(space, 5)
    assert caught.value.code == "SWEEP_BAD_SPACE"
    assert message in str(caught.value) and "'x'" in str(caught.value)


def test_command_line_grid_and_range_options_parse() -> None:
    assert parse_grid_option("fast=5,10,20") == ("fast", [5, 10, 20])
    assert parse_grid_option("mode=fast, slow") == ("mode", ["fast", "slow"])
    assert parse_range_option("fast=5:50") == ("fast", {"low": 5, "high": 50})
    assert parse_range_option("x=0.001:1:log") == ("x", {"low": 0.001, "high": 1, "log": True})
    assert parse_range_option("mode=a,b") == ("mode", ["a", "b"])
    for bad in ("fast", "=1,2"):
        with pytest.raises(BacktestError):
            parse_grid_option(bad)
    for bad in ("fast=5:a", "fast=1:2:3", "fast="):
        with pytest.raises(BacktestError):
            parse_range_option(bad)


def test_points_the_strategy_refuses_are_split_off_with_the_reason() -> None:
    points = grid({"fast": [5, 50, 100], "slow": [50, 100]})
    valid, refused = check_points(SmaCross, {}, points)
    assert valid == [{"fast": 5, "slow": 50}, {"fast": 5, "slow": 100}, {"fast": 50, "slow": 100}]
    assert [r["point"] for r in refused] == [
        {"fast": 50, "slow": 50},
        {"fast": 100, "slow": 50},
        {"fast": 100, "slow": 100},
    ]
    assert all("fast must be shorter than slow" in r["reason"] for r in refused)
    # A fixed base parameter takes part in the check.
    valid, refused = check_points(SmaCross, {"slow": 20}, [{"fast": 10}, {"fast": 30}])
    assert valid == [{"fast": 10}] and len(refused) == 1


def test_rows_rank_by_the_objective_with_none_last_and_ties_in_input_order() -> None:
    def row(name: str, sharpe: float | None, total: float) -> dict[str, Any]:
        return {"point": {"n": name}, "metrics": {"sharpe": sharpe, "total_return": total}}

    rows = [row("a", 0.5, 0.1), row("b", None, 0.9), row("c", 1.2, -0.1), row("d", 0.5, 0.3)]
    by_sharpe = rank_rows(rows, "sharpe")
    assert [r["point"]["n"] for r in by_sharpe] == ["c", "a", "d", "b"]
    assert [r["rank"] for r in by_sharpe] == [1, 2, 3, 4]
    assert [r["point"]["n"] for r in rank_rows(rows, "total_return")] == ["b", "d", "a", "c"]
    with pytest.raises(BacktestError) as caught:
        rank_rows(rows, "max_drawdown")
    assert caught.value.code == "SWEEP_BAD_OBJECTIVE"


# -- walk-forward windows --------------------------------------------------------------------


def assert_rolling(windows: list[Window], start: date, end: date) -> None:
    for w in windows:
        assert w.train_start <= w.train_end < w.test_start <= w.test_end
        assert w.test_start == w.train_end + timedelta(days=1)  # no gap, no overlap
    for a, b in pairwise(windows):
        assert b.test_start == a.test_end + timedelta(days=1)  # test windows contiguous
        assert b.train_start > a.train_start
    assert windows[0].train_start == start
    assert windows[-1].test_end <= end


def test_month_windows_train_then_test_and_roll_by_the_test_months() -> None:
    windows = month_windows(date(2021, 1, 1), date(2023, 12, 31), train_months=12, test_months=6)
    assert [(w.train_start, w.train_end, w.test_start, w.test_end) for w in windows[:2]] == [
        (date(2021, 1, 1), date(2021, 12, 31), date(2022, 1, 1), date(2022, 6, 30)),
        (date(2021, 7, 1), date(2022, 6, 30), date(2022, 7, 1), date(2022, 12, 31)),
    ]
    assert len(windows) == 4
    assert windows[-1].test_end == date(2023, 12, 31)
    assert_rolling(windows, date(2021, 1, 1), date(2023, 12, 31))


def test_the_last_month_window_is_cut_at_the_end_and_month_ends_clamp() -> None:
    windows = month_windows(date(2021, 1, 31), date(2022, 5, 10), train_months=12, test_months=2)
    assert windows[0].train_end == date(2022, 1, 30)
    assert windows[0].test_start == date(2022, 1, 31)
    assert windows[0].test_end == date(2022, 3, 30)  # 31 Mar is the next fold's first day
    assert windows[1].test_start == date(2022, 3, 31)
    assert windows[-1].test_end == date(2022, 5, 10)
    assert_rolling(windows, date(2021, 1, 31), date(2022, 5, 10))


def test_session_windows_count_sessions() -> None:
    days = exchange_sessions("NSE:INFY", date(2022, 1, 1), date(2022, 12, 31))
    windows = session_windows(days, train_sessions=100, test_sessions=40)
    assert len(windows) == 4  # 248 sessions: tests at 100, 140, 180, 220 (the last one 28 long)
    for k, w in enumerate(windows):
        lo = 40 * k
        assert (w.train_start, w.train_end) == (days[lo], days[lo + 99])
        assert w.test_start == days[lo + 100]
        assert w.test_end == days[min(lo + 139, len(days) - 1)]
    for a, b in pairwise(windows):
        assert days.index(b.test_start) == days.index(a.test_end) + 1


def test_a_range_too_short_for_one_fold_is_refused() -> None:
    with pytest.raises(BacktestError) as caught:
        month_windows(date(2022, 1, 1), date(2022, 6, 30), train_months=6, test_months=1)
    assert caught.value.code == "SWEEP_BAD_WINDOWS"
    with pytest.raises(BacktestError):
        session_windows([date(2022, 1, 3)] * 10, train_sessions=10, test_sessions=5)


# -- running sweeps --------------------------------------------------------------------------


def test_one_and_two_processes_give_identical_ranked_results(
    workspace: Workspace, one: LocalExecutor, two: LocalExecutor
) -> None:
    points = grid({"fast": [5, 10, 20, 40], "slow": [20, 50, 100]})
    request = base(symbols=list(SYMBOLS))
    serial = run_sweep(request, points, workspace=workspace, executor=one)
    parallel = run_sweep(request, points, workspace=workspace, executor=two)
    assert without_timing(serial.rows) == without_timing(parallel.rows)
    assert serial.best is not None and serial.best == serial.rows[0]
    assert len(serial.rows) == 10 and len(serial.refused) == 2 and serial.points == 12
    sharpes = [r["metrics"]["sharpe"] for r in serial.rows]
    assert sharpes == sorted(sharpes, reverse=True)
    assert all(r["fills"] > 0 for r in serial.rows)
    assert serial.executor == "local (1 process)" and parallel.executor == "local (2 processes)"


def test_a_point_equals_a_plain_backtest_of_its_parameters(
    workspace: Workspace, two: LocalExecutor
) -> None:
    from quantdesk.backtest.runner import run_backtest
    from quantdesk.strategy.registry import Registry

    result = run_sweep(
        base(),
        [{"fast": 10, "slow": 50}],
        workspace=workspace,
        objective="total_return",
        executor=two,
    )
    plain = run_backtest(
        base(params={"fast": 10, "slow": 50}),
        store=BarStore(workspace.bars_dir),
        registry=Registry(None),
    )
    row = result.rows[0]
    assert row["final_equity"] == str(plain.final_equity)
    assert row["fills"] == len(plain.fills)
    assert row["objective"] == plain.metrics["total_return"]


def test_a_failing_point_is_listed_and_the_rest_still_rank(
    tmp_path: Path, workspace: Workspace, two: LocalExecutor
) -> None:
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "fragile.py").write_text(
        "from quantdesk.strategy.base import Strategy, StrategyParams\n\n"
        "class P(StrategyParams):\n    x: int = 1\n\n"
        "class Fragile(Strategy):\n    name = 'fragile'\n    Params = P\n\n"
        "    def on_bar(self, ctx):\n"
        "        if self.params.x == 2:\n            raise RuntimeError('x=2 breaks')\n"
        "        if ctx.position(ctx.symbols[0]) == 0:\n"
        "            ctx.order_target_percent(ctx.symbols[0], 0.1 * self.params.x)\n"
    )
    ws = Workspace(bars_dir=workspace.bars_dir, strategy_dir=str(folder))
    result = run_sweep(base(strategy="fragile"), grid({"x": [1, 2, 3]}), workspace=ws, executor=two)
    assert sorted(r["point"]["x"] for r in result.rows) == [1, 3]
    assert [f["point"] for f in result.failed] == [{"x": 2}]
    assert "x=2 breaks" in result.failed[0]["error"]["message"]


def test_a_sweep_that_cannot_run_fails_before_the_workers_naming_the_problem(
    workspace: Workspace, two: LocalExecutor
) -> None:
    with pytest.raises(BacktestError) as unknown:
        run_sweep(base(symbols=["NSE:NOPE"]), [{"fast": 5}], workspace=workspace, executor=two)
    assert unknown.value.code == "BACKTEST_UNKNOWN_SYMBOL"
    with pytest.raises(BacktestError) as refused:
        run_sweep(base(), [{"fast": 60}, {"fast": 70}], workspace=workspace, executor=two)
    assert refused.value.code == "SWEEP_NO_POINTS" and "fast must be shorter" in str(refused.value)
    with pytest.raises(BacktestError) as strategy:
        run_sweep(base(strategy="nope"), [{}], workspace=workspace, executor=two)
    assert strategy.value.code == "STRATEGY_NOT_FOUND"


def test_walk_forward_picks_each_train_windows_best_and_reports_out_of_sample(
    workspace: Workspace, one: LocalExecutor, two: LocalExecutor
) -> None:
    points = grid({"fast": [5, 10, 20], "slow": [30, 60]})
    windows = month_windows(START, END, train_months=12, test_months=6)
    progress: list[tuple[int, int]] = []
    result = walk_forward(
        base(),
        points,
        windows,
        workspace=workspace,
        executor=two,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert progress[-1] == (len(windows) * 6 + len(windows),) * 2
    assert len(result.folds) == len(windows) == 4
    # Fold 2's best is the best of a plain sweep over its train window.
    w = windows[1]
    train = run_sweep(
        base(start=w.train_start, end=w.train_end), points, workspace=workspace, executor=two
    )
    fold = result.folds[1]
    assert train.best is not None
    assert fold["best"]["point"] == train.best["point"]
    assert fold["in_sample"]["objective"] == train.best["objective"]
    assert fold["train"] == {"start": "2021-07-01", "end": "2022-06-30"}
    assert fold["test"] == {"start": "2022-07-01", "end": "2022-12-31"}
    # Out of sample: the chosen point run on the test window alone.
    test = run_sweep(
        base(start=w.test_start, end=w.test_end),
        [fold["best"]["point"]],
        workspace=workspace,
        executor=two,
    )
    assert fold["out_of_sample"]["metrics"] == test.rows[0]["metrics"]
    if fold["out_of_sample"]["objective"] is not None:
        assert fold["gap"] == pytest.approx(
            fold["in_sample"]["objective"] - fold["out_of_sample"]["objective"]
        )
    overall = result.overall
    growth = np.prod([1 + f["out_of_sample"]["metrics"]["total_return"] for f in result.folds])
    assert overall["total_return"] == pytest.approx(growth - 1, abs=1e-6)
    assert overall["stitched"]["total_return"] == pytest.approx(growth - 1, abs=1e-5)
    assert overall["stitched"]["sessions"] == len(
        exchange_sessions("NSE:INFY", windows[0].test_start, END)
    )
    sharpes = [f["out_of_sample"]["metrics"]["sharpe"] for f in result.folds]
    real = [s for s in sharpes if s is not None]
    assert overall["mean_sharpe"] == pytest.approx(sum(real) / len(real), abs=1e-6)
    assert overall["gap"] == pytest.approx(
        overall["in_sample_objective"] - overall["out_of_sample_objective"], abs=1e-6
    )
    # Deterministic whatever the number of processes.
    again = walk_forward(base(), points, windows, workspace=workspace, executor=one)
    assert again.folds == result.folds and again.overall == result.overall


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def data_dir(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = Path(workspace.bars_dir).parent
    monkeypatch.setenv("QUANTDESK_DATA_DIR", str(root))
    return root


def sweep_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "sweep",
            "sma_cross",
            "--symbols",
            "NSE:INFY",
            "--start",
            "2021-01-01",
            "--end",
            "2023-12-31",
            "--costs",
            "bps:3",
            "--processes",
            "2",
            *args,
        ],
    )
    return result.exit_code, result.stdout, result.stderr


def test_the_sweep_command_prints_one_json_document(data_dir: Path) -> None:
    code, out, _ = sweep_cli(
        "--random", "6", "--range", "fast=5:30", "--range", "slow=20:80", "--seed", "3", "--json"
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["kind"] == "sweep" and doc["objective"] == "sharpe"
    assert doc["points"] == 6 and doc["evaluated"] + len(doc["refused"]) == 6
    assert doc["best"] == doc["rows"][0]
    assert doc["rows"][0]["point"].keys() == {"fast", "slow"}


def test_the_walk_forward_command_shows_folds_and_the_gap(data_dir: Path) -> None:
    code, out, _ = sweep_cli(
        "--grid", "fast=5,10", "--grid", "slow=30,60", "--walk-forward", "--train-months", "12",
        "--test-months", "12",
    )  # fmt: skip
    assert code == 0, out
    assert "walk-forward, 2 folds" in out
    assert "2022-01-01..2022-12-31" in out and "2023-01-01..2023-12-31" in out
    assert "in-sample mean" in out and "out-of-sample mean" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--grid", "fast=60,70"), "SWEEP_NO_POINTS", "fast must be shorter than slow"),
        (("--range", "fast=5:9"), "SWEEP_BAD_SPACE", "--range needs --random"),
        ((), "SWEEP_BAD_SPACE", "give --grid"),
        (("--grid", "fast=5", "--objective", "wins"), "SWEEP_BAD_OBJECTIVE", "sharpe"),
        (("--grid", "fast=5", "--test-months", "3"), "SWEEP_BAD_WINDOWS", "--walk-forward"),
        (("--grid", "fast=5", "--dask", "tcp://127.0.0.1:1"), "SWEEP_BAD_EXECUTOR", "not both"),
    ],
)
def test_bad_sweep_input_exits_2_naming_the_problem(
    data_dir: Path, args: tuple[str, ...], code: str, message: str
) -> None:
    exit_code, _, err = sweep_cli(*args)
    assert exit_code == 2
    assert code in err and message in " ".join(err.split())
