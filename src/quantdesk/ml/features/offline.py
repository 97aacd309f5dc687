"""The offline feature store: computed features as Parquet, one file per symbol and interval,
under ``<root>/features/<feature set hash>/<symbol>/<interval>.parquet``.

Every file carries the feature set's hash and definition in its Parquet metadata, and a store
opened with a different definition refuses to read it (:class:`FeatureSetMismatchError`), so a
model never trains on features it did not ask for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quantdesk.ml.features.spec import FeatureSet, ProgressFn

__all__ = ["FeatureSetMismatchError", "OfflineFeatureStore"]

_HASH, _DEFINITION = b"quantdesk.feature_set.hash", b"quantdesk.feature_set.definition"
_SYMBOL = b"quantdesk.symbol"
_TIME = "timestamp"


class FeatureSetMismatchError(ValueError):
    """Stored features were computed by another feature set definition."""

    code = "ML_FEATURE_SET_MISMATCH"


def _bound(ts: datetime | str | None, index: pd.DatetimeIndex) -> pd.Timestamp | None:
    """``ts`` comparable with ``index``: naive means UTC against an aware index."""
    if ts is None:
        return None
    stamp = pd.Timestamp(ts)
    if index.tz is not None and stamp.tz is None:
        return stamp.tz_localize("UTC")
    if index.tz is None and stamp.tz is not None:
        return stamp.tz_convert("UTC").tz_localize(None)
    return stamp


class OfflineFeatureStore:
    """Features of one :class:`FeatureSet` stored under ``root`` (e.g. the data dir)."""

    def __init__(self, root: str | os.PathLike[str], feature_set: FeatureSet) -> None:
        self.feature_set = feature_set
        self.directory = Path(root) / "features" / feature_set.hash

    def path(self, symbol: str, interval: str = "1m") -> Path:
        folder = quote(symbol, safe="")  # NSE:M&M -> NSE%3AM%26M, reversible
        if folder in ("", ".", "..") or not interval or "/" in interval or interval[0] == ".":
            raise ValueError(f"bad symbol or interval: {symbol!r}, {interval!r}")
        return self.directory / folder / f"{interval}.parquet"

    def symbols(self, interval: str = "1m") -> list[str]:
        """Symbols with features stored for ``interval``."""
        found = self.directory.glob(f"*/{interval}.parquet")
        return sorted(unquote(p.parent.name) for p in found)

    # -- write -------------------------------------------------------------------------------

    def write(self, symbol: str, features: pd.DataFrame, interval: str = "1m") -> Path:
        """Store one symbol's features (replacing what was stored): columns must be the set's
        ``columns`` (a panel slice, ranks included) or ``series_columns`` (``compute_batch``)."""
        fs = self.feature_set
        columns = [str(c) for c in features.columns]
        if columns not in (fs.columns, fs.series_columns):
            raise ValueError(
                f"{symbol}: columns {columns} are not those of feature set {fs.name} "
                f"v{fs.version} ({fs.series_columns}, plus ranks in a panel)"
            )
        if not isinstance(features.index, pd.DatetimeIndex):
            raise ValueError(f"{symbol}: features need a DatetimeIndex")
        index = features.index
        zone = None if index.tz is None else str(index.tz)
        arrays = {_TIME: pa.array(index.asi8, type=pa.timestamp(index.unit, tz=zone))}
        for name in columns:
            arrays[name] = pa.array(features[name].to_numpy(dtype=np.float64))
        metadata = {
            _HASH: fs.hash.encode(),
            _DEFINITION: fs.canonical_json().encode(),
            _SYMBOL: symbol.encode(),
        }
        table = pa.table(arrays).replace_schema_metadata(metadata)
        path = self.path(symbol, interval)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
        return path

    def write_panel(self, panel: pd.DataFrame, interval: str = "1m") -> list[Path]:
        """Store a ``compute_panel`` frame, one file per symbol."""
        symbols = panel.index.get_level_values("symbol").unique()
        return [self.write(str(s), panel.xs(s, level="symbol"), interval) for s in symbols]

    def build(
        self,
        bars_by_symbol: Mapping[str, pd.DataFrame],
        interval: str = "1m",
        *,
        progress: ProgressFn | None = None,
    ) -> pd.DataFrame:
        """Compute the panel (ranks included) and store it; ``progress(done, total)`` after each
        symbol's features. Returns the panel."""
        panel = self.feature_set.compute_panel(bars_by_symbol, progress=progress)
        self.write_panel(panel, interval)
        return panel

    # -- read --------------------------------------------------------------------------------

    def stored_definition(self, symbol: str, interval: str = "1m") -> dict[str, Any]:
        """The definition a stored file was computed with."""
        metadata = self._metadata(symbol, interval)
        return dict(json.loads(metadata.get(_DEFINITION, b"{}")))

    def _metadata(self, symbol: str, interval: str) -> dict[bytes, bytes]:
        path = self.path(symbol, interval)
        if not path.is_file():
            raise FileNotFoundError(f"no {interval} features stored for {symbol} at {path}")
        return dict(pq.read_schema(path).metadata or {})

    def _check(self, symbol: str, interval: str) -> None:
        stored = self._metadata(symbol, interval).get(_HASH, b"").decode()
        if stored != self.feature_set.hash:
            raise FeatureSetMismatchError(
                f"{symbol} {interval}: stored features have feature-set hash {stored[:12] or '?'}"
                f", this store's {self.feature_set.name} v{self.feature_set.version} is "
                f"{self.feature_set.hash[:12]}: recompute them"
            )

    def read_symbol(
        self,
        symbol: str,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        interval: str = "1m",
    ) -> pd.DataFrame:
        """One symbol's stored features with start <= timestamp < end."""
        self._check(symbol, interval)
        frame = pq.read_table(self.path(symbol, interval)).to_pandas().set_index(_TIME)
        index = pd.DatetimeIndex(frame.index)
        lo, hi = _bound(start, index), _bound(end, index)
        keep = np.ones(len(frame), dtype=bool)
        if lo is not None:
            keep &= index >= lo
        if hi is not None:
            keep &= index < hi
        return frame.loc[keep]

    def read(
        self,
        symbols: Iterable[str],
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        interval: str = "1m",
    ) -> pd.DataFrame:
        """Stored features of ``symbols`` with start <= timestamp < end, as a panel indexed
        ``(timestamp, symbol)`` (sorted), like ``compute_panel``."""
        names = list(dict.fromkeys(symbols))
        frames = [self.read_symbol(s, start, end, interval) for s in names]
        if not frames:
            raise ValueError("read needs at least one symbol")
        panel = pd.concat(frames, keys=names, names=["symbol", _TIME]).swaplevel()
        return panel.sort_index()
