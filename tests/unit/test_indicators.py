"""Indicators: batch equals streaming bit for bit, TA-Lib's values and warm-ups, hand-computed
cases, argument validation and reset."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.strategy.indicators import (
    ATR,
    EMA,
    MACD,
    ROC,
    RSI,
    SMA,
    Bollinger,
    Highest,
    Indicator,
    Lowest,
)

MARKET = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "market"
INTRADAY = MARKET / "nse_index_intraday_1min.parquet"
NIFTY_DAY = date(2022, 2, 24)  # a full 375-bar session with a 485-point range
HLC = ("high", "low", "close")


def stream(ind: Indicator, *arrays: np.ndarray) -> dict[str, np.ndarray]:
    """Feed ``arrays`` bar by bar; every output after each bar (None -> NaN)."""
    got: dict[str, list[float]] = {name: [] for name in ind.outputs}
    for row in zip(*(a.tolist() for a in arrays), strict=True):
        returned = ind.update(*row)
        assert returned == ind.value or (returned is None and ind.value is None)
        assert ind.ready == (ind.value is not None)
        for name in ind.outputs:
            v = getattr(ind, name)
            got[name].append(math.nan if v is None else v)
    return {name: np.array(v, dtype=np.float64) for name, v in got.items()}


def assert_bit_identical(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype == np.float64
    assert a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True), f"first difference at {first_difference(a, b)}"
    assert np.array_equal(a.view(np.uint64), b.view(np.uint64))  # even signed zeros and NaNs


def first_difference(a: np.ndarray, b: np.ndarray) -> str:
    i = int(np.flatnonzero(~((a == b) | (np.isnan(a) & np.isnan(b))))[0])
    return f"index {i}: {a[i]!r} != {b[i]!r}"


def first_value(a: np.ndarray) -> int:
    have = np.flatnonzero(~np.isnan(a))
    return int(have[0]) if have.size else a.size


# -- batch == streaming, bit for bit (hypothesis) ---------------------------------------------

PRICE = st.one_of(st.floats(0.05, 1e5), st.sampled_from([0.05, 1.0, 100.0, 99_999.95]))
PERIOD = st.integers(1, 60)


@st.composite
def closes(draw: st.DrawFn) -> np.ndarray:
    """Finite positive prices, 0..300 of them: hypothesis' own (extremes, repeats, flat runs)
    or a seeded numpy random walk or scatter (messy low bits, which any reordering shows)."""
    kind = draw(st.sampled_from(["hypothesis", "walk", "scatter"]))
    if kind == "hypothesis":
        return np.array(draw(st.lists(PRICE, max_size=300)), dtype=np.float64)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(0, 300))
    if kind == "scatter":
        return np.exp(rng.uniform(math.log(0.05), math.log(1e5), n))
    vol = draw(st.sampled_from([1e-4, 1e-3, 1e-2, 0.1]))
    return draw(st.floats(0.05, 1e5)) * np.exp(np.cumsum(rng.normal(0.0, vol, n)))


@st.composite
def bars(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(high, low, close), low <= close <= high: hypothesis' triples, or closes with a seeded
    random spread (0: flat bars, true range from gaps only)."""
    if draw(st.booleans()):
        rows = np.array(draw(st.lists(st.tuples(PRICE, PRICE, PRICE), max_size=300)))
    else:
        close = draw(closes())
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        width = draw(st.sampled_from([0.0, 1e-3, 0.05]))
        spread = np.abs(rng.normal(0.0, width, (close.size, 2)))
        rows = np.stack([close * (1 - spread[:, 0]), close, close * (1 + spread[:, 1])], axis=1)
    low, close, high = np.sort(rows.reshape(-1, 3), axis=1).T
    return high.copy(), low.copy(), close.copy()


@st.composite
def macds(draw: st.DrawFn) -> MACD:
    fast = draw(st.integers(1, 30))
    return MACD(fast, draw(st.integers(fast + 1, 60)), draw(st.integers(1, 30)))


