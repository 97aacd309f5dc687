"""Technical indicators, streaming (one bar at a time) and batch (whole arrays), bit-identical.

``update`` (live and paper trading) and ``batch`` (backtests) give exactly the same floats, so a
backtest decides exactly as the same strategy fed bar by bar: both modes do the same IEEE
operations in the same order (running cumulative sums for means, the same scalar recurrence for
smoothed indicators, exact max/min for rolling extremes). Conventions follow TA-Lib.

Inputs must be finite: NaN or infinity raises ``ValueError`` in both modes (it would silently
poison every later value of a cumulative or recursive indicator). Outputs are ``None`` (stream)
or NaN (batch) during warm-up; ``warmup`` is the index of the primary output's first value and
``warmups`` maps every output to its own.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = ["ATR", "EMA", "MACD", "ROC", "RSI", "SMA", "Bollinger", "Highest", "Indicator", "Lowest"]

FloatArray: TypeAlias = npt.NDArray[np.float64]


def _period(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _seq_sum(values: list[float]) -> float:
    """Left-to-right sum from 0.0, as TA-Lib seeds (the builtin ``sum`` compensates on 3.12+)."""
    acc = 0.0
    for v in values:
        acc += v
    return acc


def _nans(n: int) -> FloatArray:
    return np.full(n, math.nan)


def _sma_batch(x: FloatArray, period: int) -> FloatArray:
    """``(cum[i] - cum[i-period]) / period``, ``cum[-1] = 0.0`` (np.cumsum is sequential)."""
    out = _nans(x.size)
    if x.size >= period:
        cs = np.concatenate((np.zeros(1), np.cumsum(x)))
        out[period - 1 :] = (cs[period:] - cs[:-period]) / period
    return out


def _rolling(x: FloatArray, period: int, op: np.ufunc) -> FloatArray:
    """Exact rolling max/min (``op``) by doubling: ``m[i] = op(x[i : i + w])``, w = 1, 2, 4..."""
    out, m, w = _nans(x.size), x, 1
    if x.size >= period:
        while 2 * w <= period:
            m, w = op(m[:-w], m[w:]), 2 * w
        out[period - 1 :] = op(m[: x.size - period + 1], m[period - w :])
    return out


@dataclass
class _Average:
    """TA-Lib's recursive averages: the mean of the first ``period`` inputs, then either the
    EMA step ``v = (x - v) * k + v``, k = 2 / (period + 1), or Wilder's ``(v * (period - 1) +
    x) / period``. ``update`` and ``run`` do the same operations in the same order."""

    period: int
    wilder: bool = False
    value: float | None = None
    seed: list[float] = field(default_factory=list)

    def update(self, x: float) -> float | None:
        v, p = self.value, self.period
        if v is None:
            self.seed.append(x)
            if len(self.seed) == p:
                self.value, self.seed = _seq_sum(self.seed) / p, []
        elif self.wilder:
            self.value = (v * (p - 1) + x) / p
        else:
            self.value = (x - v) * (2.0 / (p + 1)) + v
        return self.value

    def run(self, xs: list[float]) -> list[float]:
        """Every value ``update`` would give over ``xs``, from the ``period``-th (index p - 1)."""
        p = self.period
        out = [v := _seq_sum(xs[:p]) / p]
        if self.wilder:
            for x in xs[p:]:
                v = (v * (p - 1) + x) / p
                out.append(v)
        else:
            k = 2.0 / (p + 1)
            for x in xs[p:]:
                v = (x - v) * k + v
                out.append(v)
        return out


class Indicator(ABC):
    """Base of every indicator.

    ``update(*inputs)`` feeds one bar (values in ``inputs`` order) and returns ``value`` (the
    first output); ``batch(*arrays)`` returns every output over whole arrays, NaN during
    warm-up, without touching the streaming state; ``reset()`` forgets every bar. Each name in
    ``outputs`` is also an attribute with that output's current value (``None`` in warm-up).
    """

    inputs: ClassVar[tuple[str, ...]] = ("close",)
    outputs: ClassVar[tuple[str, ...]] = ("value",)
    warmup: int
    warmups: dict[str, int]
    value: float | None
    _args: tuple[object, ...] = ()

    @property
    def ready(self) -> bool:
        """True once ``value`` is not None."""
        return self.value is not None

    @abstractmethod
    def update(self, *inputs: float) -> float | None:
        """Feed one bar; return the new ``value``."""

    @abstractmethod
    def batch(self, *arrays: npt.ArrayLike) -> dict[str, FloatArray]:
        """Every output over whole input arrays, NaN during warm-up."""

    @abstractmethod
    def reset(self) -> None:
        """Return to the state before the first bar."""

    def _scalars(self, inputs: tuple[float, ...]) -> tuple[float, ...]:
        if len(inputs) != len(self.inputs):
            raise TypeError(f"{self!r}.update takes {self.inputs}, got {len(inputs)} values")
        xs = tuple(map(float, inputs))
        if not all(map(math.isfinite, xs)):
            raise ValueError(f"{self!r}.update: inputs must be finite, got {xs}")
        return xs

    def _arrays(self, arrays: tuple[npt.ArrayLike, ...]) -> list[FloatArray]:
        if len(arrays) != len(self.inputs):
            raise TypeError(f"{self!r}.batch takes {self.inputs}, got {len(arrays)} arrays")
        out = [np.asarray(a, dtype=np.float64) for a in arrays]
        if any(a.ndim != 1 for a in out) or len({a.size for a in out}) != 1:
            raise ValueError(f"{self!r}.batch: inputs must be 1-D arrays of the same length")
        if not all(bool(np.isfinite(a).all()) for a in out):
            raise ValueError(f"{self!r}.batch: inputs must be finite (no NaN or infinity)")
        return out

    def _set_warmup(self, **warmups: int) -> None:
        self.warmups = warmups
        self.warmup = warmups[self.outputs[0]]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self._args))})"


class _Periodic(Indicator):
    """An indicator of one ``period``, first value at index ``period + _offset``."""

    _offset: ClassVar[int] = -1

    def __init__(self, period: int) -> None:
        self.period = _period("period", period)
        self._args = (self.period,)
        self._set_warmup(value=self.period + self._offset)
        self.reset()


class SMA(_Periodic):
    """Simple moving average, first value at index ``period - 1``: ``(cum[i] - cum[i-period])
    / period`` over the running sum ``cum`` (absolute error ~ ulp(cum), growing with length)."""

    def reset(self) -> None:
        self.value = None
        self._cum = -0.0  # IEEE additive identity: the first sum is x[0] exactly, as np.cumsum
        self._cums: deque[float] = deque([0.0], maxlen=self.period + 1)

    def update(self, *inputs: float) -> float | None:
        self._cum += self._scalars(inputs)[0]
        self._cums.append(self._cum)
        if len(self._cums) > self.period:
            self.value = (self._cum - self._cums[0]) / self.period
        return self.value

    def batch(self, *arrays: npt.ArrayLike) -> dict[str, FloatArray]:
        return {"value": _sma_batch(self._arrays(arrays)[0], self.period)}


class EMA(_Periodic):
    """Exponential moving average (TA-Lib): the first value, at index ``period - 1``, is the
    SMA of the first ``period`` inputs; then ``v = (x - v) * k + v`` with k = 2 / (period + 1)."""

    def reset(self) -> None:
        self.value = None
        self._avg = _Average(self.period)

    def update(self, *inputs: float) -> float | None:
        self.value = self._avg.update(self._scalars(inputs)[0])
        return self.value

    def batch(self, *arrays: npt.ArrayLike) -> dict[str, FloatArray]:
        x, p = self._arrays(arrays)[0], self.period
        out = _nans(x.size)
        if x.size >= p:
            out[p - 1 :] = _Average(p).run(x.tolist())
        return {"value": out}


class RSI(_Periodic):
    """Wilder's RSI (TA-Lib), first value at index ``period``: the up moves ``max(d, 0)`` and
    down moves ``max(-d, 0)`` of ``d = x - x[-1]`` are Wilder-smoothed (seeded with the means
    of the first ``period``); ``RSI = 100 * up / (up + down)``: 100 when the average loss is 0,
    0 when both are 0 (flat prices: TA-Lib's 0/0 result; TA-Lib also gives 0 whenever
    up + down < 1e-8, where this gives the ratio)."""

    _offset = 0

    def __init__(self, period: int = 14) -> None:
        super().__init__(period)

    def reset(self) -> None:
        self.value = None
        self._prev: float | None = None
        self._up, self._down = _Average(self.period, True), _Average(self.period, True)

    def update(self, *inputs: float) -> float | None:
        (x,) = self._scalars(inputs)
        prev, self._prev = self._prev, x
        if prev is not None:
            d = x - prev
            up = self._up.update(d if d > 0.0 else 0.0)
            down = self._down.update(-d if d < 0.0 else 0.0)
            if up is not None and down is not None:
                self.value = 100.0 * (up / (up + down)) if up + down != 0.0 else 0.0
        return self.value

    def batch(self, *arrays: npt.ArrayLike) -> dict[str, FloatArray]:
        x, p = self._arrays(arrays)[0], self.period
        out = _nans(x.size)
        if x.size > p:
            d = np.diff(x)
            up = np.array(_Average(p, True).run(np.where(d > 0.0, d, 0.0).tolist()))
            down = np.array(_Average(p, True).run(np.where(d < 0.0, -d, 0.0).tolist()))
            total = up + down
            ratio = up / np.where(total != 0.0, total, 1.0)
            out[p:] = np.where(total != 0.0, 100.0 * ratio, 0.0)
        return {"value": out}


class ATR(_Periodic):
    """Average true range (TA-Lib): true range ``max(h - l, |c1 - h|, |c1 - l|)`` with the
    previous close c1 (none on the first bar), Wilder-smoothed: the first value, at index
    ``period``, is the mean of the first ``period`` true ranges, then ``(atr * (period - 1) +
    tr) / period``."""

    inputs = ("high", "low", "close")
    _offset = 0

    def __init__(self, period: int = 14) -> None:
        super().__init__(period)

    def reset(self) -> None:
        self.value = None
        self._prev: float | None = None
        self._avg = _Average(self.period, True)

    def update(self, *inputs: float) -> float | None:
        h, lo, c = self._scalars(inputs)
        prev, self._prev = self._prev, c
        if prev is not None:
            self.value = self._avg.update(max(h - lo, abs(prev - h), abs(prev - lo)))
        return self.value

    def batch(self, *arrays: npt.ArrayLike) -> dict[str, FloatArray]:
        (h, lo, c), p = self._arrays(arrays), self.period
        out = _nans(c.size)
        if c.size > p:
            c1, h, lo = c[:-1], h[1:], lo[1:]
            tr = np.maximum(np.maximum(h - lo, np.abs(c1 - h)), np.abs(c1 - lo))
            out[p:] = _Average(p, True).run(tr.tolist())
        return {"value": out}


class Bollinger(Indicator):
    """Bollinger bands, all first at index ``period - 1``: ``mid`` = SMA (as :class:`SMA`),
    ``upper``/``lower`` = mid +/- k * population std-dev (ddof=0, as TA-Lib), ``percent_b`` =
    (x - lower) / (upper - lower), or 0.5 when the bands coincide (a flat window). The variance
    is taken about the window's last value (exactly 0 for a flat window, and no cancellation at
    high price levels, unlike TA-Lib's E[x^2] - E[x]^2), clipped at 0; O(period) per value."""

    outputs = ("mid", "upper", "lower", "percent_b")
    upper: float | None
    lower: float | None
    percent_b: float | None

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        self.period = _period("period", period)
        self.k = float(k) if isinstance(k, int | float) and not isinstance(k, bool) else math.nan
        if not (math.isfinite(self.k) and self.k > 0):
            raise ValueError(f"k must be a finite number > 0, got {k!r}")
        self._args = (self.period, self.k)
        w = self.period - 1
        self._set_warmup(mid=w, upper=w, lower=w, percent_b=w)
        self.reset()

    @property
    def mid(self) -> float | None:
        """The middle band (``value``)."""
        return self.value

    def reset(self) -> None:
        self.value = self.upper = self.lower = self.percent_b = None
        self._sma = SMA(self.period)
        self._win: deque[float] = deque(maxlen=self.period)

    def update(self, *inputs: float) -> float | None:
        (x,) = self._scalars(inputs)
        mid = self._sma.update(x)
        self._win.append(x)
        if mid is None:
            return None
        s1 = s2 = 0.0
        for v in self._win:
            d = v - x
            s1 += d
            s2 += d * d
        m1 = s1 / self.period
        var = s2 / self.period - m1 * m1
        ksd = self.k * (math.sqrt(var) if var > 0.0 else 0.0)
        self.value, self.upper, self.lower = mid, mid + ksd, mid - ksd
        width = self.upper - self.lower
        self.percent_b = (x - self.lower) / width if width > 0.0 else 0.5
        return mid

    def batch(self, *arrays: npt.ArrayLike) -> dict[str, FloatArray]:
        x, p = self._arrays(arrays)[0], self.period
        mid, upper, lower, pb = _sma_batch(x, p), _nans(x.size), _nans(x.size), _nans(x.size)
        if x.size >= p:
            m, last = x.size - p + 1, x[p - 1 :]
            s1, s2 = np.zeros(m), np.zeros(m)
            for j in range(p):  # the streaming loop's operations, in the same order
                d = x[j : j + m] - last
                s1 += d
                s2 += d * d
            m1 = s1 / p
            var = s2 / p - m1 * m1
            ksd = self.k * np.sqrt(np.where(var > 0.0, var, 0.0))
            up, lo = mid[p - 1 :] + ksd, mid[p - 1 :] - ksd
            width = up - lo
            safe = np.where(width > 0.0, width, 1.0)
            upper[p - 1 :], lower[p - 1 :] = up, lo
            pb[p - 1 :] = np.where(width > 0.0, (last - lo) / safe, 0.5)
        return {"mid": mid, "upper": upper, "lower": lower, "percent_b": pb}


