"""The HTML tearsheet: self-contained, escaped, every section and chart, large runs."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from quantdesk.backtest.metrics import RoundTrip, compute_metrics
from quantdesk.backtest.report import (
    MAX_PLOT_POINTS,
    MAX_TRADES_SHOWN,
    _downsample,
    format_inr,
    render_report,
)

SECTIONS = ("Run", "Performance", "Equity", "Drawdown", "Monthly returns", "Charges", "Trades")
CHARGES = {
    "brokerage": Decimal("40.00"),
    "stt": "1250",
    "exchange_charge": Decimal("32.45"),
    "sebi_fee": Decimal("1.00"),
    "stamp_duty": "150",
    "gst": Decimal("13.30"),
    "dp_charge": Decimal("15.93"),
    "total": Decimal("1234567.89"),
}
# Namespace names in the inline SVG: identifiers, never fetched.
XML_NAMESPACES = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink")


def _equity(n: int = 600, seed: int = 7) -> pd.Series:
    """``n`` 75-minute bars from 2024-01-01 09:15 IST, 5 a day, on weekdays."""
    days = pd.bdate_range("2024-01-01", periods=n // 5 + 1)
    stamps = [d + pd.Timedelta(hours=9, minutes=15 + 75 * k) for d in days for k in range(5)][:n]
    idx = pd.DatetimeIndex(stamps).tz_localize("Asia/Kolkata").tz_convert("UTC")
    steps = np.random.default_rng(seed).normal(0.0002, 0.004, n)
    return pd.Series(1_000_000 * np.exp(np.cumsum(steps)), index=idx)


def _trips(n: int) -> list[RoundTrip]:
    t0 = datetime(2024, 1, 2, 4, 0, tzinfo=UTC)
    return [
        RoundTrip(
            symbol="NSE:INFY",
            side="LONG" if i % 2 else "SHORT",
            quantity=10,
            entry_time=t0 + timedelta(days=i),
            exit_time=t0 + timedelta(days=i, hours=3),
            entry_price=Decimal("1500.00"),
            exit_price=Decimal("1512.50"),
            gross_pnl=Decimal("125.00"),
            charges=Decimal("3.10"),
            net_pnl=Decimal("121.90") if i % 3 else Decimal("-80.00"),
            bars_held=3,
        )
        for i in range(n)
    ]


def _render(**overrides: Any) -> str:
    equity = overrides.pop("equity", _equity())
    bench = overrides.pop("benchmark_equity", equity * 0.999 + 500.0)
    trips = overrides.pop("round_trips", _trips(6))
    bench_prices = None if bench is None else bench / 100.0
    if "metrics" in overrides:
        metrics = overrides.pop("metrics")
    else:
        metrics = compute_metrics(
            equity,
            initial_cash=1_000_000.0,
            round_trips=trips,
            exposure=0.4,
            turnover=3.2,
            benchmark=bench_prices,
        )
    args: dict[str, Any] = {
        "title": "sma_cross on NSE:INFY",
        "run": {
            "run_id": "r-1",
            "strategy": "sma_cross",
            "params": {"fast": 10, "slow": 50},
            "symbols": ["NSE:INFY"],
            "seed": 42,
        },
        "metrics": metrics,
        "equity": equity,
        "benchmark_equity": bench,
        "round_trips": trips,
        "charges": CHARGES,
    }
    args.update(overrides)
    return render_report(**args)


def _svgs(html: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", html, flags=re.S)


# --- structure ---------------------------------------------------------------------------------


def test_every_section_and_a_chart_each() -> None:
    html = _render()
    assert html.startswith("<!DOCTYPE html>")
    for heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in html, heading
    svgs = _svgs(html)
    assert len(svgs) == 3  # equity, drawdown, monthly heatmap
    for section in ("equity", "drawdown", "monthly"):
        body = html.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0]
        assert "<svg" in body, section
    assert "Benchmark (buy and hold)" in html  # the legend of the equity chart
    assert '<th class="num">Benchmark</th>' in html


def test_inline_svgs_are_xml_with_ids_unique_in_the_page() -> None:
    html = _render()
    for svg in _svgs(html):
        ET.fromstring(svg)  # well-formed after the id rewrite
    ids = Counter(re.findall(r'\bid="([^"]+)"', html))
    assert [i for i, n in ids.items() if n > 1] == []
    referenced = set(re.findall(r'(?:xlink:href="#|url\(#)([^")]+)', html))
    assert referenced
    assert referenced <= set(ids)


def test_self_contained_no_network_references() -> None:
    html = _render()
    lowered = html.lower()
    assert "<script" not in lowered
    assert "<link" not in lowered
    assert "@import" not in lowered
    assert "url(http" not in lowered
    assert not re.search(r"\b(src|href)\s*=\s*[\"']?(https?:)?//", lowered)
    stripped = html
    for ns in XML_NAMESPACES:
        stripped = stripped.replace(ns, "")
    assert re.findall(r"https?://\S+", stripped) == []
    assert "data:image/png" not in html  # the charts are vector


# --- escaping ----------------------------------------------------------------------------------


def test_title_and_run_values_are_escaped() -> None:
    html = _render(
        title="<script>alert('x')</script> & co",
        run={"params": {"name": "<img src=x onerror=alert(1)>"}, "<b>key</b>": "v"},
    )
    assert "<script" not in html
    assert "<img" not in html
    assert "<b>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co" in html
    assert html.count("&lt;script&gt;") == 2  # <title> and <h1>
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;b&gt;key&lt;/b&gt;" in html


def test_symbols_in_the_trade_list_are_escaped() -> None:
    evil = dataclasses.replace(_trips(1)[0], symbol="<i>NSE:EVIL</i>")
    html = _render(round_trips=[evil])
    assert "&lt;i&gt;NSE:EVIL&lt;/i&gt;" in html
    assert "<i>" not in html


# --- tables ------------------------------------------------------------------------------------


def test_charges_table_with_total() -> None:
    html = _render()
    body = html.split('<section id="charges">', 1)[1].split("</section>", 1)[0]
    assert 'class="total"' in body
    assert "₹12,34,567.89" in body  # the given total, Indian grouping
    assert "₹1,250.00" in body  # STT given as a string
    assert "Stamp duty" in body
    assert "GST" in body
    assert body.index("Brokerage") < body.index("Total")


def test_charges_total_is_summed_when_absent_and_bps_is_shown() -> None:
    html = _render(charges={"brokerage": "20", "stt": Decimal("10.5")})
    body = html.split('<section id="charges">', 1)[1].split("</section>", 1)[0]
    assert "₹30.50" in body
    html = _render(charges={"bps": 5})
    body = html.split('<section id="charges">', 1)[1].split("</section>", 1)[0]
    assert "5 bps" in body
    html = _render(charges={})
    assert "No charges recorded." in html


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "₹0.00"),
        (Decimal("100"), "₹100.00"),
        (Decimal("1234.5"), "₹1,234.50"),
        (100000, "₹1,00,000.00"),
        (Decimal("1234567.891"), "₹12,34,567.89"),
        ("-999.995", "-₹1,000.00"),
        (12345678901.5, "₹12,34,56,78,901.50"),
    ],
)
def test_format_inr(value: Any, text: str) -> None:
    assert format_inr(value) == text


def test_metrics_beside_the_benchmark() -> None:
    html = _render()
    perf = html.split('<section id="performance">', 1)[1].split("</section>", 1)[0]
    row = re.search(r"<tr><td>Total return</td>(.*?)</tr>", perf, flags=re.S)
    assert row is not None
    assert row.group(1).count("%") == 2  # strategy and benchmark
    assert "Win rate" in perf
    assert "Average trade (net)" in perf
    assert "₹10,00,000.00" in perf  # initial cash


def test_trade_list_is_capped() -> None:
    n = MAX_TRADES_SHOWN + 7
    html = _render(round_trips=_trips(n))
    body = html.split('<section id="trades">', 1)[1].split("</section>", 1)[0]
    assert body.count('<tr><td class="num">') == MAX_TRADES_SHOWN
    assert f"Showing the first {MAX_TRADES_SHOWN} of {n} round trips (7 more)." in body
    assert 'class="num neg"' in body
    assert 'class="num pos"' in body


def test_empty_trade_list_and_no_benchmark() -> None:
    html = _render(round_trips=[], benchmark_equity=None)
    assert "No round trips." in html
    assert "No benchmark for this run." in html
    assert "Benchmark (buy and hold)" not in html
    assert len(_svgs(html)) == 3


def test_minimal_inputs_render() -> None:
    # A bare metrics mapping, one bar, and an empty curve.
    one = _equity(1)
    html = _render(equity=one, benchmark_equity=None, metrics={"total_return": 0.1, "extra": 3})
    assert "extra" in html
    empty = pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float)
    html = _render(equity=empty, benchmark_equity=None, metrics={}, round_trips=[], run={})
    assert "No equity data" in html
    assert len(_svgs(html)) == 3
    assert "No run metadata." in html


# --- large runs --------------------------------------------------------------------------------


def test_downsample_keeps_the_extremes() -> None:
    values = np.random.default_rng(3).normal(size=100_001).cumsum()
    pos = _downsample(values)
    assert len(pos) <= MAX_PLOT_POINTS + 2
    assert np.all(np.diff(pos) > 0)
    assert {0, len(values) - 1, int(values.argmin()), int(values.argmax())} <= set(pos.tolist())
    assert _downsample(values[:10]).tolist() == list(range(10))


def test_a_million_bar_run_renders() -> None:
    n = 1_000_000
    idx = pd.date_range("2020-01-01 03:45", periods=n, freq="min", tz="UTC")
    steps = np.random.default_rng(11).normal(0.0, 1e-4, n)
    equity = pd.Series(1_000_000 * np.exp(np.cumsum(steps)), index=idx)
    html = _render(equity=equity, benchmark_equity=equity * 1.01)
    assert "1,000,000 bars plotted as at most 2,000 points" in html
    assert len(_svgs(html)) == 3
    assert len(html) < 2_000_000  # the downsampled charts stay small