INDICATORS: dict[str, st.SearchStrategy[Indicator]] = {
    "SMA": st.builds(SMA, PERIOD),
    "EMA": st.builds(EMA, PERIOD),
    "RSI": st.builds(RSI, PERIOD),
    "ATR": st.builds(ATR, PERIOD),
    "Bollinger": st.builds(Bollinger, PERIOD, st.floats(0.1, 4.0)),
    "MACD": macds(),
    "Highest": st.builds(Highest, PERIOD),
    "Lowest": st.builds(Lowest, PERIOD),
    "ROC": st.builds(ROC, PERIOD),
    "ROC_skip": st.integers(2, 40).flatmap(
        lambda p: st.builds(ROC, st.just(p), st.integers(0, p - 1))
    ),
}


@pytest.mark.parametrize("kind", list(INDICATORS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_batch_equals_streaming_bit_for_bit(kind: str, data: st.DataObject) -> None:
    ind = data.draw(INDICATORS[kind], label="indicator")
    arrays = data.draw(bars(), label="hlc") if ind.inputs == HLC else (data.draw(closes()),)
    before = pickle.dumps(ind)
    batch = ind.batch(*arrays)
    assert pickle.dumps(ind) == before, "batch() must not touch the streaming state"
    streamed = stream(ind, *arrays)
    assert set(batch) == set(ind.outputs) == set(ind.warmups)
    assert ind.warmup == ind.warmups[ind.outputs[0]]
    n = arrays[0].size
    for name in ind.outputs:
        assert_bit_identical(batch[name], streamed[name])
        # NaN exactly during the warm-up, then a value at every bar (finite positive prices)
        assert first_value(batch[name]) == min(ind.warmups[name], n)
        assert not np.isnan(batch[name][ind.warmups[name] :]).any()


# -- TA-Lib cross-checks ----------------------------------------------------------------------


@pytest.fixture(scope="module", params=["nifty50_1min_day", "random_walk"])
def series(request: pytest.FixtureRequest) -> dict[str, np.ndarray]:
    """High/low/close of a real NIFTY50 1-minute session, or of a long seeded random walk."""
    if request.param == "random_walk":
        # minute-like volatility: a random walk drifting 100x down would cost the cumulative-sum
        # SMA its last digits (absolute error ~ ulp of the running sum, see SMA's docstring)
        rng = np.random.default_rng(20240611)
        close = 1000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, 100_000)))
        return {
            "high": close * (1.0 + np.abs(rng.normal(0.0, 0.0005, close.size))),
            "low": close * (1.0 - np.abs(rng.normal(0.0, 0.0005, close.size))),
            "close": close,
        }
    if not INTRADAY.is_file():
        pytest.skip(f"shared market data absent: {INTRADAY} (the repo's sibling ../shared)")
    import pyarrow.parquet as pq

    table = pq.read_table(
        INTRADAY,
        columns=["timestamp", *HLC],
        filters=[("symbol", "==", "NIFTY50"), ("session", "==", "regular")],
    )
    frame = table.to_pandas()
    day = frame[frame["timestamp"].dt.date == NIFTY_DAY].sort_values("timestamp")
    assert len(day) == 375
    return {col: day[col].to_numpy(dtype=np.float64) for col in HLC}


def assert_matches_talib(ours: np.ndarray, ref: np.ndarray, *, atol: float = 0.0) -> None:
    """Within 1e-9 relative wherever TA-Lib has a value; ours has a value there too."""
    have = ~np.isnan(ref)
    assert have.sum() > 0
    assert not np.isnan(ours[have]).any()
    np.testing.assert_allclose(ours[have], ref[have], rtol=1e-9, atol=atol)


