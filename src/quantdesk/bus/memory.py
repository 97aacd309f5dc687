"""In-process event bus: the embedded default when no Redis is configured."""

from __future__ import annotations

import json

from quantdesk.bus._fanout import FanoutBus
from quantdesk.bus.base import DEFAULT_QUEUE_SIZE, Message


class MemoryBus(FanoutBus):
    """Fans each message out to the matching subscribers' queues, synchronously.

    Subscribers of one process share the published dict, so treat messages as read-only.
    """

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE, check_json: bool = True) -> None:
        super().__init__(queue_size=queue_size)
        # Checking that messages serialise catches a Decimal or datetime in a message here,
        # in tests and the embedded mode, instead of first in production on the Redis bus.
        self._check_json = check_json

    async def start(self) -> None:
        if self._closed:
            self._check_running()
        self._running = True

    async def _shutdown(self) -> None:
        return None

    async def publish(self, channel: str, message: Message) -> None:
        self._check_running()
        if self._check_json:
            json.dumps(message)
        for sub in self._router.matching(channel):
            sub.offer(channel, message)
