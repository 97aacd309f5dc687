"""`quantdesk strategies list` and `quantdesk backtest run`: output contracts and bad input."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quantdesk.cli import app
from quantdesk.market.store import BarStore
from quantdesk.strategy.registry import Registry

from .conftest import daily_frame, sessions

runner = CliRunner()
SYM = "NSE:INFY"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QUANTDESK_DATA_DIR", str(tmp_path))
    days = sessions(date(2025, 1, 6), 120)
    closes = [100 + 10 * ((k // 15) % 2) + k * 0.1 for k in range(len(days))]
    rows = [(c, c + 1, c - 1, c) for c in closes]
    BarStore(tmp_path / "bars").write(SYM, daily_frame(days, rows), "1d")
    return tmp_path


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_strategies_list_json_has_the_parameter_schemas(data_dir: Path) -> None:
    code, out, _ = _run("strategies", "list", "--json")
    assert code == 0
    doc = json.loads(out)
    by_name = {s["name"]: s for s in doc["strategies"]}
    assert {"sma_cross", "rsi_mean_reversion", "donchian_breakout", "momentum_rotation"} <= set(
        by_name
    )
    fast = by_name["sma_cross"]["params_schema"]["properties"]["fast"]
    assert fast["default"] == 10 and fast["minimum"] == 1
    assert by_name["sma_cross"]["vectorized"] is True
    assert by_name["momentum_rotation"]["vectorized"] is False


def test_a_broken_user_strategy_is_reported_with_file_and_line(data_dir: Path) -> None:
    folder = data_dir / "strategies"
    folder.mkdir()
    (folder / "good.py").write_text(
        "from quantdesk.strategy import Strategy\n\nclass Mine(Strategy):\n    name = 'mine'\n"
    )
    (folder / "bad.py").write_text("x = 1\n\ndef broken(:\n    pass\n")
    (folder / "raises.py").write_text("import math\n\nmath.sqrt(-1)\n")
    registry = Registry(folder)
    assert "mine" in registry.names()
    errors = {Path(e.file).name: e for e in registry.errors}
    assert errors["bad.py"].line == 3
    assert errors["raises.py"].line == 3 and "ValueError" in errors["raises.py"].message
    code, out, _ = _run("strategies", "list", "--json")
    assert code == 0
    doc = json.loads(out)
    assert any(s["name"] == "mine" and s["source"] == "user" for s in doc["strategies"])
    assert {Path(e["file"]).name for e in doc["errors"]} == {"bad.py", "raises.py"}


def test_backtest_run_json_document(data_dir: Path) -> None:
    code, out, _ = _run(
        "backtest",
        "run",
        "sma_cross",
        "--symbols",
        SYM,
        "--interval",
        "1d",
        "--start",
        "2025-01-01",
        "--end",
        "2025-12-31",
        "--param",
        "fast=3",
        "--param",
        "slow=8",
        "--costs",
        "bps:3",
        "--json",
    )
    assert code == 0, out
    doc = json.loads(out)
    for key in ("run_id", "fills", "round_trips", "final_equity", "bars", "seconds", "metrics"):
        assert key in doc
    assert doc["bars"] == 120 and doc["fills"] > 2
    assert isinstance(doc["final_equity"], str)
    assert doc["params"] == {"fast": 3, "slow": 8}
    assert doc["metrics"]["trades"] == doc["round_trips"]


def test_backtest_run_prints_the_metrics_table_and_writes_a_report(
    data_dir: Path, tmp_path: Path
) -> None:
    report = tmp_path / "r.html"
    code, out, _ = _run(
        "backtest",
        "run",
        "rsi_mean_reversion",
        "--symbols",
        SYM,
        "--start",
        "2025-01-01",
        "--end",
        "2025-12-31",
        "--costs",
        "bps:0",
        "--report",
        str(report),
    )
    assert code == 0, out
    assert "sharpe" in out and "max_drawdown" in out
    assert "rsi_mean_reversion" in report.read_text()


@pytest.mark.parametrize(
    ("args", "code_text"),
    [
        (["nope", "--symbols", SYM], "STRATEGY_NOT_FOUND"),
        (["sma_cross", "--symbols", SYM, "--param", "fast=0"], "STRATEGY_BAD_PARAMS"),
        (["sma_cross", "--symbols", SYM, "--param", "speed=3"], "STRATEGY_BAD_PARAMS"),
        (
            ["sma_cross", "--symbols", SYM, "--param", "fast=60", "--param", "slow=50"],
            "fast must be shorter than slow",
        ),
        (["sma_cross", "--symbols", "NSE:NOPE"], "BACKTEST_UNKNOWN_SYMBOL"),
        (["sma_cross", "--symbols", "INFY"], "EXCHANGE:SYMBOL"),
        (["sma_cross", "--symbols", SYM, "--costs", "free"], "india"),
        (["sma_cross", "--symbols", SYM, "--interval", "2m"], "interval"),
        (["sma_cross", "--symbols", SYM, "--engine", "vector", "--slippage-bps", "-1"], "slippage"),
        (["momentum_rotation", "--symbols", SYM, "--engine", "vector"], "vectorized"),
    ],
)
def test_bad_input_exits_non_zero_naming_the_problem(
    data_dir: Path, args: list[str], code_text: str
) -> None:
    code, _, err = _run("backtest", "run", *args, "--start", "2025-01-01", "--end", "2025-06-30")
    assert code == 2
    assert code_text in err.replace("\n", " ")
    assert not (data_dir / "backtests").exists()


@pytest.mark.parametrize(
    ("start", "end", "text"),
    [
        ("2025-06-30", "2025-01-01", "inverted"),
        ("2019-01-01", "2019-12-31", "BACKTEST_NO_DATA"),
        ("2025-13-01", "2025-12-31", "YYYY-MM-DD"),
        ("", "2025-12-31", "--start is required"),
    ],
)
def test_bad_ranges_are_refused(data_dir: Path, start: str, end: str, text: str) -> None:
    code, _, err = _run(
        "backtest", "run", "sma_cross", "--symbols", SYM, "--start", start, "--end", end
    )
    assert code == 2
    assert text in err.replace("\n", " ")


def test_india_costs_before_the_schedule_are_refused_clearly(data_dir: Path) -> None:
    days = sessions(date(2023, 1, 2), 30)
    rows = [(100.0 + k, 101.0 + k, 99.0 + k, 100.5 + k) for k in range(30)]
    BarStore(data_dir / "bars").write("NSE:OLD", daily_frame(days, rows), "1d")
    code, _, err = _run(
        "backtest",
        "run",
        "sma_cross",
        "--symbols",
        "NSE:OLD",
        "--start",
        "2023-01-01",
        "--end",
        "2023-03-31",
        "--param",
        "fast=2",
        "--param",
        "slow=3",
        "--costs",
        "india",
    )
    assert code == 2
    assert "BACKTEST_COSTS_UNAVAILABLE" in err.replace("\n", " ")
    assert "bps:" in err.replace("\n", " ")
