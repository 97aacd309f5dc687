"""The look-ahead guard: a feature's value at t must not change when the bars after t are cut.

:func:`assert_no_lookahead` recomputes the features on the history truncated at several
checkpoints and compares the value at each checkpoint with the full-history one. It serves the
tests and ``quantdesk ml check``. Exact equality by default: every built-in feature is causal
and deterministic, so even the last bit must agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias

import numpy as np
import pandas as pd

from quantdesk.ml.features.spec import FeatureSet

__all__ = ["LookAheadError", "assert_no_lookahead"]

Bars: TypeAlias = pd.DataFrame | Mapping[str, pd.DataFrame]
Compute: TypeAlias = Callable[[pd.DataFrame], pd.DataFrame]


class LookAheadError(AssertionError):
    """A feature's value at ``timestamp`` depends on later bars."""

    code = "ML_FEATURE_LOOKAHEAD"

    def __init__(
        self, feature: str, timestamp: pd.Timestamp, full: float, truncated: float, symbol: str
    ) -> None:
        self.feature, self.timestamp, self.symbol = feature, timestamp, symbol
        self.full, self.truncated = full, truncated
        where = f" of {symbol}" if symbol else ""
        super().__init__(
            f"feature {feature!r}{where} looks ahead at {timestamp}: {full!r} on the full "
            f"history, {truncated!r} on the history cut there"
        )


def _runner(features: FeatureSet | Compute, panel: bool) -> Callable[[Bars], pd.DataFrame]:
    if isinstance(features, FeatureSet):
        if panel:
            return lambda bars: features.compute_panel(bars)
        return lambda bars: features.compute_batch(bars)
    return features


def _default_checkpoints(index: pd.DatetimeIndex, start: int, count: int) -> list[pd.Timestamp]:
    """``count`` timestamps spread over [start, last - 1] (the last bar has no future)."""
    last = len(index) - 2
    if last < start:
        raise ValueError(f"too few bars ({len(index)}) to check after a lookback of {start}")
    positions = np.unique(np.linspace(start, last, num=count).round().astype(int))
    return [index[i] for i in positions]


def _differs(a: float, b: float, tolerance: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) != math.isnan(b)
    return abs(a - b) > tolerance


def assert_no_lookahead(
    features: FeatureSet | Compute,
    bars: Bars,
    checkpoints: int | Sequence[int | pd.Timestamp] = 8,
    *,
    tolerance: float = 0.0,
) -> None:
    """Raise :class:`LookAheadError` if any feature at a checkpoint t differs between the full
    history and the history truncated after t.

    ``features``: a FeatureSet (``compute_batch`` for one frame, ``compute_panel`` for a
    mapping of symbol -> frame, ranks included) or any callable ``bars -> frame`` on one frame.
    ``checkpoints``: how many, spread after the set's lookback, or explicit timestamps (or row
    positions, for one frame). ``tolerance``: the largest absolute difference accepted.
    """
    panel = isinstance(bars, Mapping)
    if panel and not isinstance(features, FeatureSet):
        raise TypeError("a mapping of bars needs a FeatureSet (compute_panel)")
    run = _runner(features, panel)
    if isinstance(bars, Mapping):
        frames = list(bars.values())
        if not frames:
            raise ValueError("no bars to check")
        index = pd.DatetimeIndex(frames[0].index.append([f.index for f in frames[1:]]))
        index = index.unique().sort_values()
    else:
        index = pd.DatetimeIndex(bars.index)
    lookback = features.lookback if isinstance(features, FeatureSet) else 0
    if isinstance(checkpoints, int):
        stamps = _default_checkpoints(index, lookback, checkpoints)
    else:
        stamps = [index[c] if isinstance(c, int) else pd.Timestamp(c) for c in checkpoints]
    full = run(bars)
    for ts in stamps:
        if isinstance(bars, Mapping):
            cut: Bars = {s: f.loc[f.index <= ts] for s, f in bars.items()}
        else:
            cut = bars.loc[bars.index <= ts]
        _compare(full, run(cut), ts, tolerance)


def _compare(full: pd.DataFrame, cut: pd.DataFrame, ts: pd.Timestamp, tolerance: float) -> None:
    if isinstance(full.index, pd.MultiIndex):
        before, after = full.xs(ts, level=0), cut.xs(ts, level=0)
    else:
        before, after = full.loc[[ts]], cut.loc[[ts]]
        before.index = after.index = pd.Index([""])
    for symbol in before.index:
        for column in before.columns:
            a = float(before.at[symbol, column])
            b = float(after.at[symbol, column]) if column in after.columns else math.nan
            if _differs(a, b, tolerance):
                raise LookAheadError(str(column), ts, a, b, str(symbol))
