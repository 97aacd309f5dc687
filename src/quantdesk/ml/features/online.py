"""The online feature store: the latest feature vector of each symbol, for live inference.

One small async interface (:class:`OnlineFeatureStore`) with an in-process implementation and
a Redis one (``redis.asyncio``), so several processes share the vectors. A vector older than
the stored one is ignored (``put`` returns False): replays and late writers cannot roll a symbol
back in time. NaN values (warm-up) travel as JSON ``null``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

import pandas as pd

__all__ = ["FeatureVector", "InProcessOnlineStore", "OnlineFeatureStore", "RedisOnlineStore"]


@dataclass(frozen=True, slots=True)
class FeatureVector:
    """A symbol's features at bar ``ts`` (UTC)."""

    symbol: str
    ts: pd.Timestamp
    values: dict[str, float]


def _utc(ts: datetime | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def _micros(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1000)  # exact in a Lua double (< 2**53), unlike nanoseconds


def _values(values: Mapping[str, float]) -> dict[str, float]:
    out = {str(k): float(v) for k, v in values.items()}
    bad = [k for k, v in out.items() if math.isinf(v)]
    if bad:
        raise ValueError(f"feature values must be finite or NaN; infinite: {bad}")
    return out


class OnlineFeatureStore(Protocol):
    """Latest feature vector per symbol."""

    async def put(
        self, symbol: str, ts: datetime | pd.Timestamp, values: Mapping[str, float]
    ) -> bool:
        """Store ``values`` as ``symbol``'s vector at ``ts`` unless a later one is stored."""
        ...

    async def get(self, symbol: str) -> FeatureVector | None:
        """The symbol's latest vector, or None."""
        ...

    async def get_many(self, symbols: Iterable[str]) -> dict[str, FeatureVector]:
        """The latest vectors of the symbols that have one."""
        ...


class InProcessOnlineStore:
    """An :class:`OnlineFeatureStore` in this process's memory."""

    def __init__(self) -> None:
        self._vectors: dict[str, FeatureVector] = {}

    async def put(
        self, symbol: str, ts: datetime | pd.Timestamp, values: Mapping[str, float]
    ) -> bool:
        stamp, current = _utc(ts), self._vectors.get(symbol)
        if current is not None and current.ts > stamp:
            return False
        self._vectors[symbol] = FeatureVector(symbol, stamp, _values(values))
        return True

    async def get(self, symbol: str) -> FeatureVector | None:
        return self._vectors.get(symbol)

    async def get_many(self, symbols: Iterable[str]) -> dict[str, FeatureVector]:
        return {s: self._vectors[s] for s in symbols if s in self._vectors}


# Compare and set in one step, so concurrent writers keep the latest bar.
_PUT = """
local current = redis.call('HGET', KEYS[1], 'ts_us')
if current and tonumber(current) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'ts_us', ARGV[1], 'vector', ARGV[2])
return 1
"""


class RedisOnlineStore:
    """An :class:`OnlineFeatureStore` in Redis: one hash per symbol at ``prefix + symbol``
    (fields ``ts_us`` and ``vector``, JSON). Takes a ``redis.asyncio.Redis`` client, with or
    without ``decode_responses``; the caller owns (and closes) it."""

    def __init__(self, client: Any, prefix: str = "qd:features:") -> None:
        self.client, self.prefix = client, prefix
        self._put = client.register_script(_PUT)

    def key(self, symbol: str) -> str:
        return f"{self.prefix}{symbol}"

    async def put(
        self, symbol: str, ts: datetime | pd.Timestamp, values: Mapping[str, float]
    ) -> bool:
        stamp = _utc(ts)
        clean = {k: (None if math.isnan(v) else v) for k, v in _values(values).items()}
        payload = json.dumps({"ts": stamp.isoformat(), "values": clean}, allow_nan=False)
        done = await self._put(keys=[self.key(symbol)], args=[_micros(stamp), payload])
        return bool(int(done))

    def _decode(self, symbol: str, raw: bytes | str | None) -> FeatureVector | None:
        if raw is None:
            return None
        data = json.loads(raw)
        values = {k: (math.nan if v is None else float(v)) for k, v in data["values"].items()}
        return FeatureVector(symbol, pd.Timestamp(data["ts"]), values)

    async def get(self, symbol: str) -> FeatureVector | None:
        raw = await self.client.hget(self.key(symbol), "vector")
        return self._decode(symbol, cast(bytes | str | None, raw))

    async def get_many(self, symbols: Iterable[str]) -> dict[str, FeatureVector]:
        names = list(dict.fromkeys(symbols))
        if not names:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for s in names:
            pipe.hget(self.key(s), "vector")
        found = {
            s: self._decode(s, raw) for s, raw in zip(names, await pipe.execute(), strict=True)
        }
        return {s: v for s, v in found.items() if v is not None}
