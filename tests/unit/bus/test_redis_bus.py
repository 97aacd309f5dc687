"""What only the Redis bus does: cross-process delivery, prefixes, reconnecting."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from quantdesk.bus import BusUnavailableError, RedisBus, create_bus
from quantdesk.bus.memory import MemoryBus

pytestmark = pytest.mark.redis


async def test_message_published_by_one_process_reaches_another(
    redis_url: str, redis_prefix: str
) -> None:
    async with (
        RedisBus(redis_url, prefix=redis_prefix) as api_1,
        RedisBus(redis_url, prefix=redis_prefix) as api_2,
        api_2.subscribe(patterns=["quotes:*"]) as sub,
    ):
        await api_1.publish("quotes:NSE:INFY", {"last": "1500.05"})
        assert await sub.get(timeout=2) == ("quotes:NSE:INFY", {"last": "1500.05"})


async def test_prefix_keeps_deployments_apart(redis_url: str, redis_prefix: str) -> None:
    async with (
        RedisBus(redis_url, prefix=redis_prefix + "a:") as a,
        RedisBus(redis_url, prefix=redis_prefix + "b:") as b,
        b.subscribe("orders", patterns=["*"]) as sub,
    ):
        await a.publish("orders", {"from": "a"})
        await b.publish("orders", {"from": "b"})
        assert await sub.get(timeout=2) == ("orders", {"from": "b"})
        await asyncio.sleep(0.05)
        assert sub.get_nowait() is None


async def test_glob_characters_in_the_prefix_match_only_themselves(
    redis_url: str, redis_prefix: str
) -> None:
    async with (
        RedisBus(redis_url, prefix=redis_prefix + "[x]*:") as odd,
        RedisBus(redis_url, prefix=redis_prefix + "x-other:") as other,
        odd.subscribe(patterns=["quotes:*"]) as sub,
    ):
        await other.publish("quotes:NSE:INFY", {"from": "other"})
        await odd.publish("quotes:NSE:INFY", {"from": "odd"})
        assert await sub.get(timeout=2) == ("quotes:NSE:INFY", {"from": "odd"})
        await asyncio.sleep(0.05)
        assert sub.get_nowait() is None


async def test_unsubscribing_releases_the_redis_subscription(
    redis_url: str, redis_prefix: str
) -> None:
    admin = Redis.from_url(redis_url, decode_responses=True)
    try:
        async with RedisBus(redis_url, prefix=redis_prefix) as bus:
            async with bus.subscribe("orders"), bus.subscribe("orders"):
                assert await admin.pubsub_numsub(redis_prefix + "orders") == [
                    (redis_prefix + "orders", 1)
                ]
            await asyncio.sleep(0.05)
            assert await admin.pubsub_numsub(redis_prefix + "orders") == [
                (redis_prefix + "orders", 0)
            ]
    finally:
        await admin.aclose()


async def test_bus_resubscribes_after_losing_its_connection(
    redis_url: str, redis_prefix: str
) -> None:
    name = f"qdtest-{uuid.uuid4().hex[:8]}"
    admin = Redis.from_url(redis_url, decode_responses=True)
    try:
        async with (
            RedisBus(redis_url, prefix=redis_prefix, client_name=name) as bus,
            bus.subscribe("orders", patterns=["quotes:*"]) as sub,
        ):
            killed = 0
            for conn in await admin.client_list():
                if conn["name"] == name and "P" in conn["flags"]:
                    await admin.client_kill_filter(_id=conn["id"])
                    killed += 1
            assert killed == 1
            # Messages sent while the bus is reconnecting are lost (pub/sub); keep sending.
            got: set[str] = set()
            async with asyncio.timeout(5):
                while got != {"orders", "quotes:NSE:INFY"}:
                    await bus.publish("orders", {})
                    await bus.publish("quotes:NSE:INFY", {})
                    await asyncio.sleep(0.02)
                    while (delivery := sub.get_nowait()) is not None:
                        got.add(delivery[0])
    finally:
        await admin.aclose()


async def test_start_fails_fast_when_redis_is_unreachable() -> None:
    bus = RedisBus("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    with pytest.raises(BusUnavailableError):
        await bus.start()
    await bus.close()


def test_factory_picks_redis_for_a_url_and_memory_otherwise(redis_url: str) -> None:
    assert isinstance(create_bus(redis_url, prefix="x:"), RedisBus)
    assert isinstance(create_bus(None), MemoryBus)
    assert isinstance(create_bus(""), MemoryBus)
