"""Login throttling: too many failures for one username or one IP blocks further attempts
for a window. Redis when configured (shared by every API process), in memory otherwise."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis


class LoginThrottle(Protocol):
    async def retry_after(self, keys: list[tuple[str, int]]) -> int:
        """Seconds until an attempt is allowed, 0 when none of the keys is over its limit."""
        ...

    async def fail(self, keys: list[str]) -> None: ...

    async def reset(self, key: str) -> None: ...


class MemoryLoginThrottle:
    def __init__(self, window_seconds: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window_seconds
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _pruned(self, key: str, now: float) -> deque[float] | None:
        q = self._failures.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            # Forget keys with no recent failure: random usernames must not grow memory.
            del self._failures[key]
            return None
        return q

    async def retry_after(self, keys: list[tuple[str, int]]) -> int:
        now = self._clock()
        wait = 0.0
        for key, limit in keys:
            q = self._pruned(key, now)
            if q is not None and len(q) >= limit:
                wait = max(wait, q[len(q) - limit] + self.window - now)
        return int(wait) + 1 if wait > 0 else 0

    async def fail(self, keys: list[str]) -> None:
        now = self._clock()
        for key in keys:
            q = self._pruned(key, now)
            if q is None:
                q = self._failures[key] = deque()
            q.append(now)

    async def reset(self, key: str) -> None:
        self._failures.pop(key, None)


class RedisLoginThrottle:
    """A fixed window per key: INCR, and EXPIRE on the first failure of the window."""

    def __init__(self, redis: Redis, window_seconds: int, prefix: str = "qd:login:") -> None:
        self.redis = redis
        self.window = window_seconds
        self.prefix = prefix

    async def retry_after(self, keys: list[tuple[str, int]]) -> int:
        pipe = self.redis.pipeline()
        for key, _ in keys:
            pipe.get(self.prefix + key)
            pipe.ttl(self.prefix + key)
        res = await pipe.execute()
        wait = 0
        for i, (_, limit) in enumerate(keys):
            count, ttl = res[2 * i], res[2 * i + 1]
            if count is not None and int(count) >= limit:
                wait = max(wait, int(ttl) if ttl and ttl > 0 else self.window)
        return wait

    async def fail(self, keys: list[str]) -> None:
        pipe = self.redis.pipeline()
        for key in keys:
            pipe.incr(self.prefix + key)
            pipe.expire(self.prefix + key, self.window, nx=True)
        await pipe.execute()

    async def reset(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)