@pytest.mark.parametrize("period", [1, 2, 5, 14, 20, 50])
def test_single_output_indicators_match_talib(series: dict[str, np.ndarray], period: int) -> None:
    c, h, lo = series["close"], series["high"], series["low"]
    cases = {
        "SMA": (SMA(period).batch(c)["value"], talib.SMA(c, period)),
        "EMA": (EMA(period).batch(c)["value"], talib.EMA(c, period)),
        "ATR": (ATR(period).batch(h, lo, c)["value"], talib.ATR(h, lo, c, period)),
        "ROC": (ROC(period).batch(c)["value"], talib.ROC(c, period) / 100.0),  # TA-Lib: percent
    }
    if period >= 2:  # TA-Lib's minimum for these
        upper, mid, lower = talib.BBANDS(c, period, 2.0, 2.0, 0)
        bb = Bollinger(period, 2.0).batch(c)
        cases |= {
            "RSI": (RSI(period).batch(c)["value"], talib.RSI(c, period)),
            "MAX": (Highest(period).batch(c)["value"], talib.MAX(c, period)),
            "MIN": (Lowest(period).batch(c)["value"], talib.MIN(c, period)),
            "BBANDS.upper": (bb["upper"], upper),
            "BBANDS.middle": (bb["mid"], mid),
            "BBANDS.lower": (bb["lower"], lower),
        }
    for name, (ours, ref) in cases.items():
        assert first_value(ours) == first_value(ref), name  # the same warm-up
        assert_matches_talib(ours, ref)
    # exact where TA-Lib's operations are ours: rolling extremes, and ROC = ROCR - 1
    assert_bit_identical(ROC(period).batch(c)["value"], talib.ROCR(c, period) - 1.0)
    if period >= 2:
        assert_bit_identical(cases["MAX"][0], cases["MAX"][1])
        assert_bit_identical(cases["MIN"][0], cases["MIN"][1])


