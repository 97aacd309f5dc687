"""Model signals as time series: thresholds that turn a score into -1/0/+1, a Parquet store of
each model's signal series per symbol, and the backtest engine's as-of signal reader.

A signal row is known at ``time``, the END of the bar whose features produced it, so a reader
asked at time ``t`` may return only rows with ``time <= t``: never a later one.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote, unquote

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["COLUMNS", "Signal", "SignalReader", "SignalStore", "Thresholds"]

COLUMNS = ("time", "value", "signal", "model_version")
_DTYPES = {"value": "float64", "signal": "int8", "model_version": "int64"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Thresholds:
    """How a model's probability ``p`` becomes a signal, in this order:

    - ``|p - 0.5| < min_confidence`` -> 0 (too close to a coin flip, whatever the rest says);
    - ``p > long`` -> +1;
    - ``p < short`` -> -1 (only if ``short`` is set: long-only otherwise);
    - anything else, and NaN -> 0.
    """

    long: float = 0.55
    short: float | None = None
    min_confidence: float = 0.0

    def __post_init__(self) -> None:
        if self.short is not None and not self.short < self.long:
            raise ValueError(f"short ({self.short}) must be below long ({self.long})")
        if not 0.0 <= self.min_confidence <= 0.5:
            raise ValueError(f"min_confidence must be in [0, 0.5], got {self.min_confidence}")

    def signal(self, value: float) -> int:
        return int(self.apply(np.array([value]))[0])

    def apply(self, values: npt.ArrayLike) -> npt.NDArray[np.int8]:
        """The signals of many values at once (vectorised; NaN -> 0)."""
        p = np.asarray(values, dtype=np.float64)
        out = np.zeros(p.shape, dtype=np.int8)
        out[p > self.long] = 1
        if self.short is not None:
            out[p < self.short] = -1
        out[np.abs(p - 0.5) < self.min_confidence] = 0
        return out

    def to_dict(self) -> dict[str, float | None]:
        return {"long": self.long, "short": self.short, "min_confidence": self.min_confidence}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Thresholds:
        short = data.get("short")
        return cls(
            long=float(data.get("long", 0.55)),
            short=None if short is None else float(short),
            min_confidence=float(data.get("min_confidence", 0.0)),
        )


class Signal(NamedTuple):
    time: pd.Timestamp
    value: float
    signal: int
    model_version: int


_Arrays = dict[str, npt.NDArray[Any]]
_SCHEMA = pa.schema(
    [
        ("time", pa.timestamp("ns", tz="UTC")),
        ("value", pa.float64()),
        ("signal", pa.int8()),
        ("model_version", pa.int64()),
    ]
)


def _arrays(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> _Arrays:
    """Rows as one numpy array per column (``time`` as UTC nanoseconds, naive = UTC)."""
    if isinstance(rows, pd.DataFrame):
        frame = rows
        columns = set(frame.columns)
    else:
        records = list(rows)
        frame = None
        columns = set(records[0]) if records else set(COLUMNS)
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"signal rows lack column(s) {missing}")
    if frame is not None:
        times = pd.DatetimeIndex(frame["time"])
        times = times.tz_localize("UTC") if times.tz is None else times.tz_convert("UTC")
        if times.hasnans:
            raise ValueError("signal rows need a time")
        out = {"time": times.as_unit("ns").asi8}
        out |= {c: frame[c].to_numpy().astype(t) for c, t in _DTYPES.items()}
        return out
    # The live path (a row per bar): plain Python, no pandas frame to build.
    out = {"time": np.array([_ns(_datetime(r["time"])) for r in records], dtype=np.int64)}
    out |= {c: np.array([r[c] for r in records]).astype(t) for c, t in _DTYPES.items()}
    return out


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        raise ValueError("signal rows need a time")
    return stamp


def _merged(old: _Arrays, new: _Arrays) -> _Arrays:
    """``old`` then ``new``, sorted by time; of equal times the last written row wins."""
    both = {c: np.concatenate([old[c], new[c]]) for c in COLUMNS}
    order = np.argsort(both["time"], kind="stable")  # equal times keep their writing order
    times = both["time"][order]
    keep = order[np.r_[times[1:] != times[:-1], True]]
    return {c: both[c][keep] for c in COLUMNS}


def _columns(table: pa.Table) -> _Arrays:
    out = {c: table.column(c).to_numpy() for c in COLUMNS}
    out["time"] = out["time"].astype("datetime64[ns]").view(np.int64)
    return out


def _table(arrays: _Arrays) -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array(arrays[c], _SCHEMA.field(c).type) for c in COLUMNS], schema=_SCHEMA
    )


class SignalStore:
    """``<root>/<model>/<symbol, URL-quoted>.parquet`` with columns ``time`` (UTC, the bar END
    time the signal is known at), ``value``, ``signal`` and ``model_version``, sorted by time.

    ``append`` is idempotent on ``time`` (a re-written time replaces the row) and replaces the
    file atomically, so a reader never sees a half-written series. One writer per series: two
    processes appending to the same (model, symbol) could lose each other's rows.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SignalStore({str(self.root)!r})"

    def path(self, model: str, symbol: str) -> Path:
        if not model or not symbol or model in (".", ".."):
            raise ValueError(f"invalid model or symbol name: {model!r}, {symbol!r}")
        return self.root / quote(model, safe="") / f"{quote(symbol, safe='')}.parquet"

    def append(
        self, model: str, symbol: str, rows: pd.DataFrame | Iterable[Mapping[str, Any]]
    ) -> int:
        """Merge ``rows`` (columns ``COLUMNS``) into the series; the series' new length."""
        new = _arrays(rows)
        path = self.path(model, symbol)
        with self._lock:
            old = self._load(path)
            if not new["time"].size:
                return old.num_rows
            merged = _merged(_columns(old), new)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            pq.write_table(_table(merged), tmp)
            os.replace(tmp, path)
        return int(merged["time"].size)

    def _load(self, path: Path) -> pa.Table:
        if not path.exists():
            return _SCHEMA.empty_table()
        return pq.read_table(path, schema=_SCHEMA)

    def _frame(self, model: str, symbol: str) -> pd.DataFrame:
        frame = self._load(self.path(model, symbol)).to_pandas()
        return frame.astype({"time": "datetime64[ns, UTC]"})

    def read(
        self,
        model: str,
        symbol: str,
        start: datetime | pd.Timestamp | None = None,
        end: datetime | pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """The series with ``start <= time <= end`` (naive bounds are UTC); empty if none."""
        frame = self._frame(model, symbol)
        if start is not None:
            frame = frame[frame["time"] >= _utc(start)]
        if end is not None:
            frame = frame[frame["time"] <= _utc(end)]
        return frame.reset_index(drop=True)

    def latest(self, model: str, symbol: str) -> Signal | None:
        arrays = _columns(self._load(self.path(model, symbol)))
        if not arrays["time"].size:
            return None
        return Signal(
            pd.Timestamp(int(arrays["time"][-1]), tz="UTC"),
            float(arrays["value"][-1]),
            int(arrays["signal"][-1]),
            int(arrays["model_version"][-1]),
        )

    def symbols(self, model: str) -> list[str]:
        folder = self.root / quote(model, safe="")
        if not folder.is_dir():
            return []
        return sorted(unquote(p.name[: -len(".parquet")]) for p in folder.glob("*.parquet"))

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(unquote(p.name) for p in self.root.iterdir() if p.is_dir())


def _utc(ts: datetime | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def _ns(at: datetime) -> int:
    """UTC nanoseconds of ``at`` (naive = UTC), without building a pandas Timestamp."""
    if isinstance(at, pd.Timestamp):
        return int(at.value)
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1) * 1000


_Series = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]
_NONE: _Series = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))


