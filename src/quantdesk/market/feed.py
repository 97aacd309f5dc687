"""Market feeds: produce quotes, keep the quote cache current and publish them on the bus.

Every feed writes each quote to the :class:`QuoteCache` and then publishes it on
``quotes:<EXCHANGE:SYMBOL>``. Sources: a seeded random walk (demo and tests), a replay of stored
bars (paper trading a past day) and none. Broker feeds plug in later as more :class:`Feed`
subclasses. Time comes from an injected :class:`Clock`, so tests and backtests run instantly.
"""

from __future__ import annotations

import asyncio
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from quantdesk.bus.base import EventBus
from quantdesk.core.market import Bar, Quote, quote_channel, quotes_from_bar, round_to_tick
from quantdesk.market.quotes import QuoteCache
from quantdesk.settings import FeedKind

log = logging.getLogger(__name__)

DEFAULT_TICK = Decimal("0.05")  # NSE equities

DEMO_START_PRICES: Mapping[str, Decimal] = {
    "NSE:INFY": Decimal("1500.00"),
    "NSE:TCS": Decimal("3500.00"),
    "NSE:RELIANCE": Decimal("2900.00"),
    "NSE:HDFCBANK": Decimal("1600.00"),
    "NSE:SBIN": Decimal("800.00"),
}
"""Symbols and prices for ``QUANTDESK_FEED=random`` when nothing else is configured."""

BarSource = Iterable[Bar] | AsyncIterable[Bar]


BarListener = Callable[[list[Bar], datetime], Awaitable[None]]
"""``listener(bars, end)``: the bars of one bar time, once its last quote was published."""


