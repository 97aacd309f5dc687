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


BLOCK = 1 << 17
"""Rows per block of the chains of element-wise steps (the checks and element-wise inputs of
:class:`_Context`, standardising, the VWAP's last steps): a chain over blocks this size
(1 MiB per column) finds the block in cache after its first step, where over whole columns
every step reads memory again. (Single steps, like MACD's divisions, gain nothing from
blocks.)"""


def _blocks(n: int) -> range:
    return range(0, n, BLOCK)


def session_open_seconds(feature_set: FeatureSet) -> int:
    hours, minutes = feature_set.session_open.split(":")
    return int(hours) * 3600 + int(minutes) * 60


def _first_bad(ok: npt.NDArray[np.bool_]) -> int:
    return int(np.argmin(ok))


_NAT = np.iinfo(np.int64).min


def _check_index(index: pd.DatetimeIndex, who: str) -> None:
    """Strictly increasing timestamps without NaT: one comparison pass on the happy path (a
    NaT anywhere but row 0 breaks the increase, being the smallest int64); the culprit is
    looked for only to name it."""
    stamps = index.asi8
    if not stamps.size:
        return
    if stamps[0] != _NAT and bool((stamps[1:] > stamps[:-1]).all()):
        return
    if index.hasnans:
        raise ValueError(f"{who}: the index has NaT at row {_first_bad(~index.isna())}")
    row = _first_bad(stamps[1:] > stamps[:-1]) + 1
    raise ValueError(f"{who}: timestamps must increase strictly; row {row} ({index[row]})")


def _columns(bars: pd.DataFrame, who: str) -> dict[str, FloatArray]:
    """The bar columns as float64 arrays (views where they already are), after checking the
    frame's shape and index; the values are checked by :class:`_Context`."""
    if not isinstance(bars, pd.DataFrame) or not isinstance(bars.index, pd.DatetimeIndex):
        raise ValueError(f"{who}: bars need a DatetimeIndex (e.g. frame.set_index('timestamp'))")
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"{who}: bars lack column(s) {missing}")
    _check_index(bars.index, who)
    return {c: np.ascontiguousarray(bars[c].to_numpy(dtype=np.float64)) for c in BAR_COLUMNS}


def _lowest(col: str) -> float:
    return 0.0 if col == "volume" else 5e-324  # NaN fails both this and the finite check


def _refuse(cols: dict[str, FloatArray], index: pd.DatetimeIndex, who: str) -> None:
    """Raise ``ValueError`` naming the first bad value (column by column, then row)."""
    for col, values in cols.items():
        ok = (values >= _lowest(col)) & (values < math.inf)
        if not ok.all():
            row = _first_bad(ok)
            rule = "finite and >= 0" if col == "volume" else "finite and > 0"
            raise ValueError(
                f"{who}: {col} is {float(values[row])!r} at row {row} ({index[row]}); "
                f"{col} must be {rule}"
            )


