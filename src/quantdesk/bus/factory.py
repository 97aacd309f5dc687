"""Choose the event bus from settings: Redis when a URL is configured, else in-process."""

from __future__ import annotations

from quantdesk.bus.base import DEFAULT_QUEUE_SIZE, EventBus
from quantdesk.bus.memory import MemoryBus
from quantdesk.bus.redis import RedisBus


def create_bus(
    redis_url: str | None, prefix: str = "qd:", *, queue_size: int = DEFAULT_QUEUE_SIZE
) -> EventBus:
    """A not-yet-started bus: :class:`RedisBus` for ``redis_url``, else :class:`MemoryBus`."""
    if redis_url:
        return RedisBus(redis_url, prefix=prefix, queue_size=queue_size)
    return MemoryBus(queue_size=queue_size)
