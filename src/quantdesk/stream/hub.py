"""The stream hub: ONE bus subscription per process, fanned out to WebSocket connections.

Each connection owns an :class:`Outbox`. Quotes are conflated per symbol (latest wins), so
a slow client receives fewer, fresher quotes and never holds memory beyond one quote per
symbol; account events (orders, positions, wallet) are queued in order and never dropped: a
client too slow to keep up with them is disconnected (it re-syncs over REST on reconnect).
Publishing into an outbox never awaits, so one slow client cannot stall the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

import structlog

from quantdesk.bus.base import EventBus, Message

log = structlog.get_logger("quantdesk.stream")

QUOTE_PREFIX = "quotes:"
PRIVATE_CHANNELS = ("orders", "positions", "wallet", "trades", "alerts", "jobs")


def user_channel(user_id: int, name: str) -> str:
    """The bus channel that carries one user's private stream ``name``."""
    return f"user:{user_id}:{name}"


Frame = Message | str
"""What an outbox holds: a frame to JSON-encode, or one already encoded (quotes, shared by all)."""


def encode_frame(frame: dict[str, Any]) -> str:
    """A frame's text, as Starlette's ``send_json`` would write it."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


class SlowConsumer(Exception):
    """The connection fell too far behind on events that may not be dropped."""


class Outbox:
    def __init__(self, max_events: int = 1000) -> None:
        self._quotes: OrderedDict[str, Frame] = OrderedDict()
        self._events: deque[Frame] = deque()
        self._max_events = max_events
        self._ready = asyncio.Event()
        self.overflowed = False
        self.conflated = 0

    def put_quote(self, channel: str, message: Frame) -> None:
        if channel in self._quotes:
            self.conflated += 1
            self._quotes[channel] = message
        else:
            self._quotes[channel] = message
        self._ready.set()

    def put_event(self, message: Message) -> None:
        if len(self._events) >= self._max_events:
            self.overflowed = True
        else:
            self._events.append(message)
        self._ready.set()

    async def next_batch(self, wait_seconds: float) -> list[Frame]:
        """Wait up to ``wait_seconds``; return everything pending (events first)."""
        if not self._events and not self._quotes:
            self._ready.clear()
            # asyncio.timeout, not wait_for: no Task per wake-up (wait_for makes one on 3.11).
            try:
                async with asyncio.timeout(wait_seconds):
                    await self._ready.wait()
            except TimeoutError:
                pass
        if self.overflowed:
            raise SlowConsumer
        batch = list(self._events)
        self._events.clear()
        batch.extend(self._quotes.values())
        self._quotes.clear()
        return batch


class Connection:
    """What the hub knows of one client: who, which channels, and its outbox."""

    def __init__(self, user_id: int, max_events: int = 1000) -> None:
        self.user_id = user_id
        self.outbox = Outbox(max_events)
        self.channels: set[str] = set()  # bus channel names


class StreamHub:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._by_channel: dict[str, set[Connection]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    @property
    def connections(self) -> int:
        return len({c for conns in self._by_channel.values() for c in conns})

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._pump(), name="stream-hub")
            await asyncio.wait_for(self._subscribed.wait(), 10)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _pump(self) -> None:
        # A large queue: the hub itself must keep up; per-client slowness is absorbed in outboxes.
        async with self.bus.subscribe(
            patterns=[f"{QUOTE_PREFIX}*", "user:*"], queue_size=65536
        ) as sub:
            self._subscribed.set()
            async for channel, message in sub:
                self.dispatch(channel, message)

    def dispatch(self, channel: str, message: Message) -> None:
        conns = self._by_channel.get(channel)
        if not conns:
            return
        if channel.startswith(QUOTE_PREFIX):
            # Encoded once here, not once per connection: the same text goes to every client.
            text = encode_frame({"type": "quote", "channel": channel, "data": message})
            for conn in conns:
                conn.outbox.put_quote(channel, text)
        else:
            # user:<id>:<name> -> the client knows it as <name>
            name = channel.rsplit(":", 1)[-1]
            out = {"type": message.get("type", name), "channel": name, "data": message}
            for conn in conns:
                conn.outbox.put_event(out)

    def subscribe(self, conn: Connection, channels: Iterable[str]) -> None:
        for ch in channels:
            conn.channels.add(ch)
            self._by_channel.setdefault(ch, set()).add(conn)

    def unsubscribe(self, conn: Connection, channels: Iterable[str] | None = None) -> None:
        for ch in list(conn.channels if channels is None else channels):
            conn.channels.discard(ch)
            conns = self._by_channel.get(ch)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self._by_channel[ch]
