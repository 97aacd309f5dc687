"""The HTML tearsheet of one backtest run: one self-contained file that renders offline.

No network: no scripts at all, the CSS inline, system fonts, and the charts drawn by matplotlib
(``Figure`` directly, never pyplot, so rendering is thread-safe) and inlined as SVG. The page is
a Jinja2 template with autoescaping on: the title, run metadata, parameters and symbols come from
users and are escaped; only the SVG that matplotlib wrote here is inserted as markup.

Long curves are downsampled for plotting to at most ``MAX_PLOT_POINTS`` points, keeping each
bucket's minimum and maximum so spikes and the deepest drawdown stay visible; the statistics come
from the full curve. A 1,000,000-bar run renders in about half a second.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup
from matplotlib.colors import TwoSlopeNorm
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from quantdesk.backtest.metrics import RoundTrip, drawdown_series, monthly_returns

__all__ = ["MAX_PLOT_POINTS", "MAX_TRADES_SHOWN", "format_inr", "render_report"]

MAX_PLOT_POINTS = 2_000
MAX_TRADES_SHOWN = 500

_GREEN = "#1a7f37"
_RED = "#c62828"
_BLUE = "#1f5fbf"
_GREY = "#7a7a7a"

# (key, label, kind) in display order; kinds are formatted by _fmt_metric. Returns and risk (with
# the benchmark's column) on the left, trades and the account on the right.
_RISK_ROWS: tuple[tuple[str, str, str], ...] = (
    ("total_return", "Total return", "pct"),
    ("cagr", "CAGR", "pct"),
    ("annual_volatility", "Annual volatility", "pct"),
    ("sharpe", "Sharpe ratio", "ratio"),
    ("sortino", "Sortino ratio", "ratio"),
    ("calmar", "Calmar ratio", "ratio"),
    ("max_drawdown", "Max drawdown", "pct"),
    ("max_drawdown_duration_days", "Longest drawdown (days)", "int"),
    ("best_day", "Best day", "pct"),
    ("worst_day", "Worst day", "pct"),
    ("alpha", "Alpha (annual)", "pct"),
    ("beta", "Beta", "ratio"),
    ("exposure", "Exposure", "pct"),
    ("turnover", "Turnover", "times"),
    ("risk_free", "Risk-free rate (annual)", "pct"),
)
_TRADE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("trades", "Round trips", "int"),
    ("long_trades", "Long", "int"),
    ("short_trades", "Short", "int"),
    ("win_rate", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "ratio"),
    ("average_trade", "Average trade (net)", "money"),
    ("average_win", "Average win", "money"),
    ("average_loss", "Average loss", "money"),
    ("largest_win", "Largest win", "money"),
    ("largest_loss", "Largest loss", "money"),
    ("average_bars_held", "Average bars held", "ratio"),
    ("gross_pnl", "Gross P&L of trades", "money"),
    ("trade_charges", "Charges of trades", "money"),
    ("net_pnl", "Net P&L of trades", "money"),
    ("initial_cash", "Initial cash", "money"),
    ("final_equity", "Final equity", "money"),
    ("start", "First bar", "time"),
    ("end", "Last bar", "time"),
    ("sessions", "Sessions", "int"),
    ("bars", "Bars", "int"),
    ("periods_per_year", "Periods per year", "int"),
)

_CHARGE_LABELS = {
    "brokerage": "Brokerage",
    "stt": "Securities transaction tax (STT)",
    "exchange_charge": "Exchange transaction charge",
    "sebi_fee": "SEBI turnover fee",
    "stamp_duty": "Stamp duty",
    "gst": "GST",
    "dp_charge": "DP charge",
    "total": "Total",
}

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; margin: 0; color: #1d1d1f; background: #f6f7f9; font-size: 14px; }
main { max-width: 1180px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; word-break: break-word; }
h2 { font-size: 17px; margin: 0 0 12px; }
nav a { margin-right: 12px; color: #1f5fbf; text-decoration: none; }
section { background: #fff; border: 1px solid #e2e4e8; border-radius: 8px; padding: 16px 20px;
          margin: 16px 0; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #eef0f3;
         vertical-align: top; }
th { font-weight: 600; color: #444; background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.val { word-break: break-all; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas,
         monospace; font-size: 13px; }
tr.total td { font-weight: 700; border-top: 2px solid #c9ccd1; }
.pos { color: #1a7f37; } .neg { color: #c62828; } .muted { color: #777; }
.chart svg { width: 100%; height: auto; display: block; }
.note { color: #555; font-size: 13px; margin: 8px 0 0; }
.cols { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px; }
@media (max-width: 800px) { .cols { grid-template-columns: minmax(0, 1fr); } }
</style>
</head>
<body>
<main>
<header>
<h1>{{ title }}</h1>
<nav><a href="#run">Run</a><a href="#performance">Performance</a><a href="#equity">Equity</a>
<a href="#drawdown">Drawdown</a><a href="#monthly">Monthly returns</a><a href="#charges">Charges</a>
<a href="#trades">Trades</a></nav>
</header>

<section id="run">
<h2>Run</h2>
{% if run_rows %}
<table>
{% for key, value in run_rows %}<tr><th>{{ key }}</th><td class="val">{{ value }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="muted">No run metadata.</p>{% endif %}
</section>

<section id="performance">
<h2>Performance</h2>
<div class="cols">
<table>
<tr><th>Returns and risk</th><th class="num">Strategy</th>
{%- if has_benchmark %}<th class="num">Benchmark</th>{% endif %}</tr>
{% for label, value, bench in risk_rows %}<tr><td>{{ label }}</td><td class="num">{{ value }}</td>
{%- if has_benchmark %}<td class="num">{{ bench }}</td>{% endif %}</tr>
{% endfor %}
</table>
<table>
<tr><th>Trades and account</th><th class="num"></th></tr>
{% for label, value in other_rows %}<tr><td>{{ label }}</td><td class="num">{{ value }}</td></tr>
{% endfor %}
</table>
</div>
<p class="note">{% if has_benchmark %}Benchmark: buy and hold over the same sessions.
{%- else %}No benchmark for this run.{% endif %} Statistics from daily returns; drawdowns per bar.
</p>
</section>

<section id="equity">
<h2>Equity</h2>
<div class="chart">{{ equity_svg }}</div>
{% if downsampled %}<p class="note">{{ downsampled }}</p>{% endif %}
</section>

<section id="drawdown">
<h2>Drawdown</h2>
<div class="chart">{{ drawdown_svg }}</div>
</section>

<section id="monthly">
<h2>Monthly returns</h2>
<div class="chart">{{ monthly_svg }}</div>
<p class="note">Percent; each month from the previous month's last session close ({{ tz }}).</p>
</section>

<section id="charges">
<h2>Charges</h2>
{% if charge_rows %}
<table>
<tr><th>Component</th><th class="num">Amount</th></tr>
{% for label, value, is_total in charge_rows %}<tr{% if is_total %} class="total"{% endif %}>
<td>{{ label }}</td><td class="num">{{ value }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="muted">No charges recorded.</p>{% endif %}
</section>

<section id="trades">
<h2>Trades</h2>
{% if trades %}
<table>
<tr><th class="num">#</th><th>Symbol</th><th>Side</th><th class="num">Qty</th><th>Entry</th>
<th>Exit</th><th class="num">Entry price</th><th class="num">Exit price</th>
<th class="num">Gross P&amp;L</th><th class="num">Charges</th><th class="num">Net P&amp;L</th>
<th class="num">Bars</th></tr>
{% for t in trades %}<tr><td class="num">{{ t.n }}</td><td>{{ t.symbol }}</td><td>{{ t.side }}</td>
<td class="num">{{ t.quantity }}</td><td>{{ t.entry_time }}</td><td>{{ t.exit_time }}</td>
<td class="num">{{ t.entry_price }}</td><td class="num">{{ t.exit_price }}</td>
<td class="num">{{ t.gross_pnl }}</td><td class="num">{{ t.charges }}</td>
<td class="num {{ t.css }}">{{ t.net_pnl }}</td><td class="num">{{ t.bars_held }}</td></tr>
{% endfor %}
</table>
<p class="note">{{ trades_note }}</p>
{% else %}<p class="muted">No round trips.</p>{% endif %}
</section>
<footer class="note">QuantDesk backtest report. Times in {{ tz }}.</footer>
</main>
</body>
</html>
"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_PAGE = _ENV.from_string(_TEMPLATE)


# --- formatting --------------------------------------------------------------------------------


def _group_indian(digits: str) -> str:
    """``1234567`` -> ``12,34,567`` (the last three digits, then pairs)."""
    if len(digits) <= 3:
        return digits
    head, tail = digits[:-3], digits[-3:]
    pairs: list[str] = []
    while len(head) > 2:
        pairs.insert(0, head[-2:])
        head = head[:-2]
    return ",".join([head, *pairs, tail])


def format_inr(value: Decimal | float | int | str) -> str:
    """Rupees with 2 decimals and Indian digit grouping: ``-₹12,34,567.89``."""
    amount = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if amount < 0 else ""
    whole, frac = f"{abs(amount):.2f}".split(".")
    return f"{sign}₹{_group_indian(whole)}.{frac}"


def _as_decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _fmt_metric(value: Any, kind: str, tz: ZoneInfo) -> str:
    if value is None:
        return "—"
    if kind == "time":
        try:
            return _fmt_time(datetime.fromisoformat(str(value)), tz)
        except ValueError:
            return str(value)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return str(value)
    x = float(value)
    if not math.isfinite(x):
        return "—"
    if kind == "pct":
        return f"{x * 100:,.2f}%"
    if kind == "ratio":
        return f"{x:,.2f}"
    if kind == "times":
        return f"{x:,.2f}x"
    if kind == "money":
        return format_inr(value)
    if kind == "int":
        return f"{x:,.0f}"
    return str(value)


def _fmt_time(ts: datetime, tz: ZoneInfo) -> str:
    local = ts.astimezone(tz) if ts.tzinfo is not None else ts
    return local.strftime("%Y-%m-%d %H:%M")


# --- tables ------------------------------------------------------------------------------------


def _metric_rows(
    metrics: Mapping[str, Any], tz: ZoneInfo
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]], bool]:
    """(label, strategy, benchmark) rows of returns and risk, (label, value) rows of trades and
    the account (and any other keys the caller added), and whether there is a benchmark."""
    bench = metrics.get("benchmark")
    bench_map: Mapping[str, Any] = bench if isinstance(bench, Mapping) else {}
    risk = [
        (
            label,
            _fmt_metric(metrics[key], kind, tz),
            _fmt_metric(bench_map[key], kind, tz) if key in bench_map else "",
        )
        for key, label, kind in _RISK_ROWS
        if key in metrics
    ]
    other = [
        (label, _fmt_metric(metrics[key], kind, tz))
        for key, label, kind in _TRADE_ROWS
        if key in metrics
    ]
    known = {key for key, _, _ in (*_RISK_ROWS, *_TRADE_ROWS)} | {"benchmark"}
    for key, value in metrics.items():
        if key not in known and not isinstance(value, Mapping):
            other.append((key, _fmt_metric(value, "ratio", tz)))
    return risk, other, bool(bench_map)


def _charge_rows(charges: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    rows: list[tuple[str, str, bool]] = []
    amounts: list[Decimal] = []
    all_money = True
    for key, value in charges.items():
        if key == "total":
            continue
        if key == "bps":
            rows.append(("Flat cost (basis points of traded value)", f"{value} bps", False))
            all_money = False
            continue
        amount = _as_decimal(value)
        label = _CHARGE_LABELS.get(key, key.replace("_", " ").capitalize())
        if amount is None:
            rows.append((label, str(value), False))
            all_money = False
        else:
            rows.append((label, format_inr(amount), False))
            amounts.append(amount)
    if "total" in charges:
        total = _as_decimal(charges["total"])
        shown = format_inr(total) if total is not None else str(charges["total"])
        rows.append(("Total", shown, True))
    elif amounts and all_money:
        rows.append(("Total", format_inr(sum(amounts, Decimal(0))), True))
    return rows


def _trade_rows(round_trips: Sequence[RoundTrip], tz: ZoneInfo) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n, rt in enumerate(round_trips[:MAX_TRADES_SHOWN], start=1):
        rows.append(
            {
                "n": n,
                "symbol": rt.symbol,
                "side": rt.side,
                "quantity": f"{rt.quantity:,}",
                "entry_time": _fmt_time(rt.entry_time, tz),
                "exit_time": _fmt_time(rt.exit_time, tz),
                "entry_price": format_inr(rt.entry_price),
                "exit_price": format_inr(rt.exit_price),
                "gross_pnl": format_inr(rt.gross_pnl),
                "charges": format_inr(rt.charges),
                "net_pnl": format_inr(rt.net_pnl),
                "css": "pos" if rt.net_pnl > 0 else "neg" if rt.net_pnl < 0 else "",
                "bars_held": rt.bars_held,
            }
        )
    return rows


# --- charts ------------------------------------------------------------------------------------


def _clean_curve(series: pd.Series | None) -> pd.Series:
    if series is None:
        return pd.Series([], index=pd.DatetimeIndex([]), dtype=float)
    out = series.astype(float).dropna()
    if not out.index.is_monotonic_increasing:
        out = out.sort_index(kind="stable")
    return out


def _downsample(values: np.ndarray, max_points: int = MAX_PLOT_POINTS) -> np.ndarray:
    """Positions to plot: each bucket's min and max, plus the first and last point."""
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    size = math.ceil(n / (max_points // 2))
    rows = math.ceil(n / size)
    padded = np.pad(values, (0, rows * size - n), mode="edge").reshape(rows, size)
    base = np.arange(rows) * size
    lo = base + np.argmin(padded, axis=1)
    hi = base + np.argmax(padded, axis=1)
    picked = np.concatenate((lo, hi, [0, n - 1]))
    return np.unique(np.minimum(picked, n - 1))


def _plot_xy(series: pd.Series, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """Downsampled (session-local naive datetime64, value) arrays of a curve."""
    values = series.to_numpy(dtype=float)
    pos = _downsample(values)
    index = pd.DatetimeIndex(series.index[pos])
    if index.tz is not None:
        index = index.tz_convert(tz).tz_localize(None)
    return index.to_numpy(), values[pos]


def _svg(fig: Figure, chart_id: str) -> Markup:
    """The figure as inline SVG, its ids prefixed with ``chart_id`` so they stay unique."""
    buf = io.StringIO()
    fig.savefig(
        buf,
        format="svg",
        bbox_inches="tight",
        metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
    )
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # drop the XML declaration and DOCTYPE
    text = re.sub(r'\bid="', f'id="{chart_id}-', text)
    text = text.replace('xlink:href="#', f'xlink:href="#{chart_id}-')
    text = text.replace("url(#", f"url(#{chart_id}-")
    return Markup(text)  # noqa: S704 - matplotlib's output, no user text in it


def _date_axis(ax: Any) -> None:
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _style(ax: Any) -> None:
    ax.grid(True, color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _empty_chart(message: str, chart_id: str) -> Markup:
    fig = Figure(figsize=(10, 1.2))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", color=_GREY, fontsize=11)
    return _svg(fig, chart_id)


def _equity_chart(equity: pd.Series, benchmark: pd.Series, tz: str) -> Markup:
    if equity.empty:
        return _empty_chart("No equity data", "eq")
    fig = Figure(figsize=(10, 3.8))
    ax = fig.subplots()
    x, y = _plot_xy(equity, tz)
    ax.plot(x, y, color=_BLUE, linewidth=1.2, label="Strategy")
    if not benchmark.empty:
        bx, by = _plot_xy(benchmark, tz)
        ax.plot(bx, by, color=_GREY, linewidth=1.0, label="Benchmark (buy and hold)")
        ax.legend(loc="upper left", frameon=False)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylabel("Equity (INR)")
    _date_axis(ax)
    _style(ax)
    return _svg(fig, "eq")


def _drawdown_chart(equity: pd.Series, initial: float | None, tz: str) -> Markup:
    if equity.empty:
        return _empty_chart("No equity data", "dd")
    dd = drawdown_series(equity, initial=initial).fillna(0.0)
    fig = Figure(figsize=(10, 2.6))
    ax = fig.subplots()
    x, y = _plot_xy(dd, tz)
    ax.fill_between(x, y, 0.0, color=_RED, alpha=0.35, linewidth=0)
    ax.plot(x, y, color=_RED, linewidth=0.9)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0 if y.min() < -0.05 else 1))
    ax.set_ylabel("Below peak")
    ax.set_ylim(top=0.0, bottom=min(float(y.min()) * 1.08, -0.001))
    _date_axis(ax)
    _style(ax)
    return _svg(fig, "dd")


def _monthly_chart(equity: pd.Series, initial: float | None, tz: str) -> Markup:
    if equity.empty:
        return _empty_chart("No equity data", "mr")
    table = monthly_returns(equity, tz, initial=initial)
    yearly = (1.0 + table.fillna(0.0)).prod(axis=1) - 1.0
    yearly[table.isna().all(axis=1)] = np.nan
    grid = np.column_stack((table.to_numpy(dtype=float), yearly.to_numpy(dtype=float)))
    years = [str(y) for y in table.index]
    finite = grid[np.isfinite(grid)]
    limit = max(float(np.abs(finite).max()) if finite.size else 0.0, 0.005)
    fig = Figure(figsize=(10, 0.9 + 0.38 * len(years)))
    ax = fig.subplots()
    ax.pcolormesh(
        np.ma.masked_invalid(grid),
        cmap="RdYlGn",
        norm=TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit),
        edgecolors="white",
        linewidth=1.5,
    )
    for (row, col), value in np.ndenumerate(grid):
        if math.isfinite(value):
            dark = abs(value) > 0.6 * limit
            ax.text(
                col + 0.5,
                row + 0.5,
                f"{round(value * 100, 1) + 0.0:.1f}",  # + 0.0: no "-0.0"
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "#1d1d1f",
                fontweight="bold" if col == 12 else "normal",
            )
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    ax.set_xticks(np.arange(13) + 0.5, [*months, "Year"])
    ax.set_yticks(np.arange(len(years)) + 0.5, years)
    ax.invert_yaxis()
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return _svg(fig, "mr")


# --- the page ----------------------------------------------------------------------------------


def render_report(
    *,
    title: str,
    run: Mapping[str, Any],
    metrics: Mapping[str, Any],
    equity: pd.Series,
    benchmark_equity: pd.Series | None,
    round_trips: Sequence[RoundTrip],
    charges: Mapping[str, Any],
    session_tz: str = "Asia/Kolkata",
) -> str:
    """The tearsheet of one run as a self-contained HTML page.

    ``run`` is shown as given (values ``str()``'d), ``metrics`` is the output of
    :func:`quantdesk.backtest.metrics.compute_metrics`, ``equity`` the per-bar curve,
    ``benchmark_equity`` the benchmark scaled to the same initial cash (or None), ``charges`` the
    charges by component (rupees, with a ``total``) or ``{"bps": ...}``. At most
    ``MAX_TRADES_SHOWN`` round trips are listed.
    """
    tz = ZoneInfo(session_tz)
    curve = _clean_curve(equity)
    bench = _clean_curve(benchmark_equity)
    initial_raw = metrics.get("initial_cash")
    initial = float(initial_raw) if isinstance(initial_raw, int | float) else None

    risk_rows, other_rows, has_benchmark = _metric_rows(metrics, tz)
    total = len(round_trips)
    shown = min(total, MAX_TRADES_SHOWN)
    if total > shown:
        trades_note = (
            f"Showing the first {shown:,} of {total:,} round trips ({total - shown:,} more)."
        )
    else:
        trades_note = f"{total:,} round trip{'s' if total != 1 else ''}."
    downsampled = ""
    if len(curve) > MAX_PLOT_POINTS:
        downsampled = (
            f"{len(curve):,} bars plotted as at most {MAX_PLOT_POINTS:,} points "
            "(each bucket's low and high)."
        )
    return _PAGE.render(
        title=title,
        tz=session_tz,
        run_rows=[(str(k), str(v)) for k, v in run.items()],
        risk_rows=risk_rows,
        other_rows=other_rows,
        has_benchmark=has_benchmark,
        equity_svg=_equity_chart(curve, bench, session_tz),
        drawdown_svg=_drawdown_chart(curve, initial, session_tz),
        monthly_svg=_monthly_chart(curve, initial, session_tz),
        downsampled=downsampled,
        charge_rows=_charge_rows(charges),
        trades=_trade_rows(round_trips, tz),
        trades_note=trades_note,
    )
