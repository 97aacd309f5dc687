"""Bus fixtures: every behavioural test runs on the in-process bus and on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from quantdesk.bus import EventBus, MemoryBus, RedisBus

BusFactory = Callable[..., Awaitable[EventBus]]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """Start buses of one kind; Redis buses made by one test share its unique prefix."""
    buses: list[EventBus] = []
    prefix = request.getfixturevalue("redis_prefix") if request.param == "redis" else ""

    async def factory(**kwargs: object) -> EventBus:
        bus: EventBus
        if request.param == "memory":
            bus = MemoryBus(**kwargs)  # type: ignore[arg-type]
        else:
            url = request.getfixturevalue("redis_url")
            bus = RedisBus(url, prefix=prefix, **kwargs)
        await bus.start()
        buses.append(bus)
        return bus

    yield factory
    for bus in buses:
        await bus.close()


@pytest.fixture
async def bus(make_bus: BusFactory) -> EventBus:
    return await make_bus()
