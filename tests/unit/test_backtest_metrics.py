"""Backtest metrics against hand-computed cases, and drawdown properties."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.backtest.metrics import (
    RoundTrip,
    compute_metrics,
    daily_equity,
    daily_returns,
    drawdown_series,
    monthly_returns,
)

IST = "Asia/Kolkata"


def _daily_curve(values: list[float], start: str = "2024-01-01") -> pd.Series:
    """One bar per calendar day at 15:29 IST (09:59 UTC)."""
    idx = pd.date_range(f"{start} 09:59", periods=len(values), freq="D", tz="UTC")
    return pd.Series(values, index=idx, dtype=float)


def _curve_on(dates: list[str], values: list[float]) -> pd.Series:
    idx = pd.DatetimeIndex([pd.Timestamp(f"{d} 15:29", tz=IST) for d in dates]).tz_convert("UTC")
    return pd.Series(values, index=idx, dtype=float)


def _metrics(equity: pd.Series, initial: float = 100.0, **kw: object) -> dict[str, object]:
    args: dict[str, object] = {
        "initial_cash": initial,
        "round_trips": [],
        "exposure": 0.5,
        "turnover": 1.0,
    }
    args.update(kw)
    return compute_metrics(equity, **args)  # type: ignore[arg-type]


def _trip(net: str, *, side: str = "LONG", bars: int = 5) -> RoundTrip:
    t0 = datetime(2024, 1, 2, 4, 0, tzinfo=UTC)
    return RoundTrip(
        symbol="NSE:INFY",
        side=side,
        quantity=10,
        entry_time=t0,
        exit_time=t0 + timedelta(hours=2),
        entry_price=Decimal("1500.00"),
        exit_price=Decimal("1510.00"),
        gross_pnl=Decimal(net) + Decimal("2.50"),
        charges=Decimal("2.50"),
        net_pnl=Decimal(net),
        bars_held=bars,
    )


def _assert_json_clean(m: dict[str, object]) -> None:
    json.dumps(m, allow_nan=False)  # raises on NaN or infinity


# --- the hand-computed three-day case ----------------------------------------------------------


def test_three_day_curve_by_hand() -> None:
    eq = _daily_curve([100.0, 110.0, 99.0])
    rets = daily_returns(eq, 100.0, IST)
    assert rets.tolist() == pytest.approx([0.0, 0.1, -0.1])
    m = _metrics(eq)
    assert m["total_return"] == pytest.approx(-0.01)
    assert m["max_drawdown"] == pytest.approx(-0.1)
    assert m["best_day"] == pytest.approx(0.1)
    assert m["worst_day"] == pytest.approx(-0.1)
    assert m["sessions"] == 3
    assert m["bars"] == 3
    assert m["final_equity"] == 99.0
    # mean 0 -> Sharpe 0; CAGR over 3 trading days of 252.
    assert m["sharpe"] == pytest.approx(0.0)
    assert m["cagr"] == pytest.approx(0.99 ** (252 / 3) - 1, abs=1e-6)
    assert m["annual_volatility"] == pytest.approx(np.std([0, 0.1, -0.1], ddof=1) * math.sqrt(252))
    # Peak on day 2, never regained by the last day (day 3).
    assert m["max_drawdown_duration_days"] == 1
    _assert_json_clean(m)


def test_first_day_is_measured_from_initial_cash() -> None:
    m = _metrics(_daily_curve([95.0, 95.0]), initial=100.0)
    assert m["total_return"] == pytest.approx(-0.05)
    assert m["worst_day"] == pytest.approx(-0.05)
    assert m["max_drawdown"] == pytest.approx(-0.05)  # the initial cash is the first peak


def test_sharpe_sortino_volatility_by_hand() -> None:
    values = [1010.0, 1000.0, 1030.0, 1025.0, 1040.0, 1035.0]
    initial = 1000.0
    m = _metrics(_daily_curve(values), initial=initial)
    r = np.array(values) / np.array([initial, *values[:-1]]) - 1
    sharpe = r.mean() / r.std(ddof=1) * math.sqrt(252)
    downside = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) * math.sqrt(252)
    assert m["sharpe"] == pytest.approx(sharpe, abs=1e-4)
    assert m["sortino"] == pytest.approx(r.mean() * 252 / downside, abs=1e-4)
    assert m["annual_volatility"] == pytest.approx(r.std(ddof=1) * math.sqrt(252), abs=1e-6)
    cagr = (values[-1] / initial) ** (252 / len(values)) - 1
    assert m["cagr"] == pytest.approx(cagr, rel=1e-6)
    mdd = 1000.0 / 1010.0 - 1
    assert m["max_drawdown"] == pytest.approx(mdd, abs=1e-6)
    assert m["calmar"] == pytest.approx(cagr / abs(mdd), rel=1e-3)


def test_risk_free_is_an_annual_rate() -> None:
    values = [1010.0, 1000.0, 1030.0, 1025.0, 1040.0]
    m = _metrics(_daily_curve(values), initial=1000.0, risk_free=0.065)
    r = np.array(values) / np.array([1000.0, *values[:-1]]) - 1
    excess = r - (1.065 ** (1 / 252) - 1)
    assert m["sharpe"] == pytest.approx(excess.mean() / excess.std(ddof=1) * math.sqrt(252), 1e-4)


def test_intraday_bars_resample_to_the_last_bar_of_each_ist_session() -> None:
    ts = [
        "2024-01-01 09:15",
        "2024-01-01 15:29",
        "2024-01-02 09:15",
        "2024-01-02 15:29",
    ]
    idx = pd.DatetimeIndex([pd.Timestamp(t, tz=IST) for t in ts]).tz_convert("UTC")
    eq = pd.Series([101.0, 102.0, 90.0, 104.0], index=idx)
    daily = daily_equity(eq, IST)
    assert daily.tolist() == [102.0, 104.0]
    assert [d.date().isoformat() for d in daily.index] == ["2024-01-01", "2024-01-02"]
    m = _metrics(eq)
    assert m["sessions"] == 2
    assert m["best_day"] == pytest.approx(0.02)
    # The intraday dip to 90 counts: drawdown is measured per bar.
    assert m["max_drawdown"] == pytest.approx(90.0 / 102.0 - 1, abs=1e-6)


def test_session_dates_are_taken_in_ist_not_utc() -> None:
    # 20:00 UTC on Jan 1 is 01:30 IST on Jan 2.
    idx = pd.DatetimeIndex(["2024-01-01 05:00", "2024-01-01 20:00"], tz="UTC")
    daily = daily_equity(pd.Series([1.0, 2.0], index=idx), IST)
    assert [d.date().isoformat() for d in daily.index] == ["2024-01-01", "2024-01-02"]
    daily_utc = daily_equity(pd.Series([1.0, 2.0], index=idx), "UTC")
    assert daily_utc.tolist() == [2.0]


def test_naive_index_is_session_local() -> None:
    eq = pd.Series([100.0, 110.0], index=pd.DatetimeIndex(["2024-01-01", "2024-01-02"]))
    m = _metrics(eq)
    assert m["sessions"] == 2
    assert m["total_return"] == pytest.approx(0.1)


def test_unsorted_input_with_nans_is_cleaned() -> None:
    eq = _daily_curve([100.0, 110.0, 99.0])
    messy = pd.concat([eq.iloc[[2, 0, 1]], pd.Series([np.nan], index=[eq.index[0]])])
    assert _metrics(messy)["total_return"] == pytest.approx(-0.01)


# --- drawdown duration -------------------------------------------------------------------------


def test_drawdown_duration_peak_to_recovery_in_calendar_days() -> None:
    eq = _curve_on(
        ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-08", "2024-01-10", "2024-01-11"],
        [100.0, 120.0, 100.0, 110.0, 121.0, 118.0],
    )
    m = _metrics(eq)
    # Under water from the Jan 2 peak until Jan 10 regains it: 8 days; then 1 day to the end.
    assert m["max_drawdown_duration_days"] == 8
    assert m["max_drawdown"] == pytest.approx(100.0 / 120.0 - 1, abs=1e-6)


def test_drawdown_duration_runs_to_the_end_when_not_recovered() -> None:
    eq = _curve_on(
        ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-31"],
        [100.0, 105.0, 100.0, 106.0, 101.0],
    )
    assert _metrics(eq)["max_drawdown_duration_days"] == 27  # Jan 4 -> Jan 31


def test_drawdown_duration_from_initial_cash_and_zero_without_drawdown() -> None:
    below = _curve_on(["2024-01-01", "2024-01-05", "2024-01-06"], [99.0, 98.0, 100.0])
    assert _metrics(below)["max_drawdown_duration_days"] == 5  # start -> recovery on Jan 6
    rising = _curve_on(["2024-01-01", "2024-01-05"], [101.0, 102.0])
    m = _metrics(rising)
    assert m["max_drawdown_duration_days"] == 0
    assert m["max_drawdown"] == 0.0
    assert m["calmar"] is None


# --- undefined is None -------------------------------------------------------------------------


def test_flat_curve_has_no_sharpe() -> None:
    m = _metrics(_daily_curve([100.0] * 10))
    assert m["sharpe"] is None
    assert m["sortino"] is None
    assert m["calmar"] is None
    assert m["annual_volatility"] == 0.0
    assert m["total_return"] == 0.0
    assert m["max_drawdown"] == 0.0
    _assert_json_clean(m)


def test_single_session_run_has_no_annualised_statistics() -> None:
    ts = pd.DatetimeIndex(["2024-01-01 04:00", "2024-01-01 09:00"], tz="UTC")
    m = _metrics(pd.Series([100.0, 103.0], index=ts))
    assert m["sessions"] == 1
    assert m["total_return"] == pytest.approx(0.03)
    for key in ("cagr", "annual_volatility", "sharpe", "sortino", "calmar"):
        assert m[key] is None, key
    _assert_json_clean(m)


def test_no_round_trips_gives_no_trade_statistics() -> None:
    m = _metrics(_daily_curve([100.0, 101.0]))
    assert m["trades"] == 0
    assert m["win_rate"] is None
    assert m["profit_factor"] is None
    assert m["average_trade"] is None
    _assert_json_clean(m)


def test_never_nan_or_inf_for_all_positive_returns() -> None:
    # No losing day: Sortino's downside is zero -> None, not inf.
    m = _metrics(_daily_curve([101.0, 102.0, 103.0]), round_trips=[_trip("10")])
    assert m["sortino"] is None
    assert m["profit_factor"] is None  # no losing trade
    _assert_json_clean(m)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="empty"):
        _metrics(pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float))
    with pytest.raises(ValueError, match="initial_cash"):
        _metrics(_daily_curve([1.0]), initial=0.0)
    with pytest.raises(TypeError, match="DatetimeIndex"):
        _metrics(pd.Series([1.0, 2.0]))


# --- trades ------------------------------------------------------------------------------------


def test_trade_statistics_by_hand() -> None:
    trips = [_trip("100"), _trip("-50", side="SHORT"), _trip("30"), _trip("0")]
    m = _metrics(_daily_curve([100.0, 101.0]), round_trips=trips)
    assert m["trades"] == 4
    assert m["long_trades"] == 3
    assert m["short_trades"] == 1
    assert m["win_rate"] == pytest.approx(2 / 4)  # a zero P&L is not a win
    assert m["profit_factor"] == pytest.approx(130 / 50)
    assert m["average_trade"] == pytest.approx(80 / 4)
    assert isinstance(m["average_trade"], float)
    assert m["average_win"] == pytest.approx(65.0)
    assert m["average_loss"] == pytest.approx(-50.0)
    assert m["largest_win"] == pytest.approx(100.0)
    assert m["largest_loss"] == pytest.approx(-50.0)
    assert m["net_pnl"] == pytest.approx(80.0)
    assert m["trade_charges"] == pytest.approx(10.0)
    assert m["average_bars_held"] == pytest.approx(5.0)
    _assert_json_clean(m)


def test_round_trip_validates_side_and_quantity() -> None:
    with pytest.raises(ValueError, match="side"):
        _trip("1", side="BUY")
    t = _trip("1")
    with pytest.raises(ValueError, match="quantity"):
        RoundTrip(**{**{f: getattr(t, f) for f in RoundTrip.__dataclass_fields__}, "quantity": 0})


def test_exposure_and_turnover_pass_through() -> None:
    m = _metrics(_daily_curve([100.0, 101.0]), exposure=0.25, turnover=3.5)
    assert m["exposure"] == 0.25
    assert m["turnover"] == 3.5


# --- benchmark ---------------------------------------------------------------------------------


def test_benchmark_is_buy_and_hold_over_the_same_span() -> None:
    eq = _curve_on(["2024-01-02", "2024-01-03", "2024-01-04"], [100.0, 102.0, 101.0])
    # Daily closes on a naive date index, with a date before and after the run.
    bench = pd.Series(
        [10.0, 200.0, 210.0, 190.0, 220.0, 999.0],
        index=pd.DatetimeIndex(
            ["2023-12-29", "2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
        ),
    )
    m = _metrics(eq, benchmark=bench)
    b = m["benchmark"]
    assert isinstance(b, dict)
    assert b["total_return"] == pytest.approx(220.0 / 210.0 - 1, abs=1e-6)
    assert b["max_drawdown"] == pytest.approx(190.0 / 210.0 - 1, abs=1e-6)
    r = np.array([0.0, 190 / 210 - 1, 220 / 190 - 1])
    assert b["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252), abs=1e-4)
    assert set(b) == {"total_return", "cagr", "annual_volatility", "sharpe", "max_drawdown"}
    assert m["alpha"] is not None
    assert m["beta"] is not None
    _assert_json_clean(m)


def test_alpha_and_beta_of_a_leveraged_benchmark() -> None:
    bench_rets = np.array([0.01, -0.02, 0.015, 0.005, -0.01, 0.02])
    dates = pd.date_range("2024-01-01", periods=7, freq="D").tz_localize(IST)
    # Day 1 flat for both (the benchmark is bought at its day-1 close); then 2x the benchmark.
    bench = pd.Series(50.0 * np.cumprod(np.concatenate(([1.0], 1 + bench_rets))), index=dates)
    eq = pd.Series(1000.0 * np.cumprod(np.concatenate(([1.0], 1 + 2 * bench_rets))), index=dates)
    m = _metrics(eq, initial=1000.0, benchmark=bench)
    assert m["beta"] == pytest.approx(2.0, abs=1e-4)
    assert m["alpha"] == pytest.approx(0.0, abs=1e-6)


def test_flat_or_missing_benchmark() -> None:
    eq = _daily_curve([100.0, 101.0, 102.0])
    assert _metrics(eq)["benchmark"] is None
    flat = pd.Series(100.0, index=eq.index)
    m = _metrics(eq, benchmark=flat)
    assert m["benchmark"]["total_return"] == 0.0  # type: ignore[index]
    assert m["benchmark"]["sharpe"] is None  # type: ignore[index]
    assert m["beta"] is None
    assert m["alpha"] is None
    outside = pd.Series([1.0, 2.0], index=pd.DatetimeIndex(["2020-01-01", "2020-01-02"]))
    m = _metrics(eq, benchmark=outside)
    assert m["benchmark"] is None
    _assert_json_clean(m)


# --- monthly returns ---------------------------------------------------------------------------


def test_monthly_returns_table() -> None:
    eq = _curve_on(
        ["2023-12-28", "2024-01-15", "2024-01-31", "2024-02-29", "2024-04-02"],
        [105.0, 99.0, 110.0, 99.0, 108.9],
    )
    table = monthly_returns(eq, IST, initial=100.0)
    assert list(table.columns) == list(range(1, 13))
    assert list(table.index) == [2023, 2024]
    assert table.loc[2023, 12] == pytest.approx(0.05)
    assert table.loc[2024, 1] == pytest.approx(110 / 105 - 1)
    assert table.loc[2024, 2] == pytest.approx(-0.1)
    assert math.isnan(table.loc[2024, 3])
    assert table.loc[2024, 4] == pytest.approx(0.1)
    assert math.isnan(table.loc[2023, 1])
    # Without the initial cash the first month is measured from the first value.
    assert monthly_returns(eq, IST).loc[2023, 12] == pytest.approx(0.0)


# --- drawdown properties -----------------------------------------------------------------------


def test_drawdown_series_by_hand() -> None:
    dd = drawdown_series(_daily_curve([100.0, 120.0, 90.0, 130.0]))
    assert dd.tolist() == pytest.approx([0.0, 0.0, -0.25, 0.0])
    dd = drawdown_series(_daily_curve([90.0, 95.0]), initial=100.0)
    assert dd.tolist() == pytest.approx([-0.1, -0.05])


positive_curves = st.lists(
    st.floats(min_value=1e-3, max_value=1e9, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(values=positive_curves, initial=st.floats(min_value=1e-3, max_value=1e9))
def test_max_drawdown_is_the_minimum_of_the_drawdown_series(
    values: list[float], initial: float
) -> None:
    # Several bars a day, so per-bar and daily resolution differ.
    idx = pd.date_range("2024-01-01 03:45", periods=len(values), freq="3h", tz="UTC")
    eq = pd.Series(values, index=idx)
    m = _metrics(eq, initial=initial)
    dd = drawdown_series(eq, initial=initial)
    assert m["max_drawdown"] == pytest.approx(float(dd.min()), abs=1e-6)
    assert -1.0 <= m["max_drawdown"] <= 0.0  # type: ignore[operator]
    assert ((dd >= -1.0) & (dd <= 0.0)).all()
    duration = m["max_drawdown_duration_days"]
    assert isinstance(duration, int)
    assert 0 <= duration <= (idx[-1] - idx[0]).days + 1
    _assert_json_clean(m)
    # Without an initial value the first bar is the first peak.
    assert float(drawdown_series(eq).min()) == pytest.approx(
        min(v / max(values[: i + 1]) - 1 for i, v in enumerate(values))
    )
