"""Performance metrics of a backtest: pure functions of the equity curve and the trade list.

Conventions
-----------
* **Input curve.** ``equity`` is the run's whole per-bar equity (cash plus marked positions, in
  rupees, as floats) on a :class:`pandas.DatetimeIndex`. A tz-aware index (the engine's, UTC) is
  converted to ``session_tz``; a naive index is taken as already in session-local wall time (a
  benchmark of daily closes indexed by date, say). NaNs are dropped and the index is sorted.
* **Daily returns.** Every return statistic uses DAILY returns: the per-bar equity is resampled
  to its last value per exchange session date (dates in ``session_tz``, Asia/Kolkata for NSE and
  BSE), and the returns are the percentage changes of that daily series, the first day's measured
  from ``initial_cash`` (so day one counts, and the daily returns compound to ``total_return``).
  A run of ``n`` sessions has ``n`` daily returns.
* **Annualisation** uses ``periods_per_year`` (252 trading days): ``cagr`` is
  ``(final / initial) ** (periods_per_year / n) - 1`` (trading-day based, as empyrical does),
  ``annual_volatility`` is ``std(ddof=1) * sqrt(periods_per_year)``, and ``sharpe`` is
  ``mean(r - rf) / std(r - rf, ddof=1) * sqrt(periods_per_year)``.
* **Risk-free rate.** ``risk_free`` is an ANNUAL rate (0.065 for 6.5 %), turned into the daily
  ``(1 + risk_free) ** (1 / periods_per_year) - 1`` for Sharpe, for Sortino's target return and
  for alpha. The default 0 gives the plain ratios.
* **Drawdown** is measured on the per-bar curve (intraday dips count; the underwater chart of the
  report is the same series), with ``initial_cash`` as the first peak: ``max_drawdown`` is the
  minimum of :func:`drawdown_series` ``(equity, initial=initial_cash)``, a fraction <= 0.
  ``max_drawdown_duration_days`` is the longest spell under water, in calendar days (session
  dates) from the peak to the bar that regains it, or to the last bar when it is never regained;
  0 when the curve is never under water. ``calmar`` is ``cagr / |max_drawdown|`` of these
  reported numbers (so it is consistent with them, unlike a daily-close drawdown).
* **Trades.** ``win_rate`` is the share of round trips with a net P&L > 0 (a zero P&L is not a
  win); ``profit_factor`` is the sum of the winning net P&Ls over the absolute sum of the losing
  ones; ``average_trade`` is the mean net P&L in rupees. All net of charges.
* **Benchmark.** Buy and hold of the benchmark over the same session dates: bought at its first
  price on or after the run's first session date, its daily returns measured from that price
  exactly as the strategy's are from ``initial_cash``, so its ``total_return`` is
  ``last / first - 1``. ``alpha`` (annualised) and ``beta`` regress the strategy's daily returns
  on the benchmark's over their common dates (empyrical's ``alpha_beta``).
* **Undefined is None.** The result is JSON-friendly: plain floats, rounded (fractions to 6
  decimals, ratios to 4, rupees to 2), ints, strings and None. A statistic that is undefined is
  None, never NaN or infinity: Sharpe, Sortino, volatility and CAGR of a run shorter than 2
  sessions; Sharpe of a curve with zero volatility; Sortino with no return below the target;
  Calmar without a drawdown; trade statistics without trades; profit factor without a losing
  trade; alpha and beta without 2 common dates or with a flat benchmark.

empyrical-reloaded supplies ``sharpe_ratio``, ``sortino_ratio``, ``annual_volatility``,
``cagr`` and ``alpha_beta``; drawdowns are computed here on the per-bar curve (see above).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import empyrical
import numpy as np
import pandas as pd

__all__ = [
    "RoundTrip",
    "compute_metrics",
    "daily_equity",
    "daily_returns",
    "drawdown_series",
    "monthly_returns",
]

SIDES = ("LONG", "SHORT")
_SECONDS_PER_DAY = 86_400
# Below this daily standard deviation a curve is flat: float noise must not give a huge Sharpe.
_FLAT_STD = 1e-12
_FRACTION_DP = 6
_RATIO_DP = 4
_MONEY_DP = 2


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One closed trade (entry to exit) of one symbol, net of charges."""

    symbol: str
    side: str  # "LONG" or "SHORT"
    quantity: int
    entry_time: datetime
    exit_time: datetime
    entry_price: Decimal  # average entry price
    exit_price: Decimal  # average exit price
    gross_pnl: Decimal
    charges: Decimal
    net_pnl: Decimal
    bars_held: int

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"side must be LONG or SHORT, not {self.side!r}")
        if self.quantity <= 0:
            raise ValueError(f"quantity must be positive, not {self.quantity}")


