"""Market feeds: random walk and bar replay, publishing on the bus and filling the cache."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from quantdesk.bus import MemoryBus, RedisBus
from quantdesk.core.market import Bar, Quote, is_on_tick, quotes_from_bar
from quantdesk.market.feed import (
    DEMO_START_PRICES,
    Feed,
    FeedKind,
    ManualClock,
    NullFeed,
    RandomWalkFeed,
    ReplayFeed,
    create_feed,
)
from quantdesk.market.quotes import MemoryQuoteCache, QuoteCache, RedisQuoteCache

T0 = datetime(2024, 1, 2, 3, 45, tzinfo=UTC)  # 09:15 IST, NSE open
TICK = Decimal("0.05")
PRICES = {"NSE:INFY": Decimal("1500"), "NSE:TCS": Decimal("3500")}


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    async with MemoryBus(queue_size=100_000) as b:
        yield b


def walk(
    bus: MemoryBus,
    *,
    seed: int = 7,
    prices: dict[str, Decimal] = PRICES,
    ticks: int = 50,
    clock: ManualClock | None = None,
) -> RandomWalkFeed:
    return RandomWalkFeed(
        bus,
        MemoryQuoteCache(),
        prices,
        seed=seed,
        interval=0.5,
        max_ticks=ticks,
        volatility=0.002,
        clock=clock or ManualClock(T0),
    )


async def collect(feed: Feed) -> list[Quote]:
    """Run the feed to its end and return what it published, in order."""
    async with feed.bus.subscribe(patterns=["quotes:*"], queue_size=100_000) as sub:
        await feed.run()
        got = []
        while (delivery := sub.get_nowait()) is not None:
            channel, message = delivery
            q = Quote.from_json(message)
            assert channel == f"quotes:{q.symbol}"
            got.append(q)
    return got


async def test_random_walk_is_the_same_for_the_same_seed(bus: MemoryBus) -> None:
    first = await collect(walk(bus, seed=7))
    again = await collect(walk(bus, seed=7))
    other = await collect(walk(bus, seed=8))
    assert first == again
    assert [q.last for q in first] != [q.last for q in other]


async def test_random_walk_of_a_symbol_does_not_depend_on_the_other_symbols(bus: MemoryBus) -> None:
    both = await collect(walk(bus))
    alone = await collect(walk(bus, prices={"NSE:TCS": PRICES["NSE:TCS"]}))
    assert [q for q in both if q.symbol == "NSE:TCS"] == alone


async def test_random_walk_quotes_are_sane(bus: MemoryBus) -> None:
    quotes = await collect(walk(bus, ticks=200))
    assert len(quotes) == 400
    for q in quotes:
        assert all(is_on_tick(p, TICK) for p in (q.last, q.bid, q.ask))
        assert q.bid <= q.last <= q.ask
        assert q.ask - q.bid in (TICK, 2 * TICK)
    infy = [q for q in quotes if q.symbol == "NSE:INFY"]
    assert all(a.volume < b.volume for a, b in itertools.pairwise(infy))
    assert len({q.last for q in infy}) > 10  # it does move


async def test_random_walk_ticks_on_the_clock(bus: MemoryBus) -> None:
    clock = ManualClock(T0)
    quotes = await collect(walk(bus, ticks=4, clock=clock))
    assert clock.slept == [0.5, 0.5, 0.5]
    assert sorted({q.ts for q in quotes}) == [T0 + timedelta(seconds=s) for s in (0, 0.5, 1, 1.5)]


async def test_random_walk_volume_restarts_on_a_new_day(bus: MemoryBus) -> None:
    feed = RandomWalkFeed(
        bus,
        MemoryQuoteCache(),
        {"NSE:INFY": Decimal(100)},
        interval=86_400,
        max_ticks=2,
        clock=ManualClock(T0),
    )
    first, second = await collect(feed)
    assert second.volume <= 1000 < first.volume + second.volume


async def test_feed_caches_the_latest_quote_of_each_symbol(bus: MemoryBus) -> None:
    feed = walk(bus, ticks=5)
    quotes = await collect(feed)
    latest = {q.symbol: q for q in quotes}
    assert await feed.cache.get_many(PRICES) == latest
    assert feed.emitted == 10


class FlakyCache(MemoryQuoteCache):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def set_many(self, quotes: Iterable[Quote]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("redis went away")
        await super().set_many(quotes)


async def test_feed_survives_a_failing_cache_and_carries_on(bus: MemoryBus) -> None:
    feed = RandomWalkFeed(bus, FlakyCache(failures=2), PRICES, max_ticks=5, clock=ManualClock(T0))
    quotes = await collect(feed)
    assert feed.errors == 2
    assert len(quotes) == 6  # ticks 3..5 of both symbols


async def test_started_feed_runs_in_the_background_until_stopped(bus: MemoryBus) -> None:
    feed = RandomWalkFeed(bus, MemoryQuoteCache(), PRICES, interval=0.001)
    async with bus.subscribe("quotes:NSE:INFY") as sub:
        await feed.start()
        assert feed.running
        for _ in range(3):
            await sub.get(timeout=2)
        await feed.stop()
    assert not feed.running
    await feed.stop()  # idempotent


def bars_for(
    day: datetime, minutes: int, symbols: Iterable[str] = ("NSE:INFY", "NSE:TCS")
) -> list[Bar]:
    out = []
    for m in range(minutes):
        for i, symbol in enumerate(symbols):
            base = Decimal(1000 * (i + 1) + m)
            out.append(
                Bar(day + timedelta(minutes=m), symbol, base, base + 2, base - 1, base + 1, 100)
            )
    return out


def replay(bus: MemoryBus, bars: object, clock: ManualClock, **kwargs: object) -> ReplayFeed:
    return ReplayFeed(bus, MemoryQuoteCache(), bars, clock=clock, **kwargs)  # type: ignore[arg-type]


async def test_replay_emits_each_bars_path_with_historical_times(bus: MemoryBus) -> None:
    bars = bars_for(T0, 3)
    quotes = await collect(replay(bus, bars, ManualClock(T0), speed=0))
    assert len(quotes) == 3 * 2 * 4
    infy = [q for q in quotes if q.symbol == "NSE:INFY"]
    expected, volume = [], 0
    for b in (b for b in bars if b.symbol == "NSE:INFY"):
        expected += quotes_from_bar(
            b, tick=TICK, interval=timedelta(minutes=1), session_volume=volume
        )
        volume += b.volume
    # The same quotes the backtester derives from the same bars.
    assert infy == expected
    assert [q.ts for q in quotes] == sorted(q.ts for q in quotes)


async def test_replay_sleeps_historical_time_divided_by_speed(bus: MemoryBus) -> None:
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    await collect(replay(bus, bars_for(T0, 3), clock, speed=60))
    # Three one-minute bars at 60x: a quarter second between quotes, two seconds in all
    # (nothing after the last quote).
    assert clock.slept == pytest.approx([0.25] * 11)


async def test_replay_at_speed_zero_never_waits(bus: MemoryBus) -> None:
    clock = ManualClock(T0)
    await collect(replay(bus, bars_for(T0, 3), clock, speed=0))
    assert set(clock.slept) == {0.0}


async def test_replay_shortens_overnight_gaps_to_max_gap(bus: MemoryBus) -> None:
    day_2 = T0 + timedelta(days=1)
    bars = bars_for(T0, 2, ["NSE:INFY"]) + bars_for(day_2, 2, ["NSE:INFY"])
    clock = ManualClock(T0)
    quotes = await collect(replay(bus, bars, clock, speed=1, max_gap=timedelta(seconds=30)))
    assert max(clock.slept) == 30
    # Volume is per session: it restarts with the new day.
    assert [q.volume for q in quotes if q.ts >= day_2][:4] == [25, 50, 75, 100]


async def test_replay_accepts_an_async_stream_of_bars(bus: MemoryBus) -> None:
    async def stream() -> AsyncIterator[Bar]:
        for b in bars_for(T0, 2):
            yield b

    assert len(await collect(replay(bus, stream(), ManualClock(T0), speed=0))) == 16


async def test_replay_refuses_bars_out_of_time_order(bus: MemoryBus) -> None:
    bars = list(reversed(bars_for(T0, 2, ["NSE:INFY"])))
    with pytest.raises(ValueError, match="time order"):
        await collect(replay(bus, bars, ManualClock(T0), speed=0))


async def test_replay_of_nothing_ends_at_once(bus: MemoryBus) -> None:
    assert await collect(replay(bus, [], ManualClock(T0))) == []


def test_replay_refuses_a_negative_speed(bus: MemoryBus) -> None:
    with pytest.raises(ValueError, match="speed"):
        replay(bus, [], ManualClock(T0), speed=-1)


def test_factory_builds_each_kind(bus: MemoryBus) -> None:
    cache = MemoryQuoteCache()
    random_feed = create_feed("random", bus=bus, cache=cache)
    assert isinstance(random_feed, RandomWalkFeed)
    assert isinstance(create_feed(FeedKind.REPLAY, bus=bus, cache=cache, bars=[]), ReplayFeed)
    assert isinstance(create_feed("none", bus=bus, cache=cache), NullFeed)
    with pytest.raises(ValueError, match="needs bars"):
        create_feed("replay", bus=bus, cache=cache)
    with pytest.raises(ValueError, match="bogus"):
        create_feed("bogus", bus=bus, cache=cache)


async def test_null_feed_emits_nothing(bus: MemoryBus) -> None:
    assert await collect(create_feed("none", bus=bus, cache=MemoryQuoteCache())) == []


async def test_demo_prices_are_used_when_none_are_given(bus: MemoryBus) -> None:
    feed = create_feed("random", bus=bus, cache=MemoryQuoteCache(), clock=ManualClock(T0))
    assert isinstance(feed, RandomWalkFeed)
    feed.max_ticks = 1
    assert {q.symbol for q in await collect(feed)} == set(DEMO_START_PRICES)


@pytest.mark.redis
async def test_feed_over_redis_reaches_another_process(redis_url: str, redis_prefix: str) -> None:
    cache: QuoteCache = RedisQuoteCache(redis_url, prefix=redis_prefix)
    async with (
        RedisBus(redis_url, prefix=redis_prefix) as engine_bus,
        RedisBus(redis_url, prefix=redis_prefix) as api_bus,
        api_bus.subscribe(patterns=["quotes:*"]) as sub,
    ):
        feed = RandomWalkFeed(engine_bus, cache, PRICES, max_ticks=3, clock=ManualClock(T0))
        await feed.run()
        got = [Quote.from_json((await sub.get(timeout=2))[1]) for _ in range(6)]
        reader = RedisQuoteCache(redis_url, prefix=redis_prefix)
        assert await reader.get_many(PRICES) == {q.symbol: q for q in got}
        await reader.close()
    await cache.clear()  # type: ignore[attr-defined]
    await cache.close()
    await asyncio.sleep(0)