class SignalReader:
    """The backtest engine's signal reader: ``reader(name, symbol, at)`` is the value of the
    latest row with ``time <= at`` (as-of: never a later one), None before the first row, for a
    NaN value, or (with ``max_age``) when that row is older than ``at - max_age``.

    Each (name, symbol) series is read once, on first use, into numpy arrays (a snapshot:
    ``refresh()`` forgets them) and looked up with ``np.searchsorted``.
    """

    def __init__(self, store: SignalStore | None = None, *, max_age: timedelta | None = None):
        self.store = store
        self.max_age_ns = None if max_age is None else max_age // timedelta(microseconds=1) * 1000
        self._series: dict[tuple[str, str], _Series] = {}

    @classmethod
    def from_frame(
        cls, name: str, frame: pd.DataFrame, *, max_age: timedelta | None = None
    ) -> SignalReader:
        """A reader over in-memory signals (no files): ``frame`` indexed by (time, symbol) with
        a ``value`` column, e.g. out-of-sample predictions from walk-forward training."""
        if frame.index.nlevels != 2 or "value" not in frame.columns:
            raise ValueError("frame needs a (time, symbol) index and a value column")
        reader = cls(None, max_age=max_age)
        times = pd.DatetimeIndex(frame.index.get_level_values(0))
        times = times.tz_localize("UTC") if times.tz is None else times.tz_convert("UTC")
        flat = pd.DataFrame(
            {
                "time": times.as_unit("ns").asi8,
                "symbol": frame.index.get_level_values(1).astype(str),
                "value": frame["value"].to_numpy(dtype=np.float64),
            }
        )
        for symbol, rows in flat.groupby("symbol", sort=False):
            rows = rows.sort_values("time", kind="stable").drop_duplicates("time", keep="last")
            reader._series[(name, str(symbol))] = (
                rows["time"].to_numpy(dtype=np.int64),
                rows["value"].to_numpy(dtype=np.float64),
            )
        return reader

    def _load(self, name: str, symbol: str) -> _Series:
        key = (name, symbol)
        series = self._series.get(key)
        if series is None:
            series = _NONE
            if self.store is not None:
                arrays = _columns(self.store._load(self.store.path(name, symbol)))
                series = (arrays["time"], arrays["value"])
            self._series[key] = series
        return series

    def __call__(self, name: str, symbol: str, at: datetime) -> float | None:
        times, values = self._load(name, symbol)
        key = _ns(at)
        i = int(np.searchsorted(times, key, side="right")) - 1
        if i < 0:
            return None
        if self.max_age_ns is not None and key - int(times[i]) > self.max_age_ns:
            return None
        value = float(values[i])
        return None if math.isnan(value) else value

    def refresh(self) -> None:
        """Forget the loaded store series (in-memory ones from ``from_frame`` are kept)."""
        if self.store is not None:
            self._series.clear()