class Clock(Protocol):
    """Where a feed gets the time and how it waits."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that only moves when slept on: tests and fast-forward runs take no real time."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._now = start.astimezone(UTC)
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self._now += timedelta(seconds=seconds)
        await asyncio.sleep(0)  # still let other tasks run, as a real sleep would


class _TickSizes:
    def __init__(self, default: Decimal, overrides: Mapping[str, Decimal] | None) -> None:
        self._default = default
        self._overrides = dict(overrides or {})

    def __call__(self, symbol: str) -> Decimal:
        return self._overrides.get(symbol, self._default)


class Feed(ABC):
    """A source of quotes, driven by :meth:`run` or by :meth:`start`/:meth:`stop`."""

    def __init__(self, bus: EventBus, cache: QuoteCache, *, clock: Clock | None = None) -> None:
        self.bus = bus
        self.cache = cache
        self.clock: Clock = clock or SystemClock()
        self.emitted = 0
        """Quotes published so far."""
        self.errors = 0
        """Batches that could not be cached or published (the feed carries on)."""
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    def batches(self) -> AsyncIterator[list[Quote]]:
        """Quotes that share an instant, batch by batch; the source paces itself on the clock."""

    async def run(self) -> None:
        """Emit every batch until the source ends (random walks end only when stopped)."""
        async for batch in self.batches():
            await self.emit(batch)

    async def emit(self, quotes: list[Quote]) -> None:
        """Cache, then publish: a reader that snapshots the cache, then follows the bus,
        misses nothing."""
        try:
            await self.cache.set_many(quotes)
            await self.bus.publish_many((quote_channel(q.symbol), q.to_json()) for q in quotes)
            self.emitted += len(quotes)
        except Exception:
            # A Redis blip must not kill the market feed of a running server; the next batch
            # tries again.
            self.errors += 1
            log.exception("feed could not emit %d quotes", len(quotes))

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Run in a background task."""
        if self.running:
            return
        self._task = asyncio.create_task(self.run(), name=f"feed-{type(self).__name__}")

    async def stop(self) -> None:
        """Stop the background task and wait for it (re-raises a crash of the feed)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():  # our caller is being cancelled, not just the feed
                raise

    async def wait(self) -> None:
        """Wait for a started feed to finish on its own (a replay reaching its end)."""
        if self._task is not None:
            await asyncio.shield(self._task)


class NullFeed(Feed):
    """No market data: ``QUANTDESK_FEED=none``."""

    async def batches(self) -> AsyncIterator[list[Quote]]:
        return
        yield  # makes this an (empty) async generator


class RandomWalkFeed(Feed):
    """A seeded random walk per symbol: same seed, same prices, on any machine.

    Each tick moves every symbol by a whole number of ticks (normally distributed with
    ``volatility`` as the relative standard deviation), quotes a spread of one or two ticks
    around the last price and adds to the session volume. A symbol's path depends only on the
    seed and the symbol, so adding a symbol does not change the others.
    """

    def __init__(
        self,
        bus: EventBus,
        cache: QuoteCache,
        start_prices: Mapping[str, Decimal],
        *,
        seed: int = 0,
        interval: float = 1.0,
        volatility: float = 0.0005,
        tick_size: Decimal = DEFAULT_TICK,
        tick_sizes: Mapping[str, Decimal] | None = None,
        max_ticks: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(bus, cache, clock=clock)
        if not start_prices:
            raise ValueError("a random walk needs at least one symbol")
        if interval < 0 or volatility < 0:
            raise ValueError("interval and volatility must not be negative")
        self.interval = interval
        self.max_ticks = max_ticks
        self._volatility = volatility
        self._tick = _TickSizes(tick_size, tick_sizes)
        self._prices = {
            s: round_to_tick(Decimal(p), self._tick(s)) for s, p in start_prices.items()
        }
        # String seeds hash deterministically (unlike hash(), which is salted per process).
        self._rngs = {s: random.Random(f"{seed}:{s}") for s in start_prices}
        self._volumes = dict.fromkeys(start_prices, 0)
        self._session: date | None = None

    async def batches(self) -> AsyncIterator[list[Quote]]:
        ticks = 0
        while self.max_ticks is None or ticks < self.max_ticks:
            if ticks:
                await self.clock.sleep(self.interval)
            now = self.clock.now()
            if now.date() != self._session:  # a new (UTC) day starts a new volume count
                self._session = now.date()
                self._volumes = dict.fromkeys(self._volumes, 0)
            yield [self._step(symbol, now) for symbol in self._prices]
            ticks += 1

    def _step(self, symbol: str, now: datetime) -> Quote:
        rng, tick = self._rngs[symbol], self._tick(symbol)
        price = self._prices[symbol]
        sigma_ticks = float(price / tick) * self._volatility
        last = max(price + tick * round(rng.gauss(0.0, sigma_ticks)), tick)
        self._prices[symbol] = last
        spread = rng.choice((1, 2))
        bid = max(last - tick * rng.randint(0, spread), tick)
        self._volumes[symbol] += rng.randint(1, 1000)
        return Quote(
            symbol=symbol,
            last=last,
            bid=bid,
            ask=bid + tick * spread,
            volume=self._volumes[symbol],
            ts=now,
        )


class ReplayFeed(Feed):
    """Replays stored bars as quotes along each bar's O-H-L-C path (see ``core.market``).

    Quotes carry the bars' historical times, so a strategy sees the day as it happened. Between
    quotes the feed sleeps the historical time divided by ``speed``; ``speed=0`` replays as fast
    as possible. ``max_gap`` shortens long historical pauses (nights, weekends) before scaling.
    Bars must come in time order; bars with the same time (several symbols) form one batch.
    """

    def __init__(
        self,
        bus: EventBus,
        cache: QuoteCache,
        bars: BarSource,
        *,
        speed: float = 1.0,
        bar_interval: timedelta | None = None,
        max_gap: timedelta | None = None,
        tick_size: Decimal = DEFAULT_TICK,
        tick_sizes: Mapping[str, Decimal] | None = None,
        clock: Clock | None = None,
        spread_ticks: int = 1,
    ) -> None:
        super().__init__(bus, cache, clock=clock)
        if speed < 0:
            raise ValueError(f"speed must not be negative, got {speed}")
        if spread_ticks < 0:
            raise ValueError("spread_ticks must not be negative")
        self.spread_ticks = spread_ticks
        self.bar_listeners: list[BarListener] = []
        """Awaited after each bar time's last quote, before the next bar's first one, with the
        bars and their end: strategies deployed on a replay see each bar once it closed and
        place their orders before the market moves on (lockstep, deterministic)."""
        self.market_time: datetime | None = None
        """The replayed market's time: the last quote's, or a closed bar's end."""
        self.last_quote_time: datetime | None = None
        """The time of the last quote published."""
        if bar_interval is not None and bar_interval <= timedelta(0):
            raise ValueError("bar_interval must be positive")
        self.speed = speed
        self._bars = bars
        self._bar_interval = bar_interval
        self._max_gap = max_gap
        self._tick = _TickSizes(tick_size, tick_sizes)

    async def batches(self) -> AsyncIterator[list[Quote]]:
        volumes: dict[str, tuple[date, int]] = {}
        interval = self._bar_interval
        groups = aiter(_same_time_groups(self._bars))
        group = await anext(groups, None)
        while group is not None:
            following = await anext(groups, None)
            gap = following[0].ts - group[0].ts if following else None
            if self._bar_interval is None and gap is not None:
                # Without a configured bar size, the shortest gap seen so far is the bar size.
                interval = gap if interval is None else min(interval, gap)
            paths = [self._quotes(bar, interval or timedelta(0), volumes) for bar in group]
            points = len(paths[0])
            step = (interval or timedelta(0)) / points
            for i in range(points):
                batch = [path[i] for path in paths]
                self.market_time = self.last_quote_time = batch[0].ts
                yield batch
                if i < points - 1:
                    await self._pause(step)
            end = group[0].ts + (interval or timedelta(0))
            if following is not None:
                end = min(end, following[0].ts)
            self.market_time = max(end, self.market_time or end)
            for listener in list(self.bar_listeners):
                try:
                    await listener(group, end)
                except Exception:  # a listener's failure must not stop the market
                    log.exception("replay bar listener failed")
            if gap is not None:
                await self._pause(gap - step * (points - 1))  # until the next bars open
            group = following

    def _quotes(
        self, bar: Bar, interval: timedelta, volumes: dict[str, tuple[date, int]]
    ) -> list[Quote]:
        day, volume = volumes.get(bar.symbol, (bar.ts.date(), 0))
        if day != bar.ts.date():
            volume = 0
        quotes = quotes_from_bar(
            bar,
            tick=self._tick(bar.symbol),
            interval=interval,
            session_volume=volume,
            half_spread_ticks=self.spread_ticks,
        )
        volumes[bar.symbol] = (bar.ts.date(), quotes[-1].volume)
        return quotes

    async def _pause(self, historical: timedelta) -> None:
        if self._max_gap is not None:
            historical = min(historical, self._max_gap)
        seconds = historical.total_seconds() / self.speed if self.speed else 0.0
        # Sleep even for 0 s: a fast replay must still let the rest of the server run.
        await self.clock.sleep(max(seconds, 0.0))


