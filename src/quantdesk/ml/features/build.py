"""Build the offline feature store from stored bars: what ``quantdesk ml features build`` and a
feature-build job (``POST /api/v1/ml/feature-builds``) both run.

Three stages, each reported to ``progress(stage, done, total)`` (the pipeline's convention):
``load`` (the bars of the range, per symbol), ``compute`` (each symbol's features, then the
cross-sectional ranks) and ``write`` (one Parquet file per symbol, replaced atomically). The
result is a small JSON-able document naming the feature set (name, version, content hash), the
symbols, the rows written and the data fingerprint, the same one training records.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from quantdesk.market.store import BarStore
from quantdesk.ml.dataset import load_bars
from quantdesk.ml.features.offline import OfflineFeatureStore
from quantdesk.ml.features.spec import FeatureSet, default_feature_set

__all__ = ["StageProgress", "build_offline_features"]

StageProgress = Callable[[str, int, int], None]


def _silent(stage: str, done: int, total: int) -> None:
    pass


def build_offline_features(
    data_dir: Path,
    store: BarStore,
    symbols: list[str],
    interval: str,
    start: date,
    end: date,
    *,
    feature_set: FeatureSet | None = None,
    progress: StageProgress | None = None,
) -> dict[str, Any]:
    """Compute ``feature_set`` (default: the platform's) over the stored bars of ``symbols``
    from ``start`` to ``end`` (sessions, inclusive) and store it under ``data_dir/features``.

    Raises :class:`~quantdesk.ml.dataset.TrainingDataError` (ML_UNKNOWN_SYMBOL, ML_NO_DATA,
    ML_BAD_DATA) before anything is written when the bars are not there."""
    fs = feature_set or default_feature_set()
    report = progress or _silent
    report("load", 0, 1)
    bars, fingerprint = load_bars(store, symbols, interval, start, end)
    report("load", 1, 1)
    ohlcv = {s: b[["open", "high", "low", "close", "volume"]] for s, b in bars.items()}
    offline = OfflineFeatureStore(data_dir, fs)
    total = len(ohlcv)
    panel = fs.compute_panel(ohlcv, progress=lambda done, _n: report("compute", done, total))
    names = list(ohlcv)
    for done, symbol in enumerate(names, 1):
        offline.write(symbol, panel.xs(symbol, level="symbol"), interval)
        report("write", done, total)
    return {
        "feature_set": fs.name,
        "version": fs.version,
        "hash": fs.hash,
        "columns": list(fs.columns),
        "symbols": sorted(names),
        "interval": interval,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "rows": int(sum(len(b) for b in bars.values())),
        "fingerprint": fingerprint,
        "path": str(offline.directory),
    }
