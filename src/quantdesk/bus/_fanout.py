"""Local fan-out shared by both buses: which subscriptions get a message, and their lifecycle.

The Redis bus holds one pub/sub connection per process and fans messages out here, so a
thousand WebSocket clients cost one Redis connection, not a thousand.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager, suppress

from quantdesk.bus.base import (
    DEFAULT_QUEUE_SIZE,
    BusNotRunningError,
    EventBus,
    Key,
    Subscription,
    compile_glob,
)


class Router:
    """Index of subscriptions by exact channel and by pattern."""

    def __init__(self) -> None:
        self._channels: dict[str, set[Subscription]] = {}
        self._patterns: dict[str, set[Subscription]] = {}

    def __len__(self) -> int:
        return len(self._all())

    def _all(self) -> set[Subscription]:
        return {s for group in (*self._channels.values(), *self._patterns.values()) for s in group}

    def _index(self, kind: str) -> dict[str, set[Subscription]]:
        return self._channels if kind == "channel" else self._patterns

    def add(self, sub: Subscription) -> list[Key]:
        """Register ``sub``; return the keys nobody was subscribed to before."""
        new: list[Key] = []
        for key in sub.keys:
            subs = self._index(key[0]).setdefault(key[1], set())
            if not subs:
                new.append(key)
            subs.add(sub)
        return new

    def remove(self, sub: Subscription) -> list[Key]:
        """Unregister ``sub``; return the keys nobody is subscribed to any more."""
        gone: list[Key] = []
        for key in sub.keys:
            index = self._index(key[0])
            subs = index.get(key[1])
            if subs is None or sub not in subs:
                continue
            subs.discard(sub)
            if not subs:
                del index[key[1]]
                gone.append(key)
        return gone

    def keys(self) -> list[Key]:
        return [("channel", c) for c in self._channels] + [("pattern", p) for p in self._patterns]

    def clear(self) -> set[Subscription]:
        subs = self._all()
        self._channels.clear()
        self._patterns.clear()
        return subs

    def matching(self, channel: str) -> Collection[Subscription]:
        """Every subscription that should receive a message on ``channel``, once each."""
        exact = self._channels.get(channel)
        if not self._patterns:
            return exact or ()
        found = set(exact) if exact else set()
        for pattern, subs in self._patterns.items():
            if compile_glob(pattern).fullmatch(channel):
                found |= subs
        return found

    def owned_by(self, key: Key, channel: str) -> list[Subscription]:
        """Subscriptions on ``key`` for which ``key`` is the one that delivers ``channel``."""
        subs = self._index(key[0]).get(key[1], ())
        # A subscription whose own matcher disagrees with the server (owner None) still gets the
        # message: the server is the authority on what matched.
        return [s for s in subs if len(s.keys) == 1 or s.owner_key(channel) in (key, None)]


class FanoutBus(EventBus):
    """Subscription bookkeeping for buses that fan out to local subscriber queues.

    Subclasses say how keys are (un)subscribed upstream and how messages arrive.
    """

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.queue_size = queue_size
        self._router = Router()
        # Serialises (un)subscribes so upstream SUBSCRIBE/UNSUBSCRIBE happen in router order.
        self._lock = asyncio.Lock()
        self._running = False
        self._closed = False

    @property
    def running(self) -> bool:
        return self._running

    def subscriber_count(self) -> int:
        return len(self._router)

    def _check_running(self) -> None:
        if not self._running:
            state = "closed" if self._closed else "not started"
            raise BusNotRunningError(f"{type(self).__name__} is {state}")

    async def _keys_added(self, keys: list[Key]) -> None:
        """Subscribe upstream to ``keys``; return once messages on them will arrive."""

    async def _keys_removed(self, keys: list[Key]) -> None:
        """Unsubscribe upstream from ``keys``."""

    @abstractmethod
    async def _shutdown(self) -> None:
        """Release upstream resources (called once by ``close``)."""

    async def close(self) -> None:
        if self._closed:
            return
        self._running = False
        self._closed = True
        for sub in self._router.clear():
            sub.close()
        await self._shutdown()

    @asynccontextmanager
    async def subscribe(
        self, *channels: str, patterns: Iterable[str] = (), queue_size: int | None = None
    ) -> AsyncIterator[Subscription]:
        self._check_running()
        sub = Subscription(channels, patterns, queue_size or self.queue_size)
        async with self._lock:
            new_keys = self._router.add(sub)
            try:
                await self._keys_added(new_keys)
            except BaseException:
                gone = self._router.remove(sub)
                # Best effort: a key left subscribed upstream only costs ignored messages.
                with suppress(Exception):
                    await self._keys_removed(gone)
                raise
        try:
            yield sub
        finally:
            sub.close()
            await self._unsubscribe(sub)

    async def _unsubscribe(self, sub: Subscription) -> None:
        async with self._lock:
            gone = self._router.remove(sub)
            if gone and self._running:
                await self._keys_removed(gone)
