"""Batch features: one symbol's bars -> a frame of features, vectorised (TA-Lib and numpy, no
per-bar Python), and many symbols -> a panel with cross-sectional ranks.

Bars need a DatetimeIndex (tz-aware, or naive = UTC), strictly increasing, and columns open,
high, low, close, volume (others are ignored). Every value must be finite, prices > 0 and volume
>= 0: anything else raises ``ValueError`` naming the symbol, column, row and timestamp, since a
single NaN would poison every recursive indicator after it. Each feature is NaN before its
``lookback`` (its first value's index), and nowhere else on valid bars.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import talib

from quantdesk.ml.features._clock import calendar_features

if TYPE_CHECKING:
    from quantdesk.ml.features.spec import Feature, FeatureSet, ProgressFn

__all__ = [
    "BAR_COLUMNS",
    "compute_batch",
    "compute_panel",
    "nan_only_features",
    "rank_pct",
    "rank_pct_row",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
BAR_COLUMNS = ("open", "high", "low", "close", "volume")


BLOCK = 1 << 14
"""Rows per block of the chains of element-wise steps (standardising, MACD over the close): a
chain over blocks this size (128 KiB per column) finds the block in cache after its first
step, where over whole columns every step reads memory again."""


def _blocks(n: int) -> range:
    return range(0, n, BLOCK)


def session_open_seconds(feature_set: FeatureSet) -> int:
    hours, minutes = feature_set.session_open.split(":")
    return int(hours) * 3600 + int(minutes) * 60


def _first_bad(ok: npt.NDArray[np.bool_]) -> int:
    return int(np.argmin(ok))


def _validated(bars: pd.DataFrame, who: str) -> tuple[dict[str, FloatArray], float, float]:
    """The bar columns as float64 arrays and the smallest and largest volume, or
    ``ValueError`` saying what is wrong where."""
    if not isinstance(bars, pd.DataFrame) or not isinstance(bars.index, pd.DatetimeIndex):
        raise ValueError(f"{who}: bars need a DatetimeIndex (e.g. frame.set_index('timestamp'))")
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"{who}: bars lack column(s) {missing}")
    index = bars.index
    if index.hasnans:
        raise ValueError(f"{who}: the index has NaT at row {_first_bad(~index.isna())}")
    stamps = index.asi8
    if stamps.size > 1 and not bool((stamps[1:] > stamps[:-1]).all()):
        row = _first_bad(stamps[1:] > stamps[:-1]) + 1
        raise ValueError(f"{who}: timestamps must increase strictly; row {row} ({index[row]})")
    out: dict[str, FloatArray] = {}
    least = most = 0.0
    for col in BAR_COLUMNS:
        values = np.ascontiguousarray(bars[col].to_numpy(dtype=np.float64))
        out[col] = values
        if not values.size:
            continue
        # Two reductions on the happy path (NaN fails both comparisons); a scan only to name
        # the culprit. (Per block, the two would read memory once but cost more in calls.)
        lowest = 0.0 if col == "volume" else 5e-324
        least, most = float(values.min()), float(values.max())
        if not (least >= lowest and most < math.inf):
            row = _first_bad((values >= lowest) & (values < math.inf))
            rule = "finite and >= 0" if col == "volume" else "finite and > 0"
            raise ValueError(
                f"{who}: {col} is {float(values[row])!r} at row {row} ({index[row]}); "
                f"{col} must be {rule}"
            )
    return out, least, most  # the volume column comes last


class _Context:
    """One symbol's inputs and the intermediate results features share (MACD, log returns)."""

    def __init__(self, bars: pd.DataFrame, fs: FeatureSet, who: str) -> None:
        cols, least, most = _validated(bars, who)
        self.bars, self.fs = bars, fs
        self.o, self.h, self.l, self.c, self.v = (cols[k] for k in BAR_COLUMNS)
        self.n = self.c.size
        self.any_volume, self.all_volume = most > 0.0, least > 0.0
        self._memo: dict[tuple[Any, ...], Any] = {}

    def memo(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def rocp(self, h: int) -> FloatArray:
        """TA-Lib's ROCP, ``(c - c[-h]) / c[-h]`` (shared: callers never write into it)."""
        return cast(FloatArray, self.memo(("rocp", h), lambda: talib.ROCP(self.c, h)))

    def log_return(self, h: int) -> FloatArray:
        """``log1p`` of :meth:`rocp`, as the stream computes it."""
        return cast(FloatArray, self.memo(("log_return", h), lambda: np.log1p(self.rocp(h))))

    def calendar(self) -> tuple[FloatArray, FloatArray]:
        index = pd.DatetimeIndex(self.bars.index)
        if index.tz is None:
            index = index.tz_localize("UTC")
        make = lambda: calendar_features(index, self.fs.timezone, session_open_seconds(self.fs))  # noqa: E731
        return cast(tuple[FloatArray, FloatArray], self.memo(("calendar",), make))


# A kernel returns a fresh or memoised array, NaN before its first value; compute_batch only
# blanks its warm-up, which memoised arrays (same inputs, same lookback) share anyway.
Kernel: TypeAlias = Callable[[_Context, dict[str, Any]], FloatArray]


def _volatility(ctx: _Context, p: dict[str, Any]) -> FloatArray:
    var = talib.VAR(ctx.log_return(1), p["window"], 1.0)  # leading NaN skipped by the wrapper
    np.maximum(var, 0.0, out=var)
    return np.sqrt(var, out=var)


def _macd(ctx: _Context, p: dict[str, Any]) -> FloatArray:
    f, s, g, which = p["fast"], p["slow"], p["signal"], p["output"]

    def make() -> dict[str, FloatArray]:
        line, signal, hist = talib.MACD(ctx.c, f, s, g)
        for start in _blocks(ctx.n):  # all three over each block of closes while it is cached
            part = slice(start, start + BLOCK)
            close = ctx.c[part]
            for out in (line, signal, hist):
                np.divide(out[part], close, out=out[part])
        return {"line": line, "signal": signal, "hist": hist}

    return cast(FloatArray, ctx.memo(("macd", f, s, g), make)[which])


def _atr(ctx: _Context, p: dict[str, Any]) -> FloatArray:
    atr = talib.ATR(ctx.h, ctx.l, ctx.c, p["period"])
    return np.divide(atr, ctx.c, out=atr)


def _standardised(
    x: FloatArray, mean: FloatArray, sd: FloatArray, flat: float, offset: float = 0.0
) -> FloatArray:
    """``(x - mean) / sd + offset`` in ``mean``'s memory; ``flat + offset`` where sd is 0 (a
    constant window: TA-Lib's variance, like the stream's, is exactly 0 there)."""
    for start in _blocks(x.size):
        part = slice(start, start + BLOCK)
        out, dev = mean[part], sd[part]
        np.subtract(x[part], out, out=out)
        np.divide(out, dev, out=out)
        out[dev == 0.0] = flat
        if offset:
            out += offset
    return mean


def _bollinger_b(ctx: _Context, p: dict[str, Any]) -> FloatArray:
    n, k = p["period"], p["k"]
    width = talib.STDDEV(ctx.c, n, 2.0 * k)  # upper - lower = 2k population std-devs
    # (close - lower) / (upper - lower) = (close - mid) / width + 0.5; 0.5 for a flat window
    return _standardised(ctx.c, talib.SMA(ctx.c, n), width, 0.0, 0.5)


def _volume_z(ctx: _Context, p: dict[str, Any]) -> FloatArray:
    w = p["window"]
    if not ctx.any_volume:  # no volume at all (indexes): every window is flat
        return np.zeros(ctx.n)
    return _standardised(ctx.v, talib.SMA(ctx.v, w), talib.STDDEV(ctx.v, w, 1.0), 0.0)


def _vwap_distance(ctx: _Context, p: dict[str, Any]) -> FloatArray:
    w, v = p["window"], ctx.v
    typical = ctx.h + ctx.l
    typical += ctx.c
    typical /= 3.0
    if not ctx.any_volume:  # indexes: the mean typical price
        vwap = talib.SMA(typical, w)
    else:
        fallback = None if ctx.all_volume else talib.SMA(typical, w)
        vwap = talib.SUM(np.multiply(typical, v, out=typical), w)
        vwap /= talib.SUM(v, w)
        if fallback is not None:
            none = talib.MAX(v, w) == 0.0  # exact, unlike a running sum's residue
            vwap[none] = fallback[none]
    np.divide(ctx.c, vwap, out=vwap)
    vwap -= 1.0
    return vwap


def _gap(ctx: _Context, p: dict[str, Any]) -> FloatArray:
    out = np.empty(ctx.n)
    out[:1] = math.nan
    np.divide(ctx.o[1:], ctx.c[:-1], out=out[1:])
    out[1:] -= 1.0
    return out


KERNELS: Mapping[str, Kernel] = {
    "return": lambda ctx, p: ctx.rocp(p["horizon"]),
    "log_return": lambda ctx, p: ctx.log_return(p["horizon"]),
    "volatility": _volatility,
    "rsi": lambda ctx, p: talib.RSI(ctx.c, p["period"]),
    "macd": _macd,
    "atr": _atr,
    "bollinger_b": _bollinger_b,
    "volume_z": _volume_z,
    "vwap_distance": _vwap_distance,
    "gap": _gap,
    "time_of_day": lambda ctx, p: ctx.calendar()[0],
    "day_of_week": lambda ctx, p: ctx.calendar()[1],
}


def _custom_values(feature: Feature, bars: pd.DataFrame, who: str) -> FloatArray:
    assert feature.fn is not None
    result = feature.fn(bars)
    if isinstance(result, pd.Series) and not result.index.equals(bars.index):
        result = result.reindex(bars.index)
    values = np.array(result, dtype=np.float64).reshape(-1)  # a copy: it gets blanked
    if values.size != len(bars):
        raise ValueError(
            f"{who}: custom feature {feature.name} gave {values.size} values for {len(bars)} bars"
        )
    if np.isinf(values).any():
        raise ValueError(f"{who}: custom feature {feature.name} gave an infinite value")
    return values


def compute_batch(fs: FeatureSet, bars: pd.DataFrame, *, symbol: str | None = None) -> pd.DataFrame:
    """Per-symbol features (``fs.series_columns``) over one symbol's bars; same index."""
    who = symbol or "bars"
    ctx = _Context(bars, fs, who)
    columns: dict[str, FloatArray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):  # flat windows, fixed by the kernels
        for feature in fs.features:
            if feature.is_rank:
                continue
            if feature.kind == "custom":
                values = _custom_values(feature, bars, who)
            elif ctx.n > feature.lookback:
                values = KERNELS[feature.kind](ctx, dict(feature.params))
            else:
                values = np.full(ctx.n, math.nan)
            values[: feature.lookback] = math.nan
            columns[feature.name] = values
    # One array per column, not copied into one block: that copy would cost more than most
    # features.
    return pd.DataFrame(columns, index=bars.index, copy=False)


def rank_pct(wide: pd.DataFrame) -> pd.DataFrame:
    """Row-wise percentile ranks: average rank (ties averaged, 1-based) / count, among the
    row's non-NaN values; NaN stays NaN."""
    return wide.rank(axis=1, method="average", pct=True)


def rank_pct_row(values: FloatArray) -> FloatArray:
    """:func:`rank_pct` of one row, in numpy (for streaming): the same halves and integers, so
    the same floats."""
    out = np.full(values.size, math.nan)
    present = np.flatnonzero(~np.isnan(values))
    if present.size:
        order = np.argsort(values[present], kind="stable")
        ranked = values[present][order]
        starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
        ends = np.r_[starts[1:], ranked.size]  # ties occupy ranks starts + 1 .. ends
        average = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
        out[present[order]] = average / present.size
    return out


def compute_panel(
    fs: FeatureSet,
    bars_by_symbol: Mapping[str, pd.DataFrame],
    *,
    progress: ProgressFn | None = None,
) -> pd.DataFrame:
    """Every column of ``fs`` for many symbols; index ``(timestamp, symbol)``, sorted (in UTC
    if the symbols' time zones differ). A rank at a timestamp is over the symbols having a bar
    and a (non-NaN) source value there."""
    symbols = list(bars_by_symbol)
    zones = {str(getattr(bars_by_symbol[s].index, "tz", None)) for s in symbols}
    if "None" in zones and len(zones) > 1:
        raise ValueError("bars mix naive and tz-aware timestamps across symbols")
    frames = []
    for done, symbol in enumerate(symbols, 1):
        frame = compute_batch(fs, bars_by_symbol[symbol], symbol=symbol)
        if len(zones) > 1:  # several time zones: one timeline in UTC
            frame.index = pd.DatetimeIndex(frame.index).tz_convert("UTC")
        frames.append(frame)
        if progress is not None:
            progress(done, len(symbols))
    if not frames:
        index = pd.MultiIndex.from_arrays([pd.DatetimeIndex([]), []], names=["timestamp", "symbol"])
        return pd.DataFrame(np.empty((0, len(fs.columns))), index=index, columns=fs.columns)
    panel = pd.concat(frames, keys=symbols, names=["symbol", "timestamp"]).swaplevel()
    panel = panel.sort_index()
    for feature in fs.features:
        if feature.is_rank:
            wide = panel[str(feature.param("of"))].unstack("symbol")
            panel[feature.name] = rank_pct(wide).stack().reindex(panel.index)
    return panel[fs.columns]


def nan_only_features(frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` without a single value (all NaN, or no rows): a model must
    not train on them (too little history for the lookback, or a broken feature)."""
    empty = frame.isna().all(axis=0).to_numpy(dtype=bool)
    return [str(c) for c, e in zip(frame.columns, empty, strict=True) if e]
