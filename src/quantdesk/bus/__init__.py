"""Event bus: one interface, an in-process and a Redis implementation."""

from quantdesk.bus.base import (
    BusError,
    BusNotRunningError,
    BusUnavailableError,
    Delivery,
    EventBus,
    Message,
    Subscription,
    SubscriptionClosedError,
)
from quantdesk.bus.factory import create_bus
from quantdesk.bus.memory import MemoryBus
from quantdesk.bus.redis import RedisBus

__all__ = [
    "BusError",
    "BusNotRunningError",
    "BusUnavailableError",
    "Delivery",
    "EventBus",
    "MemoryBus",
    "Message",
    "RedisBus",
    "Subscription",
    "SubscriptionClosedError",
    "create_bus",
]
