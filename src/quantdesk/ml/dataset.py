"""A training set from the bar store: features, labels and label spans, one row per symbol-bar.

Rows are indexed ``(timestamp, symbol)`` (the bar's start, UTC), sorted by time. Each row has
the feature columns, ``y`` (the label), ``ret`` (the realised return the label came from, for
IC and the honesty checks), and the label's span as times: ``t0`` (the bar's end, when the
features are known) and ``t1`` (the end of the bar the label is known at). Purged
cross-validation works on those spans; the signal backtest reads predictions at ``t0``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from quantdesk.errors import AppError
from quantdesk.market.candles import INTERVALS, candle_arrays
from quantdesk.market.store import BarStore, normalise_symbol
from quantdesk.ml.features import FeatureSet, nan_only_features
from quantdesk.ml.labels import ewm_volatility, forward_return, sign_label, triple_barrier

__all__ = ["LabelSpec", "TrainData", "TrainingDataError", "build_training_data", "load_bars"]

_LABEL = re.compile(
    r"^(?:forward:(?P<h>\d+)|triple-barrier(?::(?P<th>\d+)(?::(?P<pt>[\d.]+)(?::(?P<sl>[\d.]+))?)?)?)$"
)


class TrainingDataError(AppError):
    """The request cannot make a training set (unknown symbol, empty range, too few rows...)."""

    status_code = 422
    code = "ML_BAD_DATA"


@dataclass(frozen=True)
class LabelSpec:
    """``forward:H`` (sign of the H-bar forward return, beyond ``dead_zone``) or
    ``triple-barrier[:H[:PT[:SL]]]`` (first touch of close*(1 +/- k*sigma) within H bars)."""

    kind: Literal["forward", "triple-barrier"]
    horizon: int
    pt: float = 2.0
    sl: float = 2.0
    dead_zone: float = 0.0

    @classmethod
    def parse(cls, text: str, dead_zone: float = 0.0) -> LabelSpec:
        m = _LABEL.match(text.strip())
        if m is None:
            raise ValueError(
                f"label must be forward:H or triple-barrier[:H[:PT[:SL]]], got {text!r}"
            )
        if m["h"] is not None:
            spec = cls("forward", int(m["h"]), dead_zone=dead_zone)
        else:
            spec = cls(
                "triple-barrier",
                int(m["th"] or 10),
                float(m["pt"] or 2.0),
                float(m["sl"] or 2.0),
                dead_zone=dead_zone,
            )
        if not 1 <= spec.horizon <= 10_000 or spec.pt <= 0 or spec.sl <= 0:
            raise ValueError("label horizon must be 1..10000 bars and barriers positive")
        return spec

    def __str__(self) -> str:
        if self.kind == "forward":
            return f"forward:{self.horizon}"
        return f"triple-barrier:{self.horizon}:{self.pt:g}:{self.sl:g}"


@dataclass
class TrainData:
    frame: pd.DataFrame  # index (timestamp, symbol); features, y, ret, t0, t1
    columns: list[str]  # the feature columns, in model order
    fingerprint: str  # sha256 of the bars used
    first: pd.Timestamp
    last: pd.Timestamp

    @property
    def X(self) -> pd.DataFrame:
        return self.frame[self.columns]


def load_bars(
    store: BarStore, symbols: list[str], interval: str, start: date, end: date
) -> tuple[dict[str, pd.DataFrame], str]:
    """Candles per symbol (index: bar start UTC; open..volume plus ``end``), and a fingerprint."""
    if interval not in INTERVALS or interval == "1w":
        raise TrainingDataError(f"interval must be one of {', '.join(INTERVALS[:-1])}")
    if end < start:
        raise TrainingDataError(f"the date range is inverted: {start} is after {end}")
    names = [normalise_symbol(s) for s in symbols]
    if not names or len(set(names)) != len(names):
        raise TrainingDataError("give one or more distinct symbols")
    known = set(store.symbols())
    unknown = [s for s in names if s not in known]
    if unknown:
        raise TrainingDataError(
            f"no stored bars for {', '.join(unknown)}", code="ML_UNKNOWN_SYMBOL"
        )
    digest = hashlib.sha256()
    out: dict[str, pd.DataFrame] = {}
    for symbol in names:
        tz = ZoneInfo(str(store.calendar(symbol).tz))
        lo = datetime.combine(start, time(0), tz)
        hi = datetime.combine(end + timedelta(days=1), time(0), tz)
        bars = candle_arrays(store, symbol, interval, lo, hi)
        if len(bars) == 0:
            raise TrainingDataError(
                f"no {interval} bars for {symbol} between {start} and {end}", code="ML_NO_DATA"
            )
        index = pd.DatetimeIndex(pd.to_datetime(bars.time, unit="us", utc=True), name="timestamp")
        out[symbol] = pd.DataFrame(
            {
                "open": bars.open,
                "high": bars.high,
                "low": bars.low,
                "close": bars.close,
                "volume": np.asarray(bars.volume, dtype=np.float64),
                "end": pd.to_datetime(bars.end, unit="us", utc=True),
            },
            index=index,
        )
        digest.update(symbol.encode())
        for name in ("time", "open", "high", "low", "close", "volume"):
            digest.update(np.ascontiguousarray(getattr(bars, name)).data)
    return out, digest.hexdigest()


def _labels(close: np.ndarray, spec: LabelSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label, realised return, index of the bar the label ends at) per bar; NaN unlabelled."""
    n = len(close)
    if spec.kind == "forward":
        ret = forward_return(close, spec.horizon)
        y = sign_label(ret, spec.dead_zone, neutral="drop")
        end = np.arange(n, dtype=np.float64) + spec.horizon
        return y, ret, np.where(np.isnan(ret), np.nan, end)
    sigma = ewm_volatility(close, span=100, min_periods=20)
    tb = triple_barrier(close, sigma, spec.pt, spec.sl, spec.horizon)
    y = np.asarray(tb.label, dtype=np.float64)
    if spec.dead_zone == 0.0:
        y = np.where(y == 0, np.nan, y)  # a vertical touch with no move: neither class
    t1 = np.asarray(tb.t1, dtype=np.float64)
    return y, np.asarray(tb.ret, dtype=np.float64), np.where(np.isnan(y), np.nan, t1)