class _Context:
    """One symbol's inputs and the intermediate results features share (MACD, log returns).

    Building it checks the values and, in the same pass over blocks of rows (each block of the
    bars read from memory once), computes the element-wise inputs the feature set needs:
    returns, log returns, the gap, the typical price. A bad value stops the pass; the columns
    are then scanned in order to name the first one."""

    def __init__(self, bars: pd.DataFrame, fs: FeatureSet, who: str) -> None:
        cols = _columns(bars, who)
        self.bars, self.fs = bars, fs
        self.o, self.h, self.l, self.c, self.v = (cols[k] for k in BAR_COLUMNS)
        self.n = self.c.size
        self._memo: dict[tuple[Any, ...], Any] = {}
        least, most = self._sweep()
        if math.isnan(least):  # a bad value somewhere: name it
            _refuse(cols, bars.index, who)
        self.any_volume, self.all_volume = most > 0.0, least > 0.0

    def _sweep(self) -> tuple[float, float]:
        """The smallest and largest volume, or NaN for both when a price or volume is not
        finite and > 0 (>= 0 for volume); fills the memo with the element-wise inputs."""
        features = [f for f in self.fs.features if not f.is_rank]
        kinds = {f.kind for f in features}
        logs = {int(f.param("horizon")) for f in features if f.kind == "log_return"}
        logs |= {1} if "volatility" in kinds else set()  # its input
        lags = {int(f.param("horizon")) for f in features if f.kind == "return"} | logs
        rocps = {h: self._nan_head(h) for h in sorted(lags)}
        logged = {h: np.empty(self.n) for h in sorted(logs)}
        gap = self._nan_head(1) if "gap" in kinds else None
        typical = np.empty(self.n) if "vwap_distance" in kinds else None
        o, hi, lo, c = self.o, self.h, self.l, self.c
        least, most = math.inf, -math.inf
        for start in _blocks(self.n):
            stop = min(start + BLOCK, self.n)
            part = slice(start, stop)
            for x in (o[part], hi[part], lo[part], c[part]):
                if not (x.min() >= 5e-324 and x.max() < math.inf):
                    return math.nan, math.nan
            small, big = float(self.v[part].min()), float(self.v[part].max())
            if not (small >= 0.0 and big < math.inf):
                return math.nan, math.nan
            least, most = min(least, small), max(most, big)
            for lag, out in rocps.items():
                if stop > lag:
                    now, first = slice(max(start, lag), stop), max(start, lag) - lag
                    then = c[first : stop - lag]
                    np.subtract(c[now], then, out=out[now])
                    np.divide(out[now], then, out=out[now])
            for lag, out in logged.items():
                np.log1p(rocps[lag][part], out=out[part])
            if gap is not None and stop > 1:
                now = slice(max(start, 1), stop)
                np.divide(o[now], c[now.start - 1 : stop - 1], out=gap[now])
                gap[now] -= 1.0
            if typical is not None:
                mean = typical[part]
                np.add(hi[part], lo[part], out=mean)
                mean += c[part]
                mean /= 3.0
        self._memo.update({("rocp", lag): out for lag, out in rocps.items()})
        self._memo.update({("log_return", lag): out for lag, out in logged.items()})
        if gap is not None:
            self._memo[("gap",)] = gap
        if typical is not None:
            self._memo[("typical",)] = typical
        return (least, most) if self.n else (0.0, 0.0)

    def _nan_head(self, h: int) -> FloatArray:
        out = np.empty(self.n)
        out[:h] = math.nan
        return out

    def memo(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def swept(self, *key: Any) -> FloatArray:
        """An element-wise input the sweep computed (shared: callers never write into it):
        ``("rocp", h)``, ``(c - c[-h]) / c[-h]`` (TA-Lib's ROCP to the bit, but divided a vector
        at a time); ``("log_return", h)``, its ``log1p`` as the stream computes it; ``("gap",)``;
        ``("typical",)``, ``(high + low + close) / 3``."""
        return cast(FloatArray, self._memo[key])

    def volume_sum(self, w: int) -> FloatArray:
        """TA-Lib's SUM of the volume over ``w`` bars, for the VWAP and the volume z-score
        (shared: callers never write into it). TA-Lib's SMA is this / ``w`` to the bit: the
        same running total."""
        return cast(FloatArray, self.memo(("volume_sum", w), lambda: talib.SUM(self.v, w)))

    def calendar(self) -> tuple[FloatArray, FloatArray]:
        def make() -> tuple[FloatArray, FloatArray]:
            index = pd.DatetimeIndex(self.bars.index)
            if index.tz is None:
                index = index.tz_localize("UTC")
            return calendar_features(index, self.fs.timezone, session_open_seconds(self.fs))

        return cast(tuple[FloatArray, FloatArray], self.memo(("calendar",), make))


# A kernel returns a fresh or memoised array, NaN before its first value; compute_batch only
# blanks its warm-up, which memoised arrays (same inputs, same lookback) share anyway.
Kernel: TypeAlias = Callable[[_Context, dict[str, Any]], FloatArray]


def _volatility(ctx: _Context, p: dict[str, Any]) -> FloatArray:
    # TA-Lib's STDDEV is sqrt(max(VAR, 0)) in one pass (the leading NaN skipped by the wrapper)
    return talib.STDDEV(ctx.swept("log_return", 1), p["window"], 1.0)


def _macd(ctx: _Context, p: dict[str, Any]) -> FloatArray:
    f, s, g, which = p["fast"], p["slow"], p["signal"], p["output"]

    def make() -> dict[str, FloatArray]:
        line, signal, hist = talib.MACD(ctx.c, f, s, g)
        for out in (line, signal, hist):  # (per block, the divisions gain nothing)
            np.divide(out, ctx.c, out=out)
        return {"line": line, "signal": signal, "hist": hist}

    return cast(FloatArray, ctx.memo(("macd", f, s, g), make)[which])


def _atr(ctx: _Context, p: dict[str, Any]) -> FloatArray:
    atr = talib.ATR(ctx.h, ctx.l, ctx.c, p["period"])
    return np.divide(atr, ctx.c, out=atr)


def _standardised(
    x: FloatArray,
    mean: FloatArray,
    sd: FloatArray,
    flat: float,
    offset: float = 0.0,
    divisor: float = 1.0,
) -> FloatArray:
    """``(x - mean / divisor) / sd + offset`` in ``sd``'s memory; ``flat + offset`` where sd
    is 0 (a constant window: TA-Lib's variance, like the stream's, is exactly 0 there)."""
    scratch = np.empty(min(BLOCK, x.size))
    for start in _blocks(x.size):
        part = slice(start, start + BLOCK)
        dev = sd[part]
        centred = scratch[: dev.size]
        if divisor != 1.0:
            np.divide(mean[part], divisor, out=centred)
            np.subtract(x[part], centred, out=centred)
        else:
            np.subtract(x[part], mean[part], out=centred)
        flats = None if dev.min() > 0.0 else dev == 0.0  # NaN (warm-up) looks too
        np.divide(centred, dev, out=dev)
        if flats is not None:
            dev[flats] = flat
        if offset:
            dev += offset
    return sd


def _bollinger_b(ctx: _Context, p: dict[str, Any]) -> FloatArray:
    n, k = p["period"], p["k"]
    width = talib.STDDEV(ctx.c, n, 2.0 * k)  # upper - lower = 2k population std-devs
    # (close - lower) / (upper - lower) = (close - mid) / width + 0.5; 0.5 for a flat window
    return _standardised(ctx.c, talib.SMA(ctx.c, n), width, 0.0, 0.5)


def _volume_z(ctx: _Context, p: dict[str, Any]) -> FloatArray:
    w = p["window"]
    if not ctx.any_volume:  # no volume at all (indexes): every window is flat
        return np.zeros(ctx.n)
    # the mean is TA-Lib's SMA: the SUM the VWAP shares, / w
    return _standardised(ctx.v, ctx.volume_sum(w), talib.STDDEV(ctx.v, w, 1.0), 0.0, 0.0, w)


def _vwap_distance(ctx: _Context, p: dict[str, Any]) -> FloatArray:
    w, v = p["window"], ctx.v
    typical = ctx.swept("typical")
    if not ctx.any_volume:  # indexes: the mean typical price
        vwap = talib.SMA(typical, w)
        np.divide(ctx.c, vwap, out=vwap)
        vwap -= 1.0
        return vwap
    fallback = None if ctx.all_volume else talib.SMA(typical, w)
    out = talib.SUM(typical * v, w)
    volume = ctx.volume_sum(w)
    # windows without volume, exactly (unlike a running sum's residue)
    none = None if fallback is None else talib.MAX(v, w) == 0.0
    for start in _blocks(ctx.n):  # close / (flow / volume) - 1, a block at a time
        part = slice(start, start + BLOCK)
        vwap = out[part]
        np.divide(vwap, volume[part], out=vwap)
        if fallback is not None and none is not None:
            quiet = none[part]
            vwap[quiet] = fallback[part][quiet]
        np.divide(ctx.c[part], vwap, out=vwap)
        vwap -= 1.0
    return out


def _gap(ctx: _Context, p: dict[str, Any]) -> FloatArray:
    return ctx.swept("gap")  # open / previous close - 1


KERNELS: Mapping[str, Kernel] = {
    "return": lambda ctx, p: ctx.swept("rocp", p["horizon"]),
    "log_return": lambda ctx, p: ctx.swept("log_return", p["horizon"]),
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
