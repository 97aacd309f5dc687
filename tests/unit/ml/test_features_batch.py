"""Batch features: values against their definitions, warm-up, input refusal and the panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from quantdesk.ml.features import Feature, FeatureSet, default_feature_set, nan_only_features


def walk(
    n: int = 600,
    seed: int = 0,
    *,
    start: str = "2024-03-04 03:45",
    tz: str | None = "UTC",
    price: float = 100.0,
    volume: bool = True,
) -> pd.DataFrame:
    """A random walk of 1-minute OHLCV bars (consistent OHLC), indexed by timestamp."""
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.r_[price, close[:-1]] * np.exp(rng.normal(0.0, 0.0005, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0.0, 0.002, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0.0, 0.002, n))
    vol = rng.integers(1_000, 50_000, n).astype(np.int64) if volume else np.zeros(n, np.int64)
    index = pd.date_range(start, periods=n, freq="min", tz=tz, name="timestamp")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": vol}, index=index
    )


@pytest.fixture(scope="module")
def fs() -> FeatureSet:
    return default_feature_set()


def test_output_has_the_bars_index_and_one_float_column_per_feature(fs: FeatureSet) -> None:
    bars = walk()
    out = fs.compute_batch(bars)
    assert out.index.equals(bars.index)
    assert list(out.columns) == fs.series_columns
    assert set(out.dtypes) == {np.dtype(np.float64)}


def test_each_feature_starts_exactly_at_its_lookback(fs: FeatureSet) -> None:
    out = fs.compute_batch(walk())
    for f in fs.features:
        if f.is_rank:
            continue
        values = out[f.name].to_numpy()
        assert np.isnan(values[: f.lookback]).all(), f.name
        assert np.isfinite(values[f.lookback :]).all(), f.name


def test_values_match_their_definitions(fs: FeatureSet) -> None:
    bars = walk(800, seed=3)
    out = fs.compute_batch(bars)
    c, v = bars["close"], bars["volume"].astype(float)
    logret = np.log(c / c.shift(1))
    typical = (bars["high"] + bars["low"] + c) / 3
    mid, sd = c.rolling(20).mean(), c.rolling(20).std(ddof=0)
    _, signal, hist = talib.MACD(c.to_numpy(), 12, 26, 9)
    expected = {
        "ret_5": c / c.shift(5) - 1,
        "ret_20": c / c.shift(20) - 1,
        "logret_1": logret,
        "vol_20": logret.rolling(20).std(ddof=0),
        "rsi_14": pd.Series(talib.RSI(c.to_numpy(), 14), index=c.index),
        "macd_signal": signal / c,
        "macd_hist": hist / c,
        "atr_14": talib.ATR(bars["high"], bars["low"], c, 14) / c,
        "bb_pctb_20": (c - (mid - 2 * sd)) / (4 * sd),
        "volume_z_20": (v - v.rolling(20).mean()) / v.rolling(20).std(ddof=0),
        "vwap_dist_20": c / ((typical * v).rolling(20).sum() / v.rolling(20).sum()) - 1,
        "gap": bars["open"] / c.shift(1) - 1,
    }
    for name, want in expected.items():
        np.testing.assert_allclose(out[name], want, rtol=1e-7, atol=1e-12, err_msg=name)


def test_zero_volume_gives_zero_z_and_a_typical_price_vwap(fs: FeatureSet) -> None:
    bars = walk(200, volume=False)
    out = fs.compute_batch(bars)
    assert (out["volume_z_20"].iloc[19:] == 0.0).all()
    typical = (bars["high"] + bars["low"] + bars["close"]) / 3
    want = bars["close"] / typical.rolling(20).mean() - 1
    np.testing.assert_allclose(out["vwap_dist_20"], want, rtol=1e-9)
    assert np.isfinite(out["vwap_dist_20"].iloc[19:]).all()


def test_windows_without_volume_fall_back_only_where_no_bar_traded(fs: FeatureSet) -> None:
    bars = walk(200)
    bars.iloc[50:90, bars.columns.get_loc("volume")] = 0  # 40 quiet bars
    out = fs.compute_batch(bars)["vwap_dist_20"]
    typical = (bars["high"] + bars["low"] + bars["close"]) / 3
    v = bars["volume"].astype(float)
    vwap = (typical * v).rolling(20).sum() / v.rolling(20).sum()
    quiet = v.rolling(20).max() == 0  # windows ending at rows 69..89
    assert quiet.sum() == 21
    vwap[quiet] = typical.rolling(20).mean()[quiet]
    np.testing.assert_allclose(out, bars["close"] / vwap - 1, rtol=1e-9)
    assert np.isfinite(out.iloc[19:]).all()


def test_flat_windows_give_the_documented_neutral_values(fs: FeatureSet) -> None:
    bars = walk(120)
    bars.iloc[60:100, :4] = 123.45  # 40 bars at one price
    bars.iloc[60:100, 4] = 777
    out = fs.compute_batch(bars)
    flat = out.iloc[80:100]  # windows of 20 bars (and 20 returns) inside the flat stretch
    assert (flat["bb_pctb_20"] == 0.5).all()
    assert (flat["vol_20"] == 0.0).all()
    assert (flat["volume_z_20"] == 0.0).all()
    assert (flat["ret_1"] == 0.0).all()


def test_calendar_features_are_in_exchange_time(fs: FeatureSet) -> None:
    # 03:46 UTC is 09:16 IST, the first NSE minute bar (labelled by its end).
    bars = walk(3, start="2024-03-04 03:46")
    out = fs.compute_batch(bars)
    assert out["time_of_day"].tolist() == [1.0, 2.0, 3.0]
    assert out["day_of_week"].tolist() == [0.0, 0.0, 0.0]  # a Monday
    local = fs.compute_batch(walk(3, start="2024-03-04 09:16", tz="Asia/Kolkata"))
    pd.testing.assert_frame_equal(local.reset_index(drop=True), out.reset_index(drop=True))
    naive = fs.compute_batch(walk(3, start="2024-03-04 03:46", tz=None))  # naive = UTC
    assert naive["time_of_day"].tolist() == [1.0, 2.0, 3.0]


def test_calendar_features_follow_daylight_saving() -> None:
    us = FeatureSet(
        "us",
        1,
        (Feature.make("tod", "time_of_day"), Feature.make("dow", "day_of_week")),
        timezone="America/New_York",
        session_open="09:30",
    )
    # Hourly bars across the 2024-03-10 and 2024-11-03 switches, some on exact seconds.
    index = pd.date_range("2024-03-08", "2024-11-05", freq="37min", tz="UTC")
    bars = walk(len(index)).set_axis(index)
    out = us.compute_batch(bars)
    local = index.tz_convert("America/New_York")
    want_tod = (local.hour * 60 + local.minute + local.second / 60) - 570
    np.testing.assert_array_equal(out["tod"].to_numpy(), want_tod.to_numpy(dtype=float))
    np.testing.assert_array_equal(out["dow"].to_numpy(), local.day_of_week.to_numpy(dtype=float))


def test_numpy_kernels_equal_their_talib_definitions_to_the_bit(fs: FeatureSet) -> None:
    # Returns in numpy, the volatility as STDDEV and the volume mean as SUM / w: the same
    # floats as TA-Lib's ROCP, sqrt(VAR) and SMA, flat stretches included.
    bars = walk(3000, seed=5, price=30_000.0)
    bars.iloc[100:160, :4] = 123.45
    bars.iloc[100:160, 4] = 777
    bars.iloc[400:430, 4] = 0
    out = fs.compute_batch(bars)
    c, v = bars["close"].to_numpy(), bars["volume"].to_numpy(dtype=float)
    for h in (1, 5, 20):
        np.testing.assert_array_equal(out[f"ret_{h}"].to_numpy(), talib.ROCP(c, h))
    logret = np.log1p(talib.ROCP(c, 1))
    np.testing.assert_array_equal(out["logret_1"].to_numpy(), logret)
    vol = np.sqrt(np.maximum(talib.VAR(logret, 20), 0.0))
    np.testing.assert_array_equal(out["vol_20"].to_numpy(), vol)
    sd = talib.STDDEV(v, 20)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (v - talib.SMA(v, 20)) / sd
    z[sd == 0.0] = 0.0
    np.testing.assert_array_equal(out["volume_z_20"].to_numpy(), z)
    assert (out["vol_20"].iloc[121:160] == 0.0).all()


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize(
    ("zone", "session_open"), [("Asia/Kolkata", "09:15"), ("Europe/London", "08:00")]
)
def test_calendar_features_are_the_streams_floats_in_every_unit(
    unit: str, zone: str, session_open: str
) -> None:
    from zoneinfo import ZoneInfo

    from quantdesk.ml.features._clock import wall_clock

    fs = FeatureSet(
        "cal",
        1,
        (Feature.make("tod", "time_of_day"), Feature.make("dow", "day_of_week")),
        timezone=zone,
        session_open=session_open,
    )
    rng = np.random.default_rng(len(unit))
    span = (pd.Timestamp("1965-01-01"), pd.Timestamp("2031-01-01"))
    stamps = np.unique(rng.integers(span[0].value, span[1].value, 3000))
    index = pd.DatetimeIndex(stamps, tz="UTC").as_unit(unit)
    index = index[~index.duplicated()]
    out = fs.compute_batch(walk(len(index)).set_axis(index))
    hours, minutes = session_open.split(":")
    opening = int(hours) * 3600 + int(minutes) * 60
    want = [wall_clock(int(ts.value), ZoneInfo(zone), opening) for ts in index]
    np.testing.assert_array_equal(out["tod"].to_numpy(), [m for m, _ in want])
    np.testing.assert_array_equal(out["dow"].to_numpy(), [float(d) for _, d in want])


@pytest.mark.parametrize(
    ("column", "row", "value", "message"),
    [
        ("close", 7, np.nan, "close is nan at row 7"),
        ("high", 3, np.inf, "high is inf at row 3"),
        ("low", 0, 0.0, "low is 0.0 at row 0"),
        ("open", 5, -1.0, "open is -1.0 at row 5"),
        ("volume", 9, -5, "volume is -5.0 at row 9"),
        ("volume", 49, np.nan, "volume is nan at row 49"),
        ("close", 31, np.inf, "close is inf at row 31"),
    ],
)
def test_bad_values_are_refused_naming_symbol_row_and_time(
    fs: FeatureSet, column: str, row: int, value: float, message: str
) -> None:
    bars = walk(50).astype({"volume": float})
    bars.iloc[row, bars.columns.get_loc(column)] = value
    with pytest.raises(ValueError, match=message) as caught:
        fs.compute_batch(bars, symbol="NSE:ABC")
    assert str(caught.value).startswith("NSE:ABC: ")
    assert str(bars.index[row]) in str(caught.value)


def test_bad_values_in_later_blocks_are_named_column_first(fs: FeatureSet) -> None:
    # Values are checked a block of rows at a time; the message is still the first bad value
    # in column order (open, high, low, close, volume), then by row.
    bars = walk(200_000, seed=2).astype({"volume": float})
    bars.iloc[190_000, bars.columns.get_loc("volume")] = np.nan
    with pytest.raises(ValueError, match="volume is nan at row 190000"):
        fs.compute_batch(bars)
    bars.iloc[10, bars.columns.get_loc("volume")] = -1.0
    bars.iloc[150_000, bars.columns.get_loc("open")] = np.inf
    with pytest.raises(ValueError, match="open is inf at row 150000"):
        fs.compute_batch(bars)


def test_bad_indexes_and_shapes_are_refused(fs: FeatureSet) -> None:
    bars = walk(30)
    with pytest.raises(ValueError, match="increase strictly; row 5"):
        fs.compute_batch(bars.iloc[[0, 1, 2, 3, 4, 4, 5]])
    with pytest.raises(ValueError, match="increase strictly; row 1"):
        fs.compute_batch(bars.iloc[[3, 2]])
    with pytest.raises(ValueError, match="DatetimeIndex"):
        fs.compute_batch(bars.reset_index())
    with pytest.raises(ValueError, match=r"lack column\(s\) \['volume'\]"):
        fs.compute_batch(bars.drop(columns="volume"))


def test_nan_only_features_names_what_cannot_be_trained_on(fs: FeatureSet) -> None:
    short = fs.compute_batch(walk(15))
    assert nan_only_features(short) == [
        f.name for f in fs.features if f.lookback >= 15 and not f.is_rank
    ]
    assert nan_only_features(fs.compute_batch(walk(0))) == fs.series_columns
    assert nan_only_features(fs.compute_batch(walk(300))) == []


def test_custom_features_run_on_the_bars_and_are_checked() -> None:
    double = Feature.custom("twice", lambda b: b["close"] * 2, lookback=2)
    fs = FeatureSet("c", 1, (double,))
    bars = walk(10)
    out = fs.compute_batch(bars)
    assert out["twice"].isna().sum() == 2
    np.testing.assert_array_equal(out["twice"].iloc[2:], bars["close"].iloc[2:] * 2)
    assert not bars["close"].isna().any()  # blanking the warm-up did not write into the bars
    short = FeatureSet("c", 1, (Feature.custom("bad", lambda b: b["close"].to_numpy()[1:], 0),))
    with pytest.raises(ValueError, match="bad gave 9 values for 10 bars"):
        short.compute_batch(bars)
    with pytest.raises(ValueError, match="infinite"):
        FeatureSet("c", 1, (Feature.custom("inf", lambda b: b["close"] / 0.0, 0),)).compute_batch(
            bars
        )


def test_panel_ranks_each_timestamp_over_the_symbols_there(fs: FeatureSet) -> None:
    bars = {"A": walk(120, 1), "B": walk(120, 2), "C": walk(100, 3).iloc[30:]}
    calls: list[tuple[int, int]] = []
    panel = fs.compute_panel(bars, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert panel.index.names == ["timestamp", "symbol"]
    assert panel.index.is_monotonic_increasing
    assert list(panel.columns) == fs.columns
    assert len(panel) == 120 + 120 + 70
    for symbol, frame in bars.items():  # per-symbol columns are compute_batch's
        own = panel.xs(symbol, level="symbol")[fs.series_columns]
        want = fs.compute_batch(frame)
        pd.testing.assert_frame_equal(own, want, check_names=False, check_freq=False)
    ts = bars["C"].index[10]  # C has no ret_20 yet there: A and B are ranked among themselves
    row = panel.xs(ts, level="timestamp")
    assert np.isnan(row.loc["C", "xs_rank_ret_20"])
    assert sorted(row["xs_rank_ret_20"].dropna()) == [0.5, 1.0]
    later = panel.xs(bars["C"].index[-1], level="timestamp")
    want = later["ret_5"].rank(pct=True)
    np.testing.assert_array_equal(later["xs_rank_ret_5"], want)
    assert sorted(later["xs_rank_ret_5"]) == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_panel_ties_share_their_average_rank() -> None:
    fs = FeatureSet("t", 1, (Feature.make("r", "return", horizon=1), Feature.rank("x", of="r")))
    a = walk(5, 1)
    b = a.copy()  # identical bars: identical returns
    panel = fs.compute_panel({"A": a, "B": b, "C": walk(5, 9)})
    row = panel.xs(a.index[2], level="timestamp")["x"]
    assert row["A"] == row["B"] and row["A"] in (0.5, 5 / 6)


def test_panel_of_several_time_zones_is_in_utc(fs: FeatureSet) -> None:
    utc, ist = walk(50, 1), walk(50, 2, start="2024-03-04 09:15", tz="Asia/Kolkata")
    panel = fs.compute_panel({"A": utc, "B": ist})
    assert str(panel.index.levels[0].tz) == "UTC"
    row = panel.xs(utc.index[40], level="timestamp")  # the same instant for both
    assert sorted(row["xs_rank_ret_20"]) == [0.5, 1.0]
    same = fs.compute_panel({"B": ist})
    assert str(same.index.levels[0].tz) == "Asia/Kolkata"


def test_panel_refuses_mixed_naive_and_aware_and_handles_no_symbols(fs: FeatureSet) -> None:
    with pytest.raises(ValueError, match="naive and tz-aware"):
        fs.compute_panel({"A": walk(5), "B": walk(5, tz=None)})
    empty = fs.compute_panel({})
    assert empty.empty and list(empty.columns) == fs.columns