def build_training_data(
    feature_set: FeatureSet,
    bars: dict[str, pd.DataFrame],
    fingerprint: str,
    spec: LabelSpec,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> TrainData:
    """Features (batch), labels and spans for every symbol-bar that has all of them."""
    ohlcv = {s: b[["open", "high", "low", "close", "volume"]] for s, b in bars.items()}
    panel = feature_set.compute_panel(ohlcv, progress=progress)
    columns = list(feature_set.columns)
    dead = nan_only_features(panel[columns])
    if dead:
        raise TrainingDataError(
            f"features with no value over this range: {', '.join(dead)} (a longer range "
            "gives them their warm-up)",
            code="ML_NAN_FEATURES",
        )
    parts = []
    for symbol, frame in bars.items():
        y, ret, end_index = _labels(frame["close"].to_numpy(np.float64), spec)
        ends = pd.DatetimeIndex(frame["end"]).tz_convert("UTC").tz_localize(None).to_numpy()
        valid = ~np.isnan(end_index)
        t1 = np.full(len(frame), np.datetime64("NaT"), dtype="datetime64[ns]")
        t1[valid] = ends[end_index[valid].astype(np.int64)]
        labels = pd.DataFrame(
            {"y": y, "ret": ret, "t0": ends, "t1": t1},
            index=pd.MultiIndex.from_arrays(
                [frame.index, np.full(len(frame), symbol)], names=["timestamp", "symbol"]
            ),
        )
        parts.append(labels)
    labelled = pd.concat(parts)
    frame = panel[columns].join(labelled, how="inner")
    frame = frame[np.isfinite(frame[columns]).all(axis=1) & frame["y"].notna()]
    frame = frame.sort_index(level=["timestamp", "symbol"])
    if frame.empty:
        raise TrainingDataError(
            "no bar has both its features and its label over this range; widen the range",
            code="ML_TOO_FEW_SAMPLES",
        )
    times = frame.index.get_level_values("timestamp")
    return TrainData(frame, columns, fingerprint, times.min(), times.max())