async def _same_time_groups(bars: BarSource) -> AsyncIterator[list[Bar]]:
    group: list[Bar] = []
    async for bar in _aiter(bars):
        if group and bar.ts < group[0].ts:
            raise ValueError(f"bars out of time order: {bar.ts} after {group[0].ts}")
        if group and bar.ts != group[0].ts:
            yield group
            group = []
        group.append(bar)
    if group:
        yield group


async def _aiter(bars: BarSource) -> AsyncIterator[Bar]:
    if isinstance(bars, AsyncIterable):
        async for bar in bars:
            yield bar
    else:
        for bar in bars:
            yield bar


def create_feed(
    kind: FeedKind | str,
    *,
    bus: EventBus,
    cache: QuoteCache,
    start_prices: Mapping[str, Decimal] | None = None,
    bars: BarSource | None = None,
    seed: int = 0,
    interval: float = 1.0,
    speed: float = 1.0,
    max_gap: timedelta | None = None,
    tick_size: Decimal = DEFAULT_TICK,
    tick_sizes: Mapping[str, Decimal] | None = None,
    clock: Clock | None = None,
    spread_ticks: int = 1,
) -> Feed:
    """The feed for ``QUANTDESK_FEED``: ``random`` (``start_prices``, default
    :data:`DEMO_START_PRICES`), ``replay`` (needs ``bars``) or ``none``."""
    match FeedKind(kind):
        case FeedKind.RANDOM:
            return RandomWalkFeed(
                bus,
                cache,
                start_prices or DEMO_START_PRICES,
                seed=seed,
                interval=interval,
                tick_size=tick_size,
                tick_sizes=tick_sizes,
                clock=clock,
            )
        case FeedKind.REPLAY:
            if bars is None:
                raise ValueError("a replay feed needs bars")
            return ReplayFeed(
                bus,
                cache,
                bars,
                speed=speed,
                max_gap=max_gap,
                tick_size=tick_size,
                tick_sizes=tick_sizes,
                clock=clock,
                spread_ticks=spread_ticks,
            )
        case FeedKind.NONE:
            return NullFeed(bus, cache, clock=clock)