class MACD(Indicator):
    """MACD (TA-Lib): both EMAs first appear at index ``slow - 1``; the slow one is seeded with
    the SMA of the first ``slow`` inputs, the fast one with the SMA of the last ``fast`` of them
    (it starts at bar ``slow - fast``, so it is not :class:`EMA` (fast) of the whole series).
    ``macd`` = fast - slow from index ``slow - 1``; ``signal`` = EMA(signal) of macd (SMA-seeded)
    and ``hist`` = macd - signal from index ``slow + signal - 2``, TA-Lib's first output."""

    outputs = ("macd", "signal", "hist")
    signal: float | None
    hist: float | None

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        self.fast = _period("fast", fast)
        self.slow = _period("slow", slow, minimum=2)
        self.signal_period = _period("signal", signal)
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be < slow ({self.slow})")
        self._args = (self.fast, self.slow, self.signal_period)
        first_signal = self.slow + self.signal_period - 2
        self._set_warmup(macd=self.slow - 1, signal=first_signal, hist=first_signal)
        self.reset()

    @property
    def macd(self) -> float | None:
        """The MACD line (``value``)."""
        return self.value

    def reset(self) -> None:
        self.value = self.signal = self.hist = None
        self._n = 0
        self._fast, self._slow = _Average(self.fast), _Average(self.slow)
        self._signal = _Average(self.signal_period)

    def update(self, *inputs: float) -> float | None:
        (x,) = self._scalars(inputs)
        self._n += 1
        fast = self._fast.update(x) if self._n > self.slow - self.fast else None
        slow = self._slow.update(x)
        if fast is None or slow is None:
            return None
        m = self.value = fast - slow
        self.signal = self._signal.update(m)
        if self.signal is not None:
            self.hist = m - self.signal
        return m

    def batch(self, *arrays: npt.ArrayLike) -> dict[str, FloatArray]:
        x = self._arrays(arrays)[0]
        n, f, s, g = x.size, self.fast, self.slow, self.signal_period
        macd, signal, hist = _nans(n), _nans(n), _nans(n)
        if n >= s:
            xs = x.tolist()
            m = np.array(_Average(f).run(xs[s - f :])) - np.array(_Average(s).run(xs))
            macd[s - 1 :] = m
            if m.size >= g:
                sig = np.array(_Average(g).run(m.tolist()))
                signal[s + g - 2 :], hist[s + g - 2 :] = sig, m[g - 1 :] - sig
        return {"macd": macd, "signal": signal, "hist": hist}


