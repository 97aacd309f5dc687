"""`quantdesk charges` as a user runs it: a table or JSON, and a clear non-zero exit on bad input.
No database or server is needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

QD = [sys.executable, "-m", "quantdesk.cli", "charges"]
EXAMPLE_3 = [
    "--segment",
    "equity_intraday",
    "--exchange",
    "BSE",
    "--buy",
    "250.35",
    "--sell",
    "248.10",
    "--quantity",
    "500",
    "--date",
    "2025-06-02",
]


def run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTDESK_")}
    env.update(QUANTDESK_DATA_DIR=str(tmp_path / "var"), COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [*QD, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )


def option(args: list[str], name: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(name) + 1] = value
    return out


def test_prints_every_component_of_worked_example_3_as_a_table(tmp_path: Path) -> None:
    r = run(EXAMPLE_3, tmp_path)
    assert r.returncode == 0, r.stderr
    for label, amount in [
        ("Brokerage", "40.00"),
        ("STT", "31.00"),
        ("Exchange transaction charge", "9.35"),
        ("SEBI fee", "0.25"),
        ("Stamp duty", "4.00"),
        ("GST", "8.93"),
        ("Total charges", "93.53"),
        ("Gross P&L", "-1125.00"),
        ("Net P&L", "-1218.53"),
        ("Points to break even", "0.19"),
    ]:
        line = next((ln for ln in r.stdout.splitlines() if f" {label} " in ln), "")
        assert amount in line, (label, r.stdout)
    assert "zerodha" in r.stdout and "2024-10-01" in r.stdout


def test_json_output_carries_decimal_strings(tmp_path: Path) -> None:
    args = option(option(EXAMPLE_3, "--segment", "equity_delivery"), "--exchange", "nse")
    args = option(option(option(args, "--buy", "1000"), "--sell", "1100.00"), "--quantity", "100")
    r = run([*args, "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["exchange"] == "NSE"
    assert (body["buy_price"], body["stt"], body["dp_charge"], body["total"]) == (
        "1000.00",
        "210.00",
        "15.34",
        "248.20",
    )
    assert (body["net_pnl"], body["breakeven_points"]) == ("9751.80", "2.48")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("--quantity", "0", "CHARGES_BAD_QUANTITY"),
        ("--quantity", "-3", "CHARGES_BAD_QUANTITY"),
        ("--buy", "NaN", "CHARGES_BAD_PRICE"),
        ("--sell", "abc", "CHARGES_BAD_PRICE"),
        ("--segment", "futures", "--segment"),
    ],
)
def test_bad_input_exits_non_zero_with_a_clear_message(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    r = run(option(EXAMPLE_3, name, value), tmp_path)
    assert r.returncode == 2
    assert message in r.stderr
    assert r.stdout == ""