@pytest.mark.parametrize(
    ("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (3, 10, 16), (2, 3, 1)]
)
def test_macd_matches_talib(
    series: dict[str, np.ndarray], fast: int, slow: int, signal: int
) -> None:
    c = series["close"]
    ours = MACD(fast, slow, signal).batch(c)
    refs = dict(zip(("macd", "signal", "hist"), talib.MACD(c, fast, slow, signal), strict=True))
    scale = float(np.abs(c).max())  # macd and hist cross 0: compare relative to the price level
    for name, ref in refs.items():
        assert first_value(ref) == slow + signal - 2
        assert_matches_talib(ours[name], ref, atol=1e-12 * scale)
    # our macd starts earlier than TA-Lib's, at slow - 1; signal and hist where TA-Lib does
    assert first_value(ours["macd"]) == slow - 1
    assert first_value(ours["signal"]) == first_value(ours["hist"]) == slow + signal - 2


def test_macd_fast_ema_starts_at_bar_slow_minus_fast() -> None:
    """The documented convention, exactly: EMA(fast) of x[slow-fast:] minus EMA(slow) of x."""
    x = 100.0 * np.exp(np.cumsum(np.random.default_rng(7).normal(0.0, 0.02, 500)))
    f, s, g = 12, 26, 9
    macd = MACD(f, s, g).batch(x)
    fast = EMA(f).batch(x[s - f :])["value"][f - 1 :]
    slow = EMA(s).batch(x)["value"][s - 1 :]
    assert_bit_identical(macd["macd"][s - 1 :], fast - slow)
    signal = EMA(g).batch(fast - slow)["value"]
    assert_bit_identical(macd["signal"][s - 1 :], signal)
    assert_bit_identical(macd["hist"][s + g - 2 :], (fast - slow)[g - 1 :] - signal[g - 1 :])


# -- hand-computed cases ----------------------------------------------------------------------

NAN = math.nan


@pytest.mark.parametrize(
    ("ind", "inputs", "expected"),
    [
        (SMA(3), [1, 2, 3, 4], [NAN, NAN, 2, 3]),
        (SMA(1), [5, 7], [5, 7]),
        (EMA(3), [1, 2, 3, 4, 5], [NAN, NAN, 2, 3, 4]),  # seed SMA 2, then k = 0.5
        (EMA(2), [2, 4, 7], [NAN, 3, 3 + (7 - 3) * (2 / 3)]),
        (RSI(2), [1, 2, 1], [NAN, NAN, 50]),  # avg gain 0.5 = avg loss 0.5
        (RSI(2), [1, 2, 1, 2], [NAN, NAN, 50, 100 * 0.75 / 1.0]),  # gain 0.75, loss 0.25
        (RSI(3), list(range(1, 11)), [NAN] * 3 + [100] * 7),  # strictly rising
        (RSI(3), list(range(10, 0, -1)), [NAN] * 3 + [0] * 7),  # strictly falling
        (RSI(3), [5] * 6, [NAN] * 3 + [0] * 3),  # flat: 0/0 gives 0, as TA-Lib
        (Highest(2), [1, 3, 2, 1], [NAN, 3, 3, 2]),
        (Lowest(2), [1, 3, 2, 1], [NAN, 1, 2, 1]),
        (Highest(3), [5, 4, 3, 2, 6], [NAN, NAN, 5, 4, 6]),
        (ROC(1), [100, 110, 99], [NAN, 0.1, -0.1]),
        (ROC(2), [4, 1, 5, 2], [NAN, NAN, 0.25, 1]),
        (ROC(3, skip=1), [4, 1, 5, 2, 8], [NAN, NAN, NAN, 0.25, 1]),
    ],
    ids=repr,
)
def test_hand_computed(ind: Indicator, inputs: list[float], expected: list[float]) -> None:
    x = np.array(inputs, dtype=np.float64)
    np.testing.assert_allclose(ind.batch(x)["value"], expected, rtol=1e-15, atol=1e-12)
    np.testing.assert_allclose(stream(ind, x)["value"], expected, rtol=1e-15, atol=1e-12)


def test_rsi_flat_rising_falling_agree_with_talib() -> None:
    for x in (np.full(40, 5.0), np.arange(1.0, 41.0), np.arange(40.0, 0.0, -1.0)):
        np.testing.assert_array_equal(RSI(14).batch(x)["value"], talib.RSI(x, 14))


def test_atr_hand_computed() -> None:
    high, low = np.array([10.0, 11.0, 12.0, 15.0]), np.array([8.0, 9.0, 10.0, 14.0])
    close = np.array([9.0, 10.0, 11.0, 14.5])
    # true ranges from bar 1: 2, 2, then a gap: max(1, |11 - 15|, |11 - 14|) = 4
    expected = [NAN, NAN, 2.0, (2.0 * 1 + 4.0) / 2]
    np.testing.assert_array_equal(ATR(2).batch(high, low, close)["value"], expected)
    np.testing.assert_array_equal(stream(ATR(2), high, low, close)["value"], expected)


def test_bollinger_hand_computed() -> None:
    out = Bollinger(3, 2.0).batch(np.array([1.0, 2.0, 3.0, 3.0, 3.0, 3.0]))
    sd = math.sqrt(2.0 / 3.0)  # population std-dev of 1, 2, 3
    np.testing.assert_allclose(out["mid"][2:4], [2.0, 8.0 / 3.0])
    np.testing.assert_allclose(out["upper"][2], 2.0 + 2.0 * sd)
    np.testing.assert_allclose(out["lower"][2], 2.0 - 2.0 * sd)
    np.testing.assert_allclose(out["percent_b"][2], (1.0 + 2.0 * sd) / (4.0 * sd))
    # a flat window: zero-width bands, percent_b 0.5
    assert out["upper"][5] == out["lower"][5] == out["mid"][5] == 3.0
    assert out["percent_b"][5] == 0.5
    assert np.isnan(out["percent_b"][:2]).all()


def test_bollinger_is_accurate_at_high_price_level_and_tiny_volatility() -> None:
    x = 99_999.0 + np.random.default_rng(3).normal(0.0, 1e-3, 400)
    out = Bollinger(20, 2.0).batch(x)
    windows = np.lib.stride_tricks.sliding_window_view(x, 20)
    np.testing.assert_allclose(out["mid"][19:], windows.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(
        (out["upper"] - out["lower"])[19:] / 4.0, windows.std(axis=1), rtol=1e-6
    )


# -- validation and reset ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: SMA(0),
        lambda: SMA(-3),
        lambda: SMA(2.5),
        lambda: SMA(True),
        lambda: SMA("5"),
        lambda: EMA(0),
        lambda: RSI(0),
        lambda: ATR(0),
        lambda: Highest(0),
        lambda: Lowest(0),
        lambda: ROC(0),
        lambda: ROC(5, skip=5),
        lambda: ROC(5, skip=-1),
        lambda: Bollinger(0),
        lambda: Bollinger(20, 0.0),
        lambda: Bollinger(20, -2.0),
        lambda: Bollinger(20, math.nan),
        lambda: Bollinger(20, math.inf),
        lambda: Bollinger(20, "wide"),
        lambda: MACD(26, 12, 9),
        lambda: MACD(12, 12, 9),
        lambda: MACD(0, 26, 9),
        lambda: MACD(12, 26, 0),
    ],
)
def test_bad_arguments_raise_value_error(make: Callable[[], Indicator]) -> None:
    with pytest.raises(ValueError, match="must be"):
        make()