# --- curves ------------------------------------------------------------------------------------


def _clean(series: pd.Series, name: str = "equity") -> pd.Series:
    """``series`` as floats on a sorted DatetimeIndex, without NaNs."""
    if not isinstance(series.index, pd.DatetimeIndex):
        raise TypeError(f"{name} needs a DatetimeIndex, not {type(series.index).__name__}")
    out = series.astype(float).dropna()
    if not out.index.is_monotonic_increasing:
        out = out.sort_index(kind="stable")
    return out


def _session_dates(index: pd.DatetimeIndex, session_tz: str) -> pd.DatetimeIndex:
    """The session date (naive midnight) of each timestamp, in ``session_tz``."""
    local = index.tz_convert(session_tz) if index.tz is not None else index
    dates = local.normalize()
    return dates.tz_localize(None) if dates.tz is not None else dates


def daily_equity(equity: pd.Series, session_tz: str = "Asia/Kolkata") -> pd.Series:
    """The last equity of each session date (dates in ``session_tz``), on a naive date index."""
    eq = _clean(equity)
    dates = _session_dates(pd.DatetimeIndex(eq.index), session_tz)
    last_of_day = ~dates.duplicated(keep="last")
    return pd.Series(
        eq.to_numpy(dtype=float)[last_of_day],
        index=pd.DatetimeIndex(dates[last_of_day], name="date"),
        name="equity",
    )


