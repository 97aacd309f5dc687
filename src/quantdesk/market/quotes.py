"""Latest quote per symbol, for ``GET /market/quotes`` and for a WebSocket client's first frame.

The feed writes every quote here before publishing it on the bus, so a reader that takes a
snapshot and then follows the stream misses nothing. Last write wins: exactly one feed process
owns a symbol's quotes (see DESIGN.md, processes and scale).
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis

from quantdesk.bus.redis import aclose
from quantdesk.core.market import Quote

log = logging.getLogger(__name__)


class QuoteCache(ABC):
    """Latest quote per ``EXCHANGE:SYMBOL``."""

    @abstractmethod
    async def set_many(self, quotes: Iterable[Quote]) -> None:
        """Store each quote as its symbol's latest (later quotes in the iterable win)."""

    @abstractmethod
    async def get_many(self, symbols: Iterable[str]) -> dict[str, Quote]:
        """Latest quotes for ``symbols``; symbols never quoted are absent from the result."""

    async def set(self, quote: Quote) -> None:
        await self.set_many((quote,))

    async def get(self, symbol: str) -> Quote | None:
        return (await self.get_many((symbol,))).get(symbol)

    async def close(self) -> None:
        """Release connections (nothing to do for the in-memory cache)."""
        return None


class MemoryQuoteCache(QuoteCache):
    """A dict: the embedded default."""

    def __init__(self) -> None:
        self._quotes: dict[str, Quote] = {}

    async def set_many(self, quotes: Iterable[Quote]) -> None:
        for quote in quotes:
            self._quotes[quote.symbol] = quote

    async def get_many(self, symbols: Iterable[str]) -> dict[str, Quote]:
        return {s: q for s in symbols if (q := self._quotes.get(s)) is not None}


class RedisQuoteCache(QuoteCache):
    """One Redis hash (``<prefix>quotes``) of symbol -> quote JSON.

    A hash makes a many-symbol read one HMGET and a many-symbol write one HSET: a single round
    trip either way, with no pipeline needed.
    """

    def __init__(self, url: str, *, prefix: str = "qd:", **redis_options: Any) -> None:
        """``url`` like ``redis://host:6379/0``; ``redis_options`` go to ``Redis.from_url``."""
        options: dict[str, Any] = {"decode_responses": True, "socket_keepalive": True}
        self._client = Redis.from_url(url, **(options | redis_options))
        self.key = prefix + "quotes"

    async def set_many(self, quotes: Iterable[Quote]) -> None:
        latest = {q.symbol: q for q in quotes}
        if not latest:
            return
        # One pipelined round trip; per-field HSETs type-check against both redis-py's own
        # annotations and the types-redis stubs, where a mapping argument cannot.
        async with self._client.pipeline(transaction=False) as pipe:
            for symbol, quote in latest.items():
                pipe.hset(self.key, symbol, json.dumps(quote.to_json(), separators=(",", ":")))
            await pipe.execute()

    async def get_many(self, symbols: Iterable[str]) -> dict[str, Quote]:
        wanted = list(dict.fromkeys(symbols))
        if not wanted:
            return {}
        values = await self._client.hmget(self.key, wanted)
        result: dict[str, Quote] = {}
        for symbol, raw in zip(wanted, values, strict=True):
            if raw is None:
                continue
            try:
                result[symbol] = Quote.from_json(json.loads(raw))
            except (ValueError, TypeError, KeyError):
                # A corrupt entry reads as "no quote" rather than failing the whole request.
                log.warning("ignoring an unreadable cached quote for %s", symbol)
        return result

    async def clear(self) -> None:
        """Forget every quote (for tests and a fresh replay)."""
        await self._client.delete(self.key)

    async def close(self) -> None:
        await aclose(self._client)


def create_quote_cache(redis_url: str | None, prefix: str = "qd:") -> QuoteCache:
    """:class:`RedisQuoteCache` for ``redis_url``, else :class:`MemoryQuoteCache`."""
    if redis_url:
        return RedisQuoteCache(redis_url, prefix=prefix)
    return MemoryQuoteCache()
