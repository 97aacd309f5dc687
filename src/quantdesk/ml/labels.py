"""Labels for supervised models on bar series: forward returns, signs with a dead zone, the
triple barrier, and the concurrency / average-uniqueness sample weights of overlapping labels.

Everything works on ONE symbol's series in time order and speaks in positional integer spans:
a label emitted at bar ``t`` covers the bars ``[t, t1]`` (both inclusive). A label is never
emitted where its span would run past the data: the last ``h`` bars get NaN (``t1 = -1``),
whether or not a barrier happened to be touched early, so the tail is not biased towards
early touches. A panel of many symbols is labelled with :func:`apply_per_symbol`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "TripleBarrier",
    "apply_per_symbol",
    "concurrency",
    "ewm_volatility",
    "forward_return",
    "sign_label",
    "triple_barrier",
    "triple_barrier_frame",
    "uniqueness_weights",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ArrayLike = npt.ArrayLike
Pandas: TypeAlias = pd.Series | pd.DataFrame


def _as_float(values: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _check_horizon(h: int) -> None:
    if int(h) != h or h < 1:
        raise ValueError(f"horizon h must be a positive integer, got {h!r}")


def forward_return(close: ArrayLike, h: int) -> FloatArray:
    """``close[t+h] / close[t] - 1``; NaN for the last ``h`` bars (not known within the data)."""
    _check_horizon(h)
    c = _as_float(close, "close")
    out = np.full(c.shape, np.nan)
    if len(c) > h:
        out[:-h] = c[h:] / c[:-h] - 1.0
    return out


def ewm_volatility(close: ArrayLike, span: int = 100, min_periods: int | None = None) -> FloatArray:
    """EWM standard deviation of one-bar simple returns, known at the bar's close (causal).

    ``min_periods`` defaults to ``min(span, 20)`` returns; earlier bars are NaN.
    """
    if span < 2:
        raise ValueError(f"span must be >= 2, got {span}")
    c = _as_float(close, "close")
    returns = pd.Series(c).pct_change()
    periods = min(span, 20) if min_periods is None else min_periods
    vol = returns.ewm(span=span, min_periods=periods).std()
    return np.asarray(vol.to_numpy(dtype=np.float64))


def sign_label(
    ret: ArrayLike,
    dead_zone: float = 0.0,
    *,
    sigma: ArrayLike | None = None,
    neutral: Literal["zero", "drop"] = "zero",
) -> FloatArray:
    """+1 where ``ret > d``, -1 where ``ret < -d``, else 0 (``neutral="zero"``) or NaN
    (``neutral="drop"``: filter with ``~np.isnan``). With ``sigma`` the dead zone scales with
    volatility: ``d = dead_zone * sigma``. NaN returns (or sigma) give NaN labels.
    """
    if dead_zone < 0:
        raise ValueError(f"dead_zone must be >= 0, got {dead_zone}")
    if neutral not in ("zero", "drop"):
        raise ValueError(f"neutral must be 'zero' or 'drop', got {neutral!r}")
    r = _as_float(ret, "ret")
    d = np.full(r.shape, float(dead_zone))
    if sigma is not None:
        s = _as_float(sigma, "sigma")
        if s.shape != r.shape:
            raise ValueError("sigma must have the same length as ret")
        d = d * s
    out = np.where(r > d, 1.0, np.where(r < -d, -1.0, 0.0 if neutral == "zero" else np.nan))
    out[np.isnan(r) | np.isnan(d)] = np.nan
    return out


@dataclass(frozen=True)
class TripleBarrier:
    """Per bar: ``label`` (+1 upper, -1 lower, vertical per the rule; NaN where undefined),
    ``t1`` (position of the bar that ended the span; -1 where undefined), ``ret`` (return from
    ``close[t]`` to ``close[t1]``) and ``barrier`` (1 upper, -1 lower, 0 vertical, -2 none)."""

    label: FloatArray
    t1: IntArray
    ret: FloatArray
    barrier: npt.NDArray[np.int8]

    @property
    def valid(self) -> npt.NDArray[np.bool_]:
        return np.asarray(self.t1 >= 0)


def triple_barrier(
    close: ArrayLike,
    sigma: ArrayLike,
    pt: float | None,
    sl: float | None,
    h: int,
    *,
    vertical: Literal["sign", "zero"] = "sign",
) -> TripleBarrier:
    """First touch of ``close[t] * (1 + pt * sigma[t])`` (upper), ``close[t] * (1 - sl *
    sigma[t])`` (lower) or the vertical barrier at ``t + h``, on closes ``t+1 .. t+h``.

    ``pt`` / ``sl`` of ``None`` disable that barrier. At the vertical the label is the sign of the
    return (``vertical="sign"``) or 0. Bars with NaN or non-positive sigma, and the last ``h``
    bars, get no label. Vectorised as ``h`` passes over all bars: O(n * h) time, O(n) memory.
    """
    _check_horizon(h)
    c = _as_float(close, "close")
    s = _as_float(sigma, "sigma")
    if s.shape != c.shape:
        raise ValueError("sigma must have the same length as close")
    if vertical not in ("sign", "zero"):
        raise ValueError(f"vertical must be 'sign' or 'zero', got {vertical!r}")
    for name, mult in (("pt", pt), ("sl", sl)):
        if mult is not None and not mult > 0:
            raise ValueError(f"{name} must be positive or None, got {mult}")
    n = len(c)
    label = np.full(n, np.nan)
    t1 = np.full(n, -1, dtype=np.int64)
    ret = np.full(n, np.nan)
    barrier = np.full(n, -2, dtype=np.int8)
    m = n - h  # bars whose full span [t, t + h] lies in the data
    if m <= 0:
        return TripleBarrier(label, t1, ret, barrier)
    base = c[:m]
    sig = s[:m]
    ok = np.isfinite(sig) & (sig > 0) & np.isfinite(base)
    upper = np.inf if pt is None else pt * sig
    lower = -np.inf if sl is None else -sl * sig
    open_ = ok.copy()  # still waiting for a touch
    for k in range(1, h + 1):
        r_k = c[k : m + k] / base - 1.0
        up = open_ & (r_k >= upper)
        dn = open_ & (r_k <= lower) & ~up
        for hit, code in ((up, 1), (dn, -1)):
            pos = np.flatnonzero(hit)
            label[pos] = code
            barrier[pos] = code
            t1[pos] = pos + k
            ret[pos] = r_k[pos]
        open_ &= ~(up | dn)
    # The vertical barrier for everything still open.
    idx = np.flatnonzero(open_)
    r_h = c[idx + h] / base[idx] - 1.0
    label[idx] = np.sign(r_h) if vertical == "sign" else 0.0
    label[idx[np.isnan(r_h)]] = np.nan
    barrier[idx] = 0
    t1[idx] = idx + h
    ret[idx] = r_h
    return TripleBarrier(label, t1, ret, barrier)


def triple_barrier_frame(
    close: pd.Series,
    sigma: pd.Series | ArrayLike | None = None,
    *,
    pt: float | None = 2.0,
    sl: float | None = 2.0,
    h: int = 20,
    span: int = 100,
    vertical: Literal["sign", "zero"] = "sign",
) -> pd.DataFrame:
    """:func:`triple_barrier` on one symbol's close series, as a frame on the same index with
    columns ``label``, ``ret``, ``barrier``, ``t1`` (position) and ``t1_time`` (the index label
    of the end bar, NaT/None where undefined). ``sigma`` defaults to ``ewm_volatility(span)``."""
    sig = ewm_volatility(close, span) if sigma is None else _as_float(sigma, "sigma")
    tb = triple_barrier(close.to_numpy(), sig, pt, sl, h, vertical=vertical)
    t1_time = pd.Series(close.index.take(np.maximum(tb.t1, 0)), index=close.index)
    t1_time[~tb.valid] = None
    return pd.DataFrame(
        {"label": tb.label, "ret": tb.ret, "barrier": tb.barrier, "t1": tb.t1, "t1_time": t1_time},
        index=close.index,
    )


def _spans(t0_idx: ArrayLike, t1_idx: ArrayLike, n_bars: int) -> tuple[IntArray, IntArray]:
    t0 = np.asarray(t0_idx, dtype=np.int64)
    t1 = np.asarray(t1_idx, dtype=np.int64)
    if t0.shape != t1.shape or t0.ndim != 1:
        raise ValueError("t0_idx and t1_idx must be one-dimensional and of the same length")
    if len(t0) and (t0.min() < 0 or t1.max() >= n_bars or np.any(t1 < t0)):
        raise ValueError("spans must satisfy 0 <= t0 <= t1 < n_bars")
    return t0, t1


def concurrency(t0_idx: ArrayLike, t1_idx: ArrayLike, n_bars: int) -> IntArray:
    """``c[u]``: how many label spans ``[t0, t1]`` cover bar ``u`` (length ``n_bars``)."""
    t0, t1 = _spans(t0_idx, t1_idx, n_bars)
    delta = np.zeros(n_bars + 1, dtype=np.int64)
    np.add.at(delta, t0, 1)
    np.add.at(delta, t1 + 1, -1)
    return np.cumsum(delta[:-1])


def uniqueness_weights(t0_idx: ArrayLike, t1_idx: ArrayLike, n_bars: int) -> FloatArray:
    """Average uniqueness of each label: the mean of ``1 / c[u]`` over its span ``[t0, t1]``.

    1.0 for a label that overlaps no other; ``1/k`` for ``k`` identical spans. Use as sample
    weights (normalise as the learner needs; their sum is the effective number of labels).
    """
    t0, t1 = _spans(t0_idx, t1_idx, n_bars)
    c = concurrency(t0, t1, n_bars)
    inv = np.where(c > 0, 1.0 / np.maximum(c, 1), 0.0)
    prefix = np.concatenate([[0.0], np.cumsum(inv)])
    return np.asarray((prefix[t1 + 1] - prefix[t0]) / (t1 - t0 + 1), dtype=np.float64)


def apply_per_symbol(
    data: Pandas,
    func: Callable[[Pandas], Pandas],
    *,
    level: str | int = "symbol",
) -> Pandas:
    """Apply a one-symbol labeller to each symbol of a panel indexed by (timestamp, symbol).

    ``func`` gets one symbol's rows sorted by time (the symbol level dropped, so positional spans
    are per symbol) and returns a Series/DataFrame on that index; the results come back on the
    panel's original index and row order.
    """
    if not isinstance(data.index, pd.MultiIndex):
        raise ValueError("apply_per_symbol needs a MultiIndex with a symbol level")
    parts = []
    for symbol, rows in data.groupby(level=level, sort=False):
        one = rows.droplevel(level).sort_index()
        out = func(one)
        if not out.index.equals(one.index):
            raise ValueError("func must return a result on the index it was given")
        out = pd.concat({symbol: out}, names=[data.index.names[_pos(data, level)]])
        parts.append(out.reorder_levels(_order(data, level)))
    result = pd.concat(parts)
    return result.reindex(data.index)


def _pos(data: pd.Series | pd.DataFrame, level: str | int) -> int:
    return level if isinstance(level, int) else data.index.names.index(level)


def _order(data: pd.Series | pd.DataFrame, level: str | int) -> list[int]:
    """Level order that puts the prepended symbol level back where the panel has it."""
    pos = _pos(data, level)
    others = list(range(1, data.index.nlevels))
    return [*others[:pos], 0, *others[pos:]]
