"""Features for the ML engine: one declarative, versioned definition computed in batch
(training, backtests) and streaming (live), stored offline (Parquet) and online (latest vector).

- :class:`FeatureSet` (name, version, content ``hash``; ``from_yaml``/``to_yaml``) holds
  :class:`Feature` s (``Feature.make(name, kind, **params)``, ``Feature.rank(name, of)``,
  ``Feature.custom(name, fn, lookback)``); :func:`default_feature_set` is the platform's set.
- Batch is a pair of METHODS: ``feature_set.compute_batch(bars)`` (one symbol, per-symbol
  columns) and ``feature_set.compute_panel(bars_by_symbol, progress=...)`` (index
  ``(timestamp, symbol)``, cross-sectional ranks included).
- :class:`StreamingFeatures` (``update`` per bar, ``vector(ts)`` with ranks once a timestamp is
  complete) equals batch within 1e-9 (absolute below 1, relative above) when fed the same bars
  from the same first bar. Custom features are batch-only: streaming refuses a set with one.
- :func:`assert_no_lookahead` / :class:`LookAheadError`: the look-ahead guard;
  :func:`nan_only_features`: columns a model must not train on.
- :class:`OfflineFeatureStore` (Parquet, keyed and checked by hash);
  :class:`InProcessOnlineStore` / :class:`RedisOnlineStore` behind :class:`OnlineFeatureStore`.
"""

from quantdesk.ml.features.batch import nan_only_features
from quantdesk.ml.features.lookahead import LookAheadError, assert_no_lookahead
from quantdesk.ml.features.offline import FeatureSetMismatchError, OfflineFeatureStore
from quantdesk.ml.features.online import (
    FeatureVector,
    InProcessOnlineStore,
    OnlineFeatureStore,
    RedisOnlineStore,
)
from quantdesk.ml.features.spec import KINDS, Feature, FeatureSet, default_feature_set
from quantdesk.ml.features.stream import StreamingFeatures

__all__ = [
    "KINDS",
    "Feature",
    "FeatureSet",
    "FeatureSetMismatchError",
    "FeatureVector",
    "InProcessOnlineStore",
    "LookAheadError",
    "OfflineFeatureStore",
    "OnlineFeatureStore",
    "RedisOnlineStore",
    "StreamingFeatures",
    "assert_no_lookahead",
    "default_feature_set",
    "nan_only_features",
]
