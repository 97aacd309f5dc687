"""Streaming features equal batch ones (within 1e-9: absolute below 1, relative above), and
the streaming cross-sectional ranks equal the panel's."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantdesk.ml.features import Feature, FeatureSet, StreamingFeatures, default_feature_set
from quantdesk.ml.features.batch import rank_pct, rank_pct_row

from .test_features_batch import walk

TOLERANCE = 1e-9


def assert_parity(batch: pd.DataFrame, stream: pd.DataFrame) -> None:
    """Same NaN cells; elsewhere |stream - batch| <= 1e-9 * max(1, |batch|)."""
    b, s = batch.to_numpy(), stream[batch.columns].to_numpy()
    np.testing.assert_array_equal(np.isnan(b), np.isnan(s))
    gap = np.abs(s - b) / np.maximum(1.0, np.abs(b))
    worst = np.nanmax(gap, axis=0, initial=0.0)
    assert (worst <= TOLERANCE).all(), dict(zip(batch.columns, worst, strict=True))


def stream_frame(fs: FeatureSet, bars: pd.DataFrame, symbol: str = "X") -> pd.DataFrame:
    live = StreamingFeatures(fs, [symbol])
    rows = [
        live.update(symbol, ts, *row)
        for ts, *row in bars[["open", "high", "low", "close", "volume"]].itertuples()
    ]
    return pd.DataFrame(rows, index=bars.index, columns=fs.series_columns, dtype=float)


@pytest.fixture(scope="module")
def fs() -> FeatureSet:
    return default_feature_set()


def test_stream_equals_batch_on_a_random_walk(fs: FeatureSet) -> None:
    bars = walk(700, seed=11)
    assert_parity(fs.compute_batch(bars), stream_frame(fs, bars))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 160),
    seed=st.integers(0, 2**32 - 1),
    price=st.floats(0.05, 50_000.0),
    sigma=st.floats(1e-5, 0.05),
    quiet=st.floats(0.0, 1.0),
    flat=st.integers(0, 40),
)
def test_stream_equals_batch_on_any_walk(
    n: int, seed: int, price: float, sigma: float, quiet: float, flat: int
) -> None:
    """Any scale and volatility, stretches without volume, runs of unchanged prices."""
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
    if 0 < flat < n:
        close[n - flat :] = close[n - flat]
    bars = walk(n, seed).assign(
        open=np.r_[price, close[:-1]] if n else close,
        close=close,
        volume=np.where(rng.random(n) < quiet, 0, rng.integers(1, 10**6, n)),
    )
    bars["high"] = bars[["open", "close"]].max(axis=1) * (1 + rng.uniform(0, sigma, n))
    bars["low"] = bars[["open", "close"]].min(axis=1) * (1 - rng.uniform(0, sigma, n))
    fs = default_feature_set()
    assert_parity(fs.compute_batch(bars), stream_frame(fs, bars))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from([0.0, -1.5, 2.0, math.nan]), st.floats(-1e6, 1e6)),
        max_size=12,
    )
)
def test_row_ranks_are_exactly_pandas_ranks(values: list[float]) -> None:
    row = np.array(values, dtype=np.float64)
    want = rank_pct(pd.DataFrame([row])).to_numpy()[0] if row.size else row
    np.testing.assert_array_equal(rank_pct_row(row), want)


def test_vector_equals_the_panel_at_each_timestamp(fs: FeatureSet) -> None:
    bars = {"A": walk(90, 1), "B": walk(90, 2), "C": walk(90, 3).drop(walk(90).index[40:45])}
    panel = fs.compute_panel(bars)
    live = StreamingFeatures(fs, list(bars))
    for ts in panel.index.get_level_values("timestamp").unique():
        for symbol, frame in bars.items():
            if ts in frame.index:
                live.update(symbol, ts, *frame.loc[ts, ["open", "high", "low", "close", "volume"]])
        vector = live.vector(ts, require_all=False)
        want = panel.xs(ts, level="timestamp")
        assert list(vector.index) == list(want.index)
        assert_parity(want, vector)
        ranks = [f.name for f in fs.features if f.is_rank]
        np.testing.assert_array_equal(vector[ranks].to_numpy(), want[ranks].to_numpy())


def test_vector_waits_for_every_symbol_unless_told_not_to(fs: FeatureSet) -> None:
    bars = walk(3)
    live = StreamingFeatures(fs, ["A", "B"])
    ts = bars.index[0]
    live.update("A", ts, *bars.iloc[0])
    assert not live.complete(ts)
    assert live.missing(ts) == ["B"]
    with pytest.raises(ValueError, match=r"no bar at .* yet for \['B'\]"):
        live.vector(ts)
    assert list(live.vector(ts, require_all=False).index) == ["A"]
    live.update("B", ts, *bars.iloc[0])
    assert live.complete(ts)
    ranks = live.ranks(ts)
    assert list(ranks.columns) == ["xs_rank_ret_5", "xs_rank_ret_20", "xs_rank_vol_20"]
    assert ranks.isna().all().all()  # nothing to rank in the first bar
    latest = live.latest("B")
    assert latest is not None and latest["time_of_day"] == 0.0  # 03:45 UTC is 09:15 IST
    values = live.update("A", bars.index[1], *bars.iloc[1])
    np.testing.assert_equal(live.latest("A"), values)


def test_bad_bars_are_refused_naming_symbol_and_time(fs: FeatureSet) -> None:
    live = StreamingFeatures(fs, ["NSE:ABC"])
    ts = pd.Timestamp("2024-03-04 04:00", tz="UTC")
    for field, values in {
        "close": (1, 1, 1, math.nan, 5),
        "high": (1, math.inf, 1, 1, 5),
        "open": (0.0, 1, 1, 1, 5),
        "volume": (1, 1, 1, 1, -1),
    }.items():
        with pytest.raises(ValueError, match=re.escape(f"NSE:ABC at {ts}: {field} is")):
            live.update("NSE:ABC", ts, *values)
    live.update("NSE:ABC", ts, 1, 1, 1, 1, 5)
    with pytest.raises(ValueError, match="not after the previous"):
        live.update("NSE:ABC", ts, 1, 1, 1, 1, 5)
    with pytest.raises(KeyError, match="unknown symbol"):
        live.update("NSE:XYZ", ts, 1, 1, 1, 1, 5)
    assert live.latest("NSE:ABC") is not None


def test_sets_with_custom_features_are_refused_for_streaming() -> None:
    fs = FeatureSet("c", 1, (Feature.custom("peek", lambda b: b["close"].shift(-1), 0),))
    with pytest.raises(ValueError, match=r"custom feature\(s\) \['peek'\].*no streaming form"):
        StreamingFeatures(fs, ["A"])
    with pytest.raises(ValueError, match="at least one symbol"):
        StreamingFeatures(default_feature_set(), [])


def test_stream_follows_daylight_saving_like_batch() -> None:
    us = FeatureSet(
        "us",
        1,
        (Feature.make("tod", "time_of_day"), Feature.make("dow", "day_of_week")),
        timezone="America/New_York",
        session_open="09:30",
    )
    index = pd.date_range("2024-03-09", "2024-03-12", freq="53min", tz="UTC")
    bars = walk(len(index)).set_axis(index)
    assert_parity(us.compute_batch(bars), stream_frame(us, bars))
    naive = bars.tz_localize(None)  # naive timestamps are UTC in both
    assert_parity(us.compute_batch(naive), stream_frame(us, naive))
    odd = bars.set_axis((index + pd.Timedelta(milliseconds=250)).as_unit("ms"))
    batch = us.compute_batch(odd)
    assert_parity(batch, stream_frame(us, odd))
    assert batch["tod"].iloc[0] % 1 != 0  # a quarter second past the minute counts


def test_warm_up_feeds_a_frame(fs: FeatureSet) -> None:
    bars = walk(60)
    live = StreamingFeatures(fs, ["A"])
    last = live.warm_up("A", bars)
    batch = fs.compute_batch(bars).iloc[-1]
    assert last is not None
    np.testing.assert_allclose([last[c] for c in fs.series_columns], batch, rtol=1e-9)