class _Extreme(_Periodic):
    """Rolling extreme, first value at index ``period - 1``; exact in both modes."""

    _sign: ClassVar[float]  # streaming keeps a monotonic deque of sign * x
    _op: ClassVar[np.ufunc]

    def reset(self) -> None:
        self.value = None
        self._n = 0
        self._dq: deque[tuple[int, float]] = deque()  # (index, sign * x), values decreasing

    def update(self, *inputs: float) -> float | None:
        y, i, dq = self._sign * self._scalars(inputs)[0], self._n, self._dq
        self._n = i + 1
        while dq and dq[-1][1] <= y:
            dq.pop()
        dq.append((i, y))
        if dq[0][0] <= i - self.period:
            dq.popleft()
        if i >= self.period - 1:
            self.value = self._sign * dq[0][1]
        return self.value

    def batch(self, *arrays: npt.ArrayLike) -> dict[str, FloatArray]:
        return {"value": _rolling(self._arrays(arrays)[0], self.period, self._op)}


class Highest(_Extreme):
    """Rolling maximum of the last ``period`` inputs (Donchian upper), from index ``period-1``."""

    _sign, _op = 1.0, np.maximum


class Lowest(_Extreme):
    """Rolling minimum of the last ``period`` inputs (Donchian lower), from index ``period-1``."""

    _sign, _op = -1.0, np.minimum