def daily_returns(equity: pd.Series, initial: float, session_tz: str = "Asia/Kolkata") -> pd.Series:
    """Daily returns of the curve: of :func:`daily_equity`, the first day's from ``initial``."""
    daily = daily_equity(equity, session_tz)
    values = daily.to_numpy(dtype=float)
    prev = np.concatenate(([float(initial)], values[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = values / prev - 1.0
    return pd.Series(rets, index=daily.index, name="return")


def drawdown_series(equity: pd.Series, *, initial: float | None = None) -> pd.Series:
    """The fraction by which each bar is below the running peak (<= 0 for a positive curve).

    With ``initial`` (the run's initial cash) the running peak starts there, so a first bar
    below the initial cash is already a drawdown.
    """
    eq = _clean(equity)
    values = eq.to_numpy(dtype=float)
    peak = np.maximum.accumulate(values) if len(values) else values
    if initial is not None and len(values):
        peak = np.maximum(peak, float(initial))
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, values / peak - 1.0, np.nan)
    return pd.Series(dd, index=eq.index, name="drawdown")


def monthly_returns(
    equity: pd.Series, session_tz: str = "Asia/Kolkata", *, initial: float | None = None
) -> pd.DataFrame:
    """Monthly returns as fractions: rows are years, columns the months 1..12 (NaN: no data).

    Each month runs from the previous month's last session equity to its own; the first month
    from ``initial`` (the initial cash) when given, else from the first equity value.
    """
    daily = daily_equity(equity, session_tz)
    columns = pd.Index(range(1, 13), name="month")
    if daily.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="year"), dtype=float)
    idx = pd.DatetimeIndex(daily.index)
    month_key = idx.year * 12 + (idx.month - 1)
    month_end = pd.Series(daily.to_numpy(), index=month_key).groupby(level=0).last()
    first = float(initial) if initial is not None else float(daily.iloc[0])
    values = month_end.to_numpy(dtype=float)
    prev = np.concatenate(([first], values[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = values / prev - 1.0
    keys = month_end.index.to_numpy()
    frame = pd.DataFrame({"year": keys // 12, "month": keys % 12 + 1, "ret": rets})
    table = frame.pivot(index="year", columns="month", values="ret")
    table = table.reindex(columns=columns)
    table.index.name = "year"
    return table.astype(float)


def _max_drawdown_duration_days(eq: pd.Series, initial: float, session_tz: str) -> int:
    values = eq.to_numpy(dtype=float)
    n = len(values)
    if n == 0:
        return 0
    dates = _session_dates(pd.DatetimeIndex(eq.index), session_tz)
    days = dates.as_unit("s").asi8 // _SECONDS_PER_DAY  # day numbers, whatever the index's unit
    peak = np.maximum(np.maximum.accumulate(values), initial)
    at_peak = values >= peak
    # Index of the bar where the current peak was set (bar 0 when it is the initial cash).
    peak_idx = np.maximum.accumulate(np.where(at_peak, np.arange(n), 0))
    under = ~at_peak
    longest = 0
    if under.any():
        longest = int((days[under] - days[peak_idx[under]]).max())
        recovered = at_peak[1:] & under[:-1]  # bar i + 1 regains the peak of bar i's spell
        if recovered.any():
            rec = np.flatnonzero(recovered) + 1
            longest = max(longest, int((days[rec] - days[peak_idx[rec - 1]]).max()))
    return longest


# --- numbers -----------------------------------------------------------------------------------


def _num(value: Any, dp: int) -> float | None:
    """``value`` as a rounded float, or None when it is missing, NaN or infinite."""
    if value is None:
        return None
    x = float(value)
    if not math.isfinite(x):
        return None
    return round(x, dp) + 0.0  # + 0.0: no "-0.0" in the JSON


def _curve_stats(
    curve: pd.Series, *, initial: float, periods_per_year: int, rf_daily: float, session_tz: str
) -> tuple[dict[str, float | None], pd.Series]:
    """Return statistics of one curve measured from ``initial``, and its daily returns."""
    rets = daily_returns(curve, initial, session_tz)
    final = float(curve.iloc[-1])
    stats: dict[str, float | None] = {
        "total_return": _num(final / initial - 1.0, _FRACTION_DP),
        "cagr": None,
        "annual_volatility": None,
        "sharpe": None,
        "sortino": None,
    }
    r = rets.to_numpy(dtype=float)
    ann = periods_per_year
    # A short run's CAGR can overflow to inf: it becomes None (by _num), without a warning.
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if len(r) >= 2 and np.isfinite(r).all():
            stats["cagr"] = _num(empyrical.cagr(r, annualization=ann), _FRACTION_DP)
            stats["annual_volatility"] = _num(
                empyrical.annual_volatility(r, annualization=ann), _FRACTION_DP
            )
            if float(np.std(r - rf_daily, ddof=1)) > _FLAT_STD:
                stats["sharpe"] = _num(
                    empyrical.sharpe_ratio(r, risk_free=rf_daily, annualization=ann), _RATIO_DP
                )
            stats["sortino"] = _num(
                empyrical.sortino_ratio(r, required_return=rf_daily, annualization=ann),
                _RATIO_DP,
            )
    dd = drawdown_series(curve, initial=initial).to_numpy(dtype=float)
    stats["max_drawdown"] = _num(np.nanmin(dd) if np.isfinite(dd).any() else None, _FRACTION_DP)
    return stats, rets


def _trade_stats(round_trips: Sequence[RoundTrip]) -> dict[str, Any]:
    nets = [rt.net_pnl for rt in round_trips]
    out: dict[str, Any] = {
        "trades": len(nets),
        "long_trades": sum(1 for rt in round_trips if rt.side == "LONG"),
        "short_trades": sum(1 for rt in round_trips if rt.side == "SHORT"),
        "win_rate": None,
        "profit_factor": None,
        "average_trade": None,
        "average_win": None,
        "average_loss": None,
        "largest_win": None,
        "largest_loss": None,
        "average_bars_held": None,
        "gross_pnl": _num(sum((rt.gross_pnl for rt in round_trips), Decimal(0)), _MONEY_DP),
        "trade_charges": _num(sum((rt.charges for rt in round_trips), Decimal(0)), _MONEY_DP),
        "net_pnl": _num(sum(nets, Decimal(0)), _MONEY_DP),
    }
    if not nets:
        return out
    wins = [x for x in nets if x > 0]
    losses = [x for x in nets if x < 0]
    gross_win = sum(wins, Decimal(0))
    gross_loss = -sum(losses, Decimal(0))
    out["win_rate"] = _num(len(wins) / len(nets), _RATIO_DP)
    out["profit_factor"] = _num(gross_win / gross_loss, _RATIO_DP) if gross_loss > 0 else None
    out["average_trade"] = _num(sum(nets, Decimal(0)) / len(nets), _MONEY_DP)
    out["average_win"] = _num(gross_win / len(wins), _MONEY_DP) if wins else None
    out["average_loss"] = _num(-gross_loss / len(losses), _MONEY_DP) if losses else None
    out["largest_win"] = _num(max(wins), _MONEY_DP) if wins else None
    out["largest_loss"] = _num(min(losses), _MONEY_DP) if losses else None
    out["average_bars_held"] = _num(
        sum(rt.bars_held for rt in round_trips) / len(round_trips), _RATIO_DP
    )
    return out


def _benchmark(
    benchmark: pd.Series,
    *,
    first_date: pd.Timestamp,
    last_date: pd.Timestamp,
    periods_per_year: int,
    rf_daily: float,
    session_tz: str,
) -> tuple[dict[str, float | None] | None, pd.Series | None]:
    prices = _clean(benchmark, "benchmark")
    dates = _session_dates(pd.DatetimeIndex(prices.index), session_tz)
    in_span = np.asarray((dates >= first_date) & (dates <= last_date))
    prices = prices[in_span]
    prices = prices[prices.to_numpy() > 0]
    if prices.empty:
        return None, None
    stats, rets = _curve_stats(
        prices,
        initial=float(prices.iloc[0]),
        periods_per_year=periods_per_year,
        rf_daily=rf_daily,
        session_tz=session_tz,
    )
    block = {
        k: stats[k] for k in ("total_return", "cagr", "annual_volatility", "sharpe", "max_drawdown")
    }
    return block, rets


def _alpha_beta(
    rets: pd.Series, bench_rets: pd.Series, *, periods_per_year: int, rf_daily: float
) -> tuple[float | None, float | None]:
    joined = pd.concat([rets, bench_rets], axis=1, join="inner").dropna()
    if len(joined) < 2:
        return None, None
    r = joined.iloc[:, 0].to_numpy(dtype=float)
    b = joined.iloc[:, 1].to_numpy(dtype=float)
    if not (np.isfinite(r).all() and np.isfinite(b).all()) or float(np.var(b)) <= _FLAT_STD**2:
        return None, None
    alpha, beta = empyrical.alpha_beta(r, b, risk_free=rf_daily, annualization=periods_per_year)
    return _num(alpha, _FRACTION_DP), _num(beta, _RATIO_DP)


def compute_metrics(
    equity: pd.Series,
    *,
    initial_cash: float,
    round_trips: Sequence[RoundTrip],
    exposure: float,
    turnover: float,
    benchmark: pd.Series | None = None,
    periods_per_year: int = 252,
    risk_free: float = 0.0,
    session_tz: str = "Asia/Kolkata",
) -> dict[str, Any]:
    """The performance metrics of one run, as a JSON-friendly dict (see the module docstring).

    ``equity`` is the run's whole per-bar curve, ``exposure`` the share of bars with a position
    and ``turnover`` the traded value over the average equity (both computed by the engine and
    passed through), ``benchmark`` close prices per bar or per day, ``risk_free`` an annual rate.
    Raises ``ValueError`` for an empty curve or a non-positive ``initial_cash``.
    """
    if not (math.isfinite(initial_cash) and initial_cash > 0):
        raise ValueError(f"initial_cash must be positive, not {initial_cash}")
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, not {periods_per_year}")
    eq = _clean(equity)
    if eq.empty:
        raise ValueError("the equity curve is empty")
    initial = float(initial_cash)
    rf_daily = (1.0 + risk_free) ** (1.0 / periods_per_year) - 1.0

    stats, rets = _curve_stats(
        eq,
        initial=initial,
        periods_per_year=periods_per_year,
        rf_daily=rf_daily,
        session_tz=session_tz,
    )
    cagr, max_dd = stats["cagr"], stats["max_drawdown"]
    calmar = _num(cagr / abs(max_dd), _RATIO_DP) if cagr is not None and max_dd else None
    r = rets.to_numpy(dtype=float)
    index = pd.DatetimeIndex(eq.index)

    out: dict[str, Any] = {
        "start": index[0].isoformat(),
        "end": index[-1].isoformat(),
        "bars": len(eq),
        "sessions": len(rets),
        "initial_cash": _num(initial, _MONEY_DP),
        "final_equity": _num(eq.iloc[-1], _MONEY_DP),
        "total_return": stats["total_return"],
        "cagr": cagr,
        "annual_volatility": stats["annual_volatility"],
        "sharpe": stats["sharpe"],
        "sortino": stats["sortino"],
        "calmar": calmar,
        "max_drawdown": max_dd,
        "max_drawdown_duration_days": _max_drawdown_duration_days(eq, initial, session_tz),
        "best_day": _num(np.max(r), _FRACTION_DP),
        "worst_day": _num(np.min(r), _FRACTION_DP),
        "exposure": _num(exposure, _FRACTION_DP),
        "turnover": _num(turnover, _RATIO_DP),
        **_trade_stats(round_trips),
        "periods_per_year": periods_per_year,
        "risk_free": _num(risk_free, _FRACTION_DP),
        "benchmark": None,
        "alpha": None,
        "beta": None,
    }
    if benchmark is not None:
        block, bench_rets = _benchmark(
            benchmark,
            first_date=pd.Timestamp(rets.index[0]),
            last_date=pd.Timestamp(rets.index[-1]),
            periods_per_year=periods_per_year,
            rf_daily=rf_daily,
            session_tz=session_tz,
        )
        out["benchmark"] = block
        if bench_rets is not None:
            out["alpha"], out["beta"] = _alpha_beta(
                rets, bench_rets, periods_per_year=periods_per_year, rf_daily=rf_daily
            )
    return out
