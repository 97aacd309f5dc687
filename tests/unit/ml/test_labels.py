"""Labels: forward returns, dead-zone signs, the triple barrier against a plain loop, uniqueness
weights against their definition, per-symbol application, and nothing past the data."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from quantdesk.ml.labels import (
    apply_per_symbol,
    concurrency,
    ewm_volatility,
    forward_return,
    sign_label,
    triple_barrier,
    triple_barrier_frame,
    uniqueness_weights,
)


def random_walk(n: int, seed: int, vol: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))


prices = hnp.arrays(
    np.float64,
    st.integers(1, 80),
    elements=st.floats(1.0, 1000.0, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=100, deadline=None)
@given(close=prices, h=st.integers(1, 10))
def test_forward_return_is_the_h_bar_return_and_nan_past_the_data(close, h):
    out = forward_return(close, h)
    n = len(close)
    assert out.shape == (n,)
    assert np.isnan(out[max(n - h, 0) :]).all()
    for t in range(n - h):
        assert out[t] == pytest.approx(close[t + h] / close[t] - 1.0, rel=1e-12)


def test_forward_return_rejects_a_non_positive_horizon():
    with pytest.raises(ValueError, match="positive integer"):
        forward_return([1.0, 2.0], 0)


@settings(max_examples=100, deadline=None)
@given(
    ret=hnp.arrays(np.float64, 30, elements=st.floats(-0.1, 0.1)),
    sigma=hnp.arrays(np.float64, 30, elements=st.floats(0.0, 0.05)),
    dead=st.floats(0.0, 3.0),
)
def test_sign_label_uses_a_volatility_scaled_dead_zone(ret, sigma, dead):
    zero = sign_label(ret, dead, sigma=sigma)
    drop = sign_label(ret, dead, sigma=sigma, neutral="drop")
    d = dead * sigma
    np.testing.assert_array_equal(zero[ret > d], 1.0)
    np.testing.assert_array_equal(zero[ret < -d], -1.0)
    inside = np.abs(ret) <= d
    np.testing.assert_array_equal(zero[inside], 0.0)
    assert np.isnan(drop[inside]).all()
    np.testing.assert_array_equal(drop[~inside], zero[~inside])


def test_sign_label_propagates_missing_returns():
    out = sign_label([np.nan, 0.02, -0.02, 0.001], 0.005)
    assert np.isnan(out[0])
    np.testing.assert_array_equal(out[1:], [1.0, -1.0, 0.0])


def test_ewm_volatility_is_causal_and_matches_pandas():
    close = random_walk(600, seed=1)
    full = ewm_volatility(close, span=50)
    truncated = ewm_volatility(close[:400], span=50)
    np.testing.assert_allclose(full[:400], truncated, rtol=0, atol=0)
    expected = pd.Series(close).pct_change().ewm(span=50, min_periods=20).std().to_numpy()
    np.testing.assert_allclose(full, expected, equal_nan=True)
    assert np.isnan(full[:20]).all() and np.isfinite(full[20:]).all()


def naive_triple_barrier(close, sigma, pt, sl, h, vertical):
    n = len(close)
    label = np.full(n, np.nan)
    t1 = np.full(n, -1)
    ret = np.full(n, np.nan)
    for t in range(n - h):
        s = sigma[t]
        if not (np.isfinite(s) and s > 0):
            continue
        for k in range(1, h + 1):
            r = close[t + k] / close[t] - 1.0
            if pt is not None and r >= pt * s:
                label[t], t1[t], ret[t] = 1.0, t + k, r
                break
            if sl is not None and r <= -sl * s:
                label[t], t1[t], ret[t] = -1.0, t + k, r
                break
        else:
            r = close[t + h] / close[t] - 1.0
            label[t] = np.sign(r) if vertical == "sign" else 0.0
            t1[t], ret[t] = t + h, r
    return label, t1, ret


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 120),
    h=st.integers(1, 15),
    pt=st.one_of(st.none(), st.floats(0.2, 3.0)),
    sl=st.one_of(st.none(), st.floats(0.2, 3.0)),
    vertical=st.sampled_from(["sign", "zero"]),
)
def test_triple_barrier_matches_a_plain_loop(seed, n, h, pt, sl, vertical):
    close = random_walk(n, seed)
    sigma = np.full(n, 0.01)
    sigma[: min(n, 3)] = np.nan  # warm-up bars have no volatility yet: no label
    tb = triple_barrier(close, sigma, pt, sl, h, vertical=vertical)
    label, t1, ret = naive_triple_barrier(close, sigma, pt, sl, h, vertical)
    np.testing.assert_array_equal(tb.label, label)
    np.testing.assert_array_equal(tb.t1, t1)
    np.testing.assert_allclose(tb.ret, ret, equal_nan=True)
    valid = tb.valid
    assert (tb.t1[valid] > np.flatnonzero(valid)).all()
    assert (tb.t1[valid] <= np.flatnonzero(valid) + h).all()
    assert not valid[max(n - h, 0) :].any(), "a label whose span runs past the data"


def test_triple_barrier_reports_which_barrier_ended_the_span():
    close = np.array([100.0, 101.0, 103.0, 100.0, 97.0, 97.5, 98.0, 98.0])
    sigma = np.full(len(close), 0.01)
    tb = triple_barrier(close, sigma, 2.0, 2.0, 3, vertical="zero")
    # t=0: +3% at t=2 hits the upper barrier (2%). t=1: +1.98%, -0.99%, then -3.96% at t=4 (the
    # last bar of its span): a touch there beats the vertical barrier.
    assert (tb.label[0], tb.t1[0], tb.barrier[0]) == (1.0, 2, 1)
    assert (tb.label[1], tb.t1[1], tb.barrier[1]) == (-1.0, 4, -1)
    # t=4: 97.5, 98, 98 are all within 2% of 97: the vertical barrier, label 0.
    assert (tb.label[4], tb.t1[4], tb.barrier[4]) == (0.0, 7, 0)
    assert not tb.valid[5:].any()


def test_triple_barrier_on_a_million_bars_takes_seconds():
    close = random_walk(1_000_000, seed=3, vol=0.001)
    sigma = ewm_volatility(close, 100)
    started = time.perf_counter()
    tb = triple_barrier(close, sigma, 2.0, 2.0, 50)
    elapsed = time.perf_counter() - started
    assert elapsed < 10.0, f"{elapsed:.1f} s"
    assert tb.valid.sum() > 990_000


def naive_uniqueness(t0, t1, n_bars):
    c = np.zeros(n_bars)
    for a, b in zip(t0, t1, strict=True):
        c[a : b + 1] += 1
    return c, np.array([np.mean(1.0 / c[a : b + 1]) for a, b in zip(t0, t1, strict=True)])


@settings(max_examples=150, deadline=None)
@given(spans=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 10)), min_size=1, max_size=40))
def test_uniqueness_weights_match_their_definition(spans):
    t0 = np.array([a for a, _ in spans])
    t1 = t0 + np.array([d for _, d in spans])
    n_bars = int(t1.max()) + 3
    c, expected = naive_uniqueness(t0, t1, n_bars)
    np.testing.assert_array_equal(concurrency(t0, t1, n_bars), c)
    w = uniqueness_weights(t0, t1, n_bars)
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    assert ((w > 0) & (w <= 1 + 1e-12)).all()


def test_uniqueness_of_disjoint_and_identical_spans():
    np.testing.assert_array_equal(uniqueness_weights([0, 3, 6], [2, 5, 8], 9), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(uniqueness_weights([2, 2, 2, 2], [5, 5, 5, 5], 9), [0.25] * 4)
    # Forward returns over h bars at every bar: interior labels share each bar with h+1 others.
    h, n = 4, 200
    t0 = np.arange(n - h)
    w = uniqueness_weights(t0, t0 + h, n)
    assert w[50] == pytest.approx(1.0 / (h + 1))


def test_uniqueness_rejects_spans_outside_the_bars():
    with pytest.raises(ValueError, match="0 <= t0 <= t1 < n_bars"):
        uniqueness_weights([0, 5], [3, 10], 10)
    with pytest.raises(ValueError, match="0 <= t0 <= t1 < n_bars"):
        uniqueness_weights([4], [3], 10)


def panel(symbols: list[str], n: int) -> pd.Series:
    times = pd.date_range("2024-01-01 09:15", periods=n, freq="5min", tz="UTC")
    frames = {s: pd.Series(random_walk(n, seed=i), index=times) for i, s in enumerate(symbols)}
    series = pd.concat(frames, names=["symbol", "timestamp"]).swaplevel().sort_index()
    return series.rename("close")


def test_apply_per_symbol_labels_each_symbol_on_its_own_and_keeps_the_panel_order():
    close = panel(["AAA", "BBB", "CCC"], 60)
    shuffled = close.sample(frac=1.0, random_state=0)
    out = apply_per_symbol(shuffled, lambda s: triple_barrier_frame(s, pt=1.0, sl=1.0, h=5))
    assert out.index.equals(shuffled.index)
    for symbol in ["AAA", "BBB", "CCC"]:
        one = close.xs(symbol, level="symbol")
        expected = triple_barrier_frame(one, pt=1.0, sl=1.0, h=5)
        got = out.xs(symbol, level="symbol").sort_index()
        pd.testing.assert_frame_equal(got, expected, check_freq=False)
        # The last h bars of EACH symbol are unlabelled: no span reaches into another symbol.
        assert got["label"].iloc[-5:].isna().all()
        ends = got["t1_time"].dropna()
        assert (ends > ends.index).all()
        assert (ends <= ends.index + pd.Timedelta(minutes=25)).all()


def test_apply_per_symbol_needs_a_symbol_level():
    with pytest.raises(ValueError, match="MultiIndex"):
        apply_per_symbol(pd.Series([1.0, 2.0]), lambda s: s)
