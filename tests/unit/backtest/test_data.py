"""Backtest data: prices moved to the tick exactly as the brokers convert them."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.backtest.data import _on_tick, _to_ticks

ticks = st.sampled_from(["0.05", "0.10", "0.01", "1", "0.0025", "0.5"]).map(Decimal)
prices = st.lists(
    st.one_of(
        st.floats(0.01, 1e6, allow_nan=False),
        st.integers(1, 10**7).map(lambda k: k * 0.05),
        st.integers(1, 10**7).map(lambda k: (k + 0.5) * 0.05),
        st.integers(1, 10**7).map(lambda k: (k + 0.5) * 0.01),
    ),
    min_size=1,
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(values=prices, tick=ticks)
def test_vectorized_tick_rounding_equals_the_decimal_rounding(
    values: list[float], tick: Decimal
) -> None:
    x = np.asarray(values, dtype=np.float64)
    want = np.array([float(_on_tick(v, tick)) for v in x.tolist()])
    assert np.array_equal(_to_ticks(x, tick), want)
