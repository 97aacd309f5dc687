"""Redis pub/sub event bus, so several API processes serve one stream of events.

Each bus instance holds one pub/sub connection and fans messages out to its local subscribers.
Messages travel as JSON under a channel prefix (``qd:`` by default) so several deployments can
share one Redis. Pub/sub is fire-and-forget: messages published while the connection is down
are lost; after reconnecting, the bus resubscribes and delivery resumes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from quantdesk.bus._fanout import FanoutBus
from quantdesk.bus.base import (
    DEFAULT_QUEUE_SIZE,
    BusError,
    BusUnavailableError,
    Key,
    Message,
    glob_escape,
)

log = logging.getLogger(__name__)

_CONTROL_CHANNEL = "__bus__"

# Long, finite reads: an idle bus wakes up now and then, which costs nothing.
_YIELD_EVERY = 64
_READ_TIMEOUT = 60.0

_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def aclose(resource: object) -> None:
    """Call a redis-py client's or pub/sub's ``aclose()``.

    Through ``Any`` because the types-redis stubs predate ``aclose`` and redis-py's own
    annotations leave ``PubSub.aclose`` untyped; both pass mypy this way.
    """
    await cast(Any, resource).aclose()


class RedisBus(FanoutBus):
    """Event bus over Redis PUBLISH / SUBSCRIBE / PSUBSCRIBE."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "qd:",
        queue_size: int = DEFAULT_QUEUE_SIZE,
        subscribe_timeout: float = 5.0,
        reconnect_delay: float = 0.05,
        max_reconnect_delay: float = 5.0,
        **redis_options: Any,
    ) -> None:
        """``url`` like ``redis://host:6379/0``; ``redis_options`` go to ``Redis.from_url``."""
        super().__init__(queue_size=queue_size)
        options: dict[str, Any] = {"decode_responses": True, "socket_keepalive": True}
        self._client = Redis.from_url(url, **(options | redis_options))
        self.prefix = prefix
        # Patterns go upstream as escaped-prefix + pattern, so a prefix with glob characters
        # still only matches itself.
        self._pattern_prefix = glob_escape(prefix)
        self._subscribe_timeout = subscribe_timeout
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._acks: dict[Key, list[asyncio.Future[None]]] = {}
        self.reconnects = 0
        """Times the reader gave up on a connection and backed off before retrying."""

    async def start(self) -> None:
        if self._running:
            return
        if self._closed:
            self._check_running()
        pubsub = self._client.pubsub()
        # Subscribing to a control channel connects now, so a wrong URL or a down server fails
        # start-up rather than the first subscriber, and gives the reader a connection to read.
        try:
            await pubsub.subscribe(self.prefix + _CONTROL_CHANNEL)
        except _CONNECTION_ERRORS as exc:
            raise BusUnavailableError(f"cannot reach Redis: {exc}") from exc
        self._pubsub = pubsub
        self._reader = asyncio.create_task(self._read_loop(pubsub), name="redis-bus-reader")
        self._running = True

    async def _shutdown(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        if self._pubsub is not None:
            await aclose(self._pubsub)
            self._pubsub = None
        await aclose(self._client)

    async def publish(self, channel: str, message: Message) -> None:
        self._check_running()
        payload = json.dumps(message, separators=(",", ":"))
        try:
            await self._client.publish(self.prefix + channel, payload)
        except _CONNECTION_ERRORS as exc:
            raise BusUnavailableError(f"cannot publish to Redis: {exc}") from exc

    async def publish_many(self, messages: Iterable[tuple[str, Message]]) -> None:
        self._check_running()
        payloads = [
            (self.prefix + channel, json.dumps(message, separators=(",", ":")))
            for channel, message in messages
        ]
        if not payloads:
            return
        try:
            # One pipelined round trip; Redis runs a connection's commands in order.
            async with self._client.pipeline(transaction=False) as pipe:
                for channel, payload in payloads:
                    pipe.publish(channel, payload)
                await pipe.execute()
        except _CONNECTION_ERRORS as exc:
            raise BusUnavailableError(f"cannot publish to Redis: {exc}") from exc

    def _upstream(self, keys: list[Key]) -> tuple[list[str], list[str]]:
        channels = [self.prefix + name for kind, name in keys if kind == "channel"]
        patterns = [self._pattern_prefix + name for kind, name in keys if kind == "pattern"]
        return channels, patterns

    async def _keys_added(self, keys: list[Key]) -> None:
        if not keys:
            return
        assert self._pubsub is not None
        loop = asyncio.get_running_loop()
        waits = {key: loop.create_future() for key in keys}
        for key, fut in waits.items():
            self._acks.setdefault(key, []).append(fut)
        channels, patterns = self._upstream(keys)
        try:
            if channels:
                await self._pubsub.subscribe(*channels)
            if patterns:
                await self._pubsub.psubscribe(*patterns)
            # Only the server's confirmation guarantees that a message published next (from any
            # connection) reaches us.
            async with asyncio.timeout(self._subscribe_timeout):
                await asyncio.gather(*waits.values())
        except TimeoutError as exc:
            raise BusError(f"Redis did not confirm the subscription to {keys}") from exc
        except _CONNECTION_ERRORS as exc:
            raise BusUnavailableError(f"cannot subscribe on Redis: {exc}") from exc
        finally:
            for key, fut in waits.items():
                self._acks[key].remove(fut)
                if not self._acks[key]:
                    del self._acks[key]

    async def _keys_removed(self, keys: list[Key]) -> None:
        if not keys or self._pubsub is None:
            return
        channels, patterns = self._upstream(keys)
        try:
            if channels:
                await self._pubsub.unsubscribe(*channels)
            if patterns:
                await self._pubsub.punsubscribe(*patterns)
        except _CONNECTION_ERRORS:
            # A stale upstream subscription is harmless: its messages match no local subscriber.
            log.warning("could not unsubscribe from Redis; ignoring", exc_info=True)

    async def _read_loop(self, pubsub: PubSub) -> None:
        delay = self._reconnect_delay
        burst = 0
        while True:
            try:
                # redis-py reconnects and resubscribes inside get_message when it can; when the
                # server stays away it raises and we back off here.
                raw = await pubsub.get_message(timeout=_READ_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.reconnects += 1
                log.warning("Redis bus connection lost; retrying in %.2fs", delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_reconnect_delay)
                continue
            delay = self._reconnect_delay
            if raw is not None:
                self._dispatch(raw)
                burst += 1
                # get_message does not yield while redis-py has buffered data: under a flood
                # the subscribers' consumers would starve. Hand the loop over now and then.
                if burst >= _YIELD_EVERY:
                    burst = 0
                    await asyncio.sleep(0)

    def _dispatch(self, raw: dict[str, Any]) -> None:
        kind = raw["type"]
        if kind in ("subscribe", "psubscribe"):
            self._confirm(kind, _text(raw["channel"]))
            return
        if kind not in ("message", "pmessage"):
            return
        channel = _text(raw["channel"])
        if not channel.startswith(self.prefix):
            return
        name = channel[len(self.prefix) :]
        key: Key
        if kind == "message":
            key = ("channel", name)
        else:
            key = ("pattern", _text(raw["pattern"])[len(self._pattern_prefix) :])
        subs = self._router.owned_by(key, name)
        if not subs:
            return
        try:
            message = json.loads(raw["data"])
        except ValueError:
            log.warning("dropping a non-JSON message on %s", channel)
            return
        if not isinstance(message, dict):
            log.warning("dropping a non-object message on %s", channel)
            return
        for sub in subs:
            sub.offer(name, message)

    def _confirm(self, kind: str, upstream: str) -> None:
        key: Key
        if kind == "subscribe":
            key = ("channel", upstream[len(self.prefix) :])
        else:
            key = ("pattern", upstream[len(self._pattern_prefix) :])
        for fut in self._acks.get(key, ()):
            if not fut.done():
                fut.set_result(None)
