"""Start and stop the market side of a process: event bus, quote cache, bar store, stream hub
and the live feed chosen by ``QUANTDESK_FEED`` for the instruments in the database."""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.bus.base import EventBus
from quantdesk.bus.factory import create_bus
from quantdesk.core.market import Bar, round_to_tick
from quantdesk.market.feed import Feed, ReplayFeed, create_feed
from quantdesk.market.models import Instrument
from quantdesk.market.quotes import QuoteCache, create_quote_cache
from quantdesk.market.schemas import price_text
from quantdesk.market.store import BarStore
from quantdesk.settings import FeedKind, Settings
from quantdesk.stream.hub import StreamHub

log = structlog.get_logger("quantdesk.market")


@dataclass(frozen=True)
class FeedInstrument:
    symbol: str
    tick: Decimal
    last_price: Decimal | None


@dataclass
class MarketRuntime:
    bus: EventBus
    cache: QuoteCache
    store: BarStore
    hub: StreamHub
    feed: Feed | None

    def clock(self) -> datetime:
        """The market's time: the replayed market's on a replay feed (orders placed during a
        replay are accepted, filled, expired and charged at the replayed time), else UTC now."""
        if isinstance(self.feed, ReplayFeed) and self.feed.market_time is not None:
            return self.feed.market_time
        return datetime.now(UTC)

    async def start_feed(self) -> None:
        """Start the feed: once everything that follows it (paper broker, strategies) is
        subscribed, so a fast replay's first quotes reach them."""
        if self.feed is not None:
            await self.feed.start()
            log.info("feed_started", kind=type(self.feed).__name__)

    async def stop(self) -> None:
        if self.feed is not None:
            await self.feed.stop()
        await self.hub.close()
        await self.bus.close()
        await self.cache.close()


async def load_feed_instruments(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> list[FeedInstrument]:
    async with sessionmaker() as db:
        rows = (
            await db.execute(
                select(Instrument).where(Instrument.is_active.is_(True)).order_by(Instrument.id)
            )
        ).scalars()
        return [FeedInstrument(str(i.ref), _quote_tick(i.tick_size), i.last_price) for i in rows]


def _quote_tick(tick: Decimal) -> Decimal:
    """The tick with the precision quotes are shown in: at least paise (0.10, not 0.1 nor the
    0.10000000 that PostgreSQL's NUMERIC(28, 8) hands back)."""
    return Decimal(price_text(tick.normalize(), tick.normalize()))


def replay_bars(
    store: BarStore, universe: Sequence[FeedInstrument], sessions: int
) -> Iterator[Bar]:
    """The last ``sessions`` stored sessions of 1-minute bars of every instrument, merged into
    one time-ordered stream (several symbols share each minute)."""

    def one(inst: FeedInstrument) -> Iterator[Bar]:
        cov = store.coverage(inst.symbol).get("1m")
        if cov is None:
            return
        frame = store.read(inst.symbol, cov.last - timedelta(days=sessions * 2 + 4), None, "1m")
        if frame.empty:
            return
        frame = frame[frame["session"] >= sorted(frame["session"].unique())[-sessions]]
        for row in frame.itertuples(index=False):
            yield Bar(
                ts=row.timestamp.to_pydatetime(),
                symbol=inst.symbol,
                open=_on_tick(row.open, inst.tick),
                high=_on_tick(row.high, inst.tick),
                low=_on_tick(row.low, inst.tick),
                close=_on_tick(row.close, inst.tick),
                volume=int(row.volume),
            )

    return heapq.merge(*(one(i) for i in universe), key=lambda b: b.ts)


def _on_tick(value: float, tick: Decimal) -> Decimal:
    return round_to_tick(Decimal(repr(float(value))), tick)


async def start_market(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> MarketRuntime:
    bus = create_bus(settings.redis_url, prefix=settings.redis_prefix)
    await bus.start()
    cache = create_quote_cache(settings.redis_url, prefix=settings.redis_prefix)
    store = BarStore(settings.data_dir / "bars")
    hub = StreamHub(bus)
    await hub.start()
    feed = await _create_feed(settings, sessionmaker, bus, cache, store)
    return MarketRuntime(bus=bus, cache=cache, store=store, hub=hub, feed=feed)


async def _create_feed(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    bus: EventBus,
    cache: QuoteCache,
    store: BarStore,
) -> Feed | None:
    if settings.feed == FeedKind.NONE:
        return None
    universe = await load_feed_instruments(sessionmaker)
    ticks = {i.symbol: i.tick for i in universe}
    if settings.feed == FeedKind.RANDOM:
        priced = {i.symbol: i.last_price for i in universe if i.last_price}
        if not priced:
            log.warning("feed_not_started", reason="no instrument has a last price")
            return None
        feed = create_feed(
            "random",
            bus=bus,
            cache=cache,
            start_prices=priced,
            tick_sizes=ticks,
            seed=settings.feed_seed,
            interval=settings.feed_interval_seconds,
        )
    else:
        feed = create_feed(
            "replay",
            bus=bus,
            cache=cache,
            bars=replay_bars(store, universe, settings.replay_sessions),
            tick_sizes=ticks,
            speed=settings.replay_speed,
            max_gap=timedelta(seconds=5),
            spread_ticks=settings.replay_spread_ticks,
        )
    log.info("feed_created", kind=settings.feed.value, instruments=len(universe))
    return feed
