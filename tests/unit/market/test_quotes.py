"""The latest-quote cache, on memory and on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from quantdesk.core.market import Quote
from quantdesk.market.quotes import (
    MemoryQuoteCache,
    QuoteCache,
    RedisQuoteCache,
    create_quote_cache,
)

T0 = datetime(2024, 1, 2, 3, 45, tzinfo=UTC)


def quote(symbol: str, last: str, seconds: int = 0) -> Quote:
    price = Decimal(last)
    return Quote(
        symbol,
        price,
        price - Decimal("0.05"),
        price + Decimal("0.05"),
        10,
        T0 + timedelta(seconds=seconds),
    )


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[QuoteCache]:
    if request.param == "memory":
        yield MemoryQuoteCache()
        return
    redis_cache = RedisQuoteCache(
        request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix")
    )
    yield redis_cache
    await redis_cache.clear()
    await redis_cache.close()


async def test_latest_quote_per_symbol_wins(cache: QuoteCache) -> None:
    await cache.set(quote("NSE:INFY", "1500.05"))
    await cache.set(quote("NSE:INFY", "1500.10", seconds=1))
    assert await cache.get("NSE:INFY") == quote("NSE:INFY", "1500.10", seconds=1)


async def test_get_many_returns_only_known_symbols(cache: QuoteCache) -> None:
    await cache.set_many([quote("NSE:INFY", "1500"), quote("NSE:TCS", "3500")])
    got = await cache.get_many(["NSE:TCS", "NSE:NOPE", "NSE:INFY", "NSE:TCS"])
    assert got == {"NSE:TCS": quote("NSE:TCS", "3500"), "NSE:INFY": quote("NSE:INFY", "1500")}
    assert await cache.get("NSE:NOPE") is None


async def test_get_many_of_nothing_is_empty(cache: QuoteCache) -> None:
    assert await cache.get_many([]) == {}
    await cache.set_many([])


async def test_later_quote_in_one_batch_wins(cache: QuoteCache) -> None:
    await cache.set_many([quote("NSE:INFY", "1"), quote("NSE:INFY", "2", seconds=1)])
    assert await cache.get("NSE:INFY") == quote("NSE:INFY", "2", seconds=1)


@pytest.mark.redis
async def test_redis_cache_is_shared_between_processes(redis_url: str, redis_prefix: str) -> None:
    writer = RedisQuoteCache(redis_url, prefix=redis_prefix)
    reader = RedisQuoteCache(redis_url, prefix=redis_prefix)
    try:
        await writer.set(quote("NSE:INFY", "1500"))
        assert await reader.get_many(["NSE:INFY"]) == {"NSE:INFY": quote("NSE:INFY", "1500")}
    finally:
        await writer.clear()
        await writer.close()
        await reader.close()


@pytest.mark.redis
async def test_unreadable_redis_entry_reads_as_missing(redis_url: str, redis_prefix: str) -> None:
    cache = RedisQuoteCache(redis_url, prefix=redis_prefix)
    raw = Redis.from_url(redis_url, decode_responses=True)
    try:
        await cache.set(quote("NSE:TCS", "3500"))
        await raw.hset(cache.key, "NSE:INFY", "{not json")
        assert await cache.get_many(["NSE:INFY", "NSE:TCS"]) == {
            "NSE:TCS": quote("NSE:TCS", "3500")
        }
    finally:
        await cache.clear()
        await cache.close()
        await raw.aclose()


def test_factory_picks_redis_for_a_url_and_memory_otherwise() -> None:
    assert isinstance(create_quote_cache("redis://127.0.0.1:6379/0"), RedisQuoteCache)
    assert isinstance(create_quote_cache(None), MemoryQuoteCache)
