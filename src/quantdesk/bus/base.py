"""The event bus interface: publish JSON-shaped dicts on named channels, subscribe by name or glob.

Delivery is at-most-once and fire-and-forget (Redis pub/sub semantics): a subscriber sees the
messages published while it is subscribed, in publish order per channel. Each subscriber has its
own bounded queue; when a slow subscriber's queue is full its oldest message is dropped (and
counted) so publishers and other subscribers never wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager
from functools import lru_cache
from types import TracebackType
from typing import Any, Literal, Self

Message = dict[str, Any]
"""A bus message: a dict that survives ``json.dumps`` (decimals as strings, times as ISO)."""

Delivery = tuple[str, Message]
"""What a subscriber receives: the concrete channel and the message."""

Key = tuple[Literal["channel", "pattern"], str]
"""A subscription key: an exact channel name or a glob pattern."""

DEFAULT_QUEUE_SIZE = 1024

log = logging.getLogger(__name__)


class BusError(RuntimeError):
    """Base class for event bus errors."""


class BusNotRunningError(BusError):
    """The bus was used before ``start()`` or after ``close()``."""


class BusUnavailableError(BusError):
    """The bus's server cannot be reached (at start-up or while publishing)."""


class SubscriptionClosedError(BusError):
    """``get()`` was called on a subscription that is closed and drained."""


@lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """Compile a Redis-style glob (``*``, ``?``, ``[a-z]``, ``[^x]``, ``\\`` escapes).

    The in-process bus uses the same matcher so a pattern means the same thing on both buses.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            while i + 1 < n and pattern[i + 1] == "*":
                i += 1
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            i = _compile_class(pattern, i + 1, out)
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _compile_class(pattern: str, i: int, out: list[str]) -> int:
    """Append a character class starting after ``[``; return the index after its ``]``.

    Like Redis, an unclosed class runs to the end of the pattern and reversed ranges are
    swapped.
    """
    n = len(pattern)
    negate = i < n and pattern[i] == "^"
    if negate:
        i += 1
    items: list[str] = []
    while i < n and pattern[i] != "]":
        if pattern[i] == "\\" and i + 1 < n:
            items.append(re.escape(pattern[i + 1]))
            i += 2
        elif i + 2 < n and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            lo, hi = sorted((pattern[i], pattern[i + 2]))
            items.append(f"{re.escape(lo)}-{re.escape(hi)}")
            i += 3
        else:
            items.append(re.escape(pattern[i]))
            i += 1
    if items:
        out.append(f"[{'^' if negate else ''}{''.join(items)}]")
    else:
        out.append("." if negate else "(?!)")  # "[]" matches nothing, "[^]" anything
    return i + 1


def glob_escape(text: str) -> str:
    """Escape ``text`` so it matches itself literally inside a glob pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class Subscription:
    """One subscriber's view of the bus: an async iterator of ``(channel, message)``.

    The bus fills the queue without ever waiting; the subscriber drains it at its own pace.
    """

    def __init__(self, channels: Iterable[str], patterns: Iterable[str], queue_size: int) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.channels = frozenset(channels)
        # Sorted so that "which of my keys is responsible for this channel" has one answer.
        self.patterns = tuple(sorted(set(patterns)))
        if not self.channels and not self.patterns:
            raise ValueError("subscribe to at least one channel or pattern")
        self._regexes = tuple(compile_glob(p) for p in self.patterns)
        self._queue: deque[Delivery] = deque(maxlen=queue_size)
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0
        """Messages discarded because this subscriber's queue was full."""

    @property
    def keys(self) -> list[Key]:
        return [("channel", c) for c in sorted(self.channels)] + [
            ("pattern", p) for p in self.patterns
        ]

    @property
    def closed(self) -> bool:
        return self._closed

    def pending(self) -> int:
        """Messages queued and not yet read."""
        return len(self._queue)

    def matches(self, channel: str) -> bool:
        return channel in self.channels or any(r.fullmatch(channel) for r in self._regexes)

    def owner_key(self, channel: str) -> Key | None:
        """The one key of this subscription that should deliver ``channel``'s messages.

        Redis sends a subscriber one copy per matching channel/pattern; delivering only the copy
        for this key gives each subscriber each message exactly once.
        """
        if channel in self.channels:
            return ("channel", channel)
        for pattern, regex in zip(self.patterns, self._regexes, strict=True):
            if regex.fullmatch(channel):
                return ("pattern", pattern)
        return None

    def offer(self, channel: str, message: Message) -> None:
        """Queue a message without waiting; drop the oldest one if the queue is full."""
        if self._closed:
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
            if self.dropped == 1:
                log.warning(
                    "bus subscriber is too slow, dropping its oldest messages",
                    extra={"channels": sorted(self.channels), "patterns": self.patterns},
                )
        self._queue.append((channel, message))
        self._ready.set()

    def close(self) -> None:
        """Stop accepting messages; readers get what is queued, then the iteration ends."""
        self._closed = True
        self._ready.set()

    def get_nowait(self) -> Delivery | None:
        return self._queue.popleft() if self._queue else None

    async def get(self, timeout: float | None = None) -> Delivery:  # noqa: ASYNC109
        """The next delivery; raises ``TimeoutError`` or :class:`SubscriptionClosedError`."""
        if self._queue:  # the common case under load: no timer, no waiting
            return self._queue.popleft()
        if timeout is None:
            return await self._wait()
        async with asyncio.timeout(timeout):
            return await self._wait()

    async def _wait(self) -> Delivery:
        while not self._queue:
            if self._closed:
                raise SubscriptionClosedError("subscription is closed")
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self

    async def __anext__(self) -> Delivery:
        if self._queue:
            return self._queue.popleft()
        try:
            return await self._wait()
        except SubscriptionClosedError:
            raise StopAsyncIteration from None


class EventBus(ABC):
    """Publish/subscribe between tasks (in-process) or processes (Redis).

    Use as ``async with bus:`` or call ``start()``/``close()``; subscribe with
    ``async with bus.subscribe("orders", patterns=["quotes:*"]) as sub: async for ch, msg in sub``.
    """

    @abstractmethod
    async def start(self) -> None:
        """Connect and get ready; idempotent."""

    @abstractmethod
    async def close(self) -> None:
        """End every subscription and release connections; idempotent."""

    @abstractmethod
    async def publish(self, channel: str, message: Message) -> None:
        """Send ``message`` to every current subscriber of ``channel``; never waits for them."""

    async def publish_many(self, messages: Iterable[tuple[str, Message]]) -> None:
        """Publish ``(channel, message)`` pairs in order; one round trip where the bus can."""
        for channel, message in messages:
            await self.publish(channel, message)

    @abstractmethod
    def subscribe(
        self, *channels: str, patterns: Iterable[str] = (), queue_size: int | None = None
    ) -> AbstractAsyncContextManager[Subscription]:
        """Subscribe to exact ``channels`` and glob ``patterns`` for the ``async with`` block.

        Messages published after the block is entered are delivered; leaving it unsubscribes.
        """

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