def test_numpy_integer_periods_are_accepted() -> None:
    assert SMA(np.int64(5)).period == 5


def test_bad_inputs_are_refused_without_changing_state() -> None:
    sma = SMA(3)
    sma.update(1.0)
    before = pickle.dumps(sma)
    with pytest.raises(ValueError, match="finite"):
        sma.update(math.nan)
    with pytest.raises(ValueError, match="finite"):
        sma.update(math.inf)
    with pytest.raises(TypeError):
        sma.update(1.0, 2.0)
    with pytest.raises(TypeError):
        ATR(3).update(1.0)
    assert pickle.dumps(sma) == before
    with pytest.raises(ValueError, match="finite"):
        sma.batch(np.array([1.0, math.nan]))
    with pytest.raises(ValueError, match="same length"):
        ATR(3).batch(np.ones(3), np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="1-D"):
        sma.batch(np.ones((2, 2)))
    with pytest.raises(TypeError):
        sma.batch(np.ones(3), np.ones(3))


def _fresh_all() -> list[Indicator]:
    return [SMA(5), EMA(5), RSI(5), ATR(5), Bollinger(5, 1.5), MACD(3, 7, 4)]


@pytest.mark.parametrize("ind", [*_fresh_all(), Highest(4), Lowest(4), ROC(3)], ids=repr)
def test_reset_returns_to_the_initial_state(ind: Indicator) -> None:
    fresh = pickle.dumps(ind)
    rng = np.random.default_rng(11)
    close = 50.0 + rng.random(60)
    arrays = (close + 1.0, close - 1.0, close) if ind.inputs == HLC else (close,)
    first = stream(ind, *arrays)
    assert ind.ready
    ind.reset()
    assert pickle.dumps(ind) == fresh
    assert not ind.ready
    assert all(getattr(ind, name) is None for name in ind.outputs)
    second = stream(ind, *arrays)
    for name in ind.outputs:
        assert_bit_identical(first[name], second[name])


def test_interface_shape() -> None:
    assert ATR().inputs == HLC
    assert Bollinger().outputs == ("mid", "upper", "lower", "percent_b")
    assert MACD().outputs == ("macd", "signal", "hist")
    assert RSI().warmup == 14 and ATR().warmup == 14 and ROC(10).warmup == 10
    assert SMA(20).warmup == EMA(20).warmup == Highest(20).warmup == Lowest(20).warmup == 19
    assert Bollinger(20).warmups == dict.fromkeys(Bollinger.outputs, 19)
    assert MACD().warmups == {"macd": 25, "signal": 33, "hist": 33}
    assert repr(MACD()) == "MACD(12, 26, 9)"
    for ind in [*_fresh_all(), Highest(3), Lowest(3), ROC(3)]:
        out = ind.batch(*(np.array([]) for _ in ind.inputs))
        assert set(out) == set(ind.outputs)
        assert all(a.shape == (0,) and a.dtype == np.float64 for a in out.values())
