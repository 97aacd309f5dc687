"""Start and stop the market side of a process: event bus, quote cache, stream hub, feed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import structlog

from quantdesk.bus.base import EventBus
from quantdesk.bus.factory import create_bus
from quantdesk.market.feed import Feed, create_feed
from quantdesk.market.quotes import QuoteCache, create_quote_cache
from quantdesk.settings import FeedKind, Settings
from quantdesk.stream.hub import StreamHub

log = structlog.get_logger("quantdesk.market")

PriceSource = Callable[[], Awaitable[Mapping[str, Decimal]]]


@dataclass
class MarketRuntime:
    bus: EventBus
    cache: QuoteCache
    hub: StreamHub
    feed: Feed | None

    async def stop(self) -> None:
        if self.feed is not None:
            await self.feed.stop()
        await self.hub.close()
        await self.bus.close()
        await self.cache.close()


async def start_market(
    settings: Settings, start_prices: PriceSource | None = None
) -> MarketRuntime:
    bus = create_bus(settings.redis_url, prefix=settings.redis_prefix)
    await bus.start()
    cache = create_quote_cache(settings.redis_url, prefix=settings.redis_prefix)
    hub = StreamHub(bus)
    await hub.start()
    feed: Feed | None = None
    if settings.feed == FeedKind.RANDOM:
        prices = await start_prices() if start_prices is not None else {}
        feed = create_feed(
            "random",
            bus=bus,
            cache=cache,
            start_prices=prices or None,
            seed=settings.feed_seed,
            interval=settings.feed_interval_seconds,
        )
        await feed.start()
        log.info("feed_started", kind="random", symbols=len(prices) or "demo")
    return MarketRuntime(bus=bus, cache=cache, hub=hub, feed=feed)