class ROC(_Periodic):
    """Rate of change ``x[-skip] / x[-period] - 1``, a fraction (TA-Lib's ROC, with ``skip``
    0, is 100 times it); first value at index ``period``. ``skip`` leaves out the latest bars:
    ``ROC(252, skip=21)`` on daily closes is the 12-1 month momentum. A zero base gives
    +/-inf or NaN, as IEEE division does."""

    _offset = 0

    def __init__(self, period: int, skip: int = 0) -> None:
        self.skip = _period("skip", skip, 0)
        if self.skip >= _period("period", period):
            raise ValueError(f"skip must be below period, got skip {skip} >= period {period}")
        super().__init__(period)

    def reset(self) -> None:
        self.value = None
        self._win: deque[float] = deque(maxlen=self.period + 1)

    def update(self, *inputs: float) -> float | None:
        (x,) = self._scalars(inputs)
        self._win.append(x)
        if len(self._win) > self.period:
            base, top = self._win[0], self._win[-1 - self.skip]
            if base != 0.0:
                self.value = top / base - 1.0
            else:  # IEEE division by zero, as numpy does in batch
                with np.errstate(divide="ignore", invalid="ignore"):
                    self.value = float(np.float64(top) / base) - 1.0
        return self.value

    def batch(self, *arrays: npt.ArrayLike) -> dict[str, FloatArray]:
        x, p, k = self._arrays(arrays)[0], self.period, self.skip
        out = _nans(x.size)
        if x.size > p:
            with np.errstate(divide="ignore", invalid="ignore"):
                out[p:] = x[p - k : x.size - k] / x[:-p] - 1.0
        return {"value": out}
