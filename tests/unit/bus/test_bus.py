"""Behaviour every event bus must have, run on the in-process bus and on Redis."""

from __future__ import annotations

import asyncio

import pytest

from quantdesk.bus import BusNotRunningError, EventBus, MemoryBus, Subscription
from quantdesk.bus._fanout import FanoutBus

WAIT = 2.0  # seconds; generous so a loaded CI machine does not flake


async def receive(sub: Subscription, n: int) -> list[tuple[str, dict[str, object]]]:
    return [await sub.get(timeout=WAIT) for _ in range(n)]


async def test_subscriber_receives_a_channels_messages_in_publish_order(bus: EventBus) -> None:
    async with bus.subscribe("orders") as sub:
        for i in range(200):
            await bus.publish("orders", {"seq": i})
        got = await receive(sub, 200)
    assert got == [("orders", {"seq": i}) for i in range(200)]


async def test_publish_many_delivers_in_order_across_channels(bus: EventBus) -> None:
    async with bus.subscribe(patterns=["quotes:*"]) as sub:
        batch = [(f"quotes:NSE:S{i % 3}", {"seq": i}) for i in range(30)]
        await bus.publish_many(batch)
        await bus.publish_many([])
        assert await receive(sub, 30) == batch


async def test_pattern_subscription_receives_only_matching_channels(bus: EventBus) -> None:
    async with bus.subscribe(patterns=["quotes:*"]) as sub:
        await bus.publish("quotes:NSE:INFY", {"n": 1})
        await bus.publish("orders", {"n": 2})
        await bus.publish("quotes:NSE:TCS", {"n": 3})
        got = await receive(sub, 2)
        assert sub.get_nowait() is None
    assert got == [("quotes:NSE:INFY", {"n": 1}), ("quotes:NSE:TCS", {"n": 3})]


async def test_message_matching_several_keys_is_delivered_once(bus: EventBus) -> None:
    async with bus.subscribe(
        "quotes:NSE:INFY", "end", patterns=["quotes:*", "quotes:NSE:*"]
    ) as sub:
        await bus.publish("quotes:NSE:INFY", {"n": 1})
        await bus.publish("end", {"n": 2})
        got = await receive(sub, 2)
        await asyncio.sleep(0.05)
        assert sub.get_nowait() is None
    assert got == [("quotes:NSE:INFY", {"n": 1}), ("end", {"n": 2})]


async def test_every_subscriber_gets_every_message(bus: EventBus) -> None:
    async with (
        bus.subscribe("wallet") as a,
        bus.subscribe("wallet") as b,
        bus.subscribe(patterns=["wall*"]) as c,
    ):
        for i in range(10):
            await bus.publish("wallet", {"i": i})
        for sub in (a, b, c):
            assert await receive(sub, 10) == [("wallet", {"i": i}) for i in range(10)]


async def test_messages_published_before_subscribing_are_not_delivered(bus: EventBus) -> None:
    await bus.publish("orders", {"early": True})
    async with bus.subscribe("orders") as sub:
        await bus.publish("orders", {"early": False})
        assert await sub.get(timeout=WAIT) == ("orders", {"early": False})


async def test_leaving_the_subscription_unsubscribes(bus: EventBus) -> None:
    async with bus.subscribe("orders") as stays:
        async with bus.subscribe("orders", patterns=["quotes:*"]) as leaves:
            pass
        assert leaves.closed
        assert [m async for m in leaves] == []
        await bus.publish("orders", {"n": 1})
        assert await stays.get(timeout=WAIT) == ("orders", {"n": 1})
        assert leaves.get_nowait() is None
    assert isinstance(bus, FanoutBus)
    assert bus.subscriber_count() == 0


async def test_slow_subscriber_loses_its_oldest_messages_without_stalling_others(
    bus: EventBus,
) -> None:
    async with (
        bus.subscribe("quotes:NSE:INFY", queue_size=5) as slow,
        bus.subscribe("quotes:NSE:INFY", queue_size=1000) as fast,
    ):
        for i in range(100):
            await bus.publish("quotes:NSE:INFY", {"i": i})
        # The fast subscriber gets everything while the slow one never reads.
        assert [m["i"] for _, m in await receive(fast, 100)] == list(range(100))
        assert slow.dropped == 95
        assert [m["i"] for _, m in await receive(slow, 5)] == [95, 96, 97, 98, 99]


async def test_close_ends_open_subscriptions_and_refuses_further_use(bus: EventBus) -> None:
    async with bus.subscribe("orders") as sub:
        reader = asyncio.create_task(anext(aiter(sub), None))
        await asyncio.sleep(0.01)
        await bus.close()
        assert await asyncio.wait_for(reader, WAIT) is None
        with pytest.raises(BusNotRunningError):
            await bus.publish("orders", {})
        with pytest.raises(BusNotRunningError):
            async with bus.subscribe("orders"):
                pass
    await bus.close()  # idempotent


async def test_subscribing_to_nothing_is_an_error(bus: EventBus) -> None:
    with pytest.raises(ValueError, match="at least one"):
        async with bus.subscribe():
            pass


async def test_a_message_that_is_not_json_is_refused(bus: EventBus) -> None:
    with pytest.raises(TypeError):
        await bus.publish("orders", {"price": object()})


async def test_using_a_bus_before_start_is_an_error() -> None:
    with pytest.raises(BusNotRunningError, match="not started"):
        await MemoryBus().publish("orders", {})


async def test_bus_as_context_manager_runs_inside_the_block_only() -> None:
    async with MemoryBus() as bus:
        assert bus.running
    assert not bus.running
