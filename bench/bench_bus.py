"""Event bus throughput and publish->deliver latency, against a bare asyncio.Queue fan-out.

    python bench/bench_bus.py [--redis-url redis://127.0.0.1:6379/0] [--subscribers 1 50 500]

One publisher sends M messages on one channel, yielding to the loop after each publish (as a
feed does); N subscribers each read every message. Reported: published messages/s, deliveries/s
(M x N / elapsed), p50/p99 publish->deliver latency over all deliveries, dropped messages, and
deliveries/s as a ratio of the asyncio.Queue reference for the same N. The Redis bus publishes
on one instance and subscribes on another, as two processes would; "RedisBus/b20" publishes
with publish_many in batches of 20 (one pipelined round trip each), as a feed does per tick.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from quantdesk.bus import EventBus, MemoryBus, RedisBus, Subscription

MESSAGES = {1: 20_000, 50: 4_000, 500: 1_000}


@dataclass
class Result:
    impl: str
    subscribers: int
    messages: int
    elapsed: float
    latencies_ns: list[int]
    dropped: int

    @property
    def deliveries_per_s(self) -> float:
        return self.messages * self.subscribers / self.elapsed

    def percentile_us(self, q: float) -> float:
        ordered = sorted(self.latencies_ns)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def message(i: int) -> dict[str, object]:
    return {"i": i, "t": time.perf_counter_ns(), "symbol": "NSE:INFY", "last": "1500.05"}


async def bench_queue(subscribers: int, messages: int) -> Result:
    queues: list[asyncio.Queue[dict[str, object]]] = [asyncio.Queue() for _ in range(subscribers)]
    latencies: list[int] = []

    async def consume(q: asyncio.Queue[dict[str, object]]) -> None:
        for _ in range(messages):
            msg = await q.get()
            latencies.append(time.perf_counter_ns() - msg["t"])  # type: ignore[operator]

    consumers = [asyncio.create_task(consume(q)) for q in queues]
    await asyncio.sleep(0)
    start = time.perf_counter()
    for i in range(messages):
        msg = message(i)
        for q in queues:
            q.put_nowait(msg)
        await asyncio.sleep(0)
    await asyncio.gather(*consumers)
    return Result("asyncio.Queue", subscribers, messages, time.perf_counter() - start, latencies, 0)


async def bench_bus(
    name: str,
    make: Callable[[], Awaitable[tuple[EventBus, EventBus]]],
    subscribers: int,
    messages: int,
    batch: int = 1,
) -> Result:
    publisher, receiver = await make()
    latencies: list[int] = []
    try:
        async with AsyncExitStack() as stack:
            subs = [
                await stack.enter_async_context(
                    receiver.subscribe("quotes:NSE:INFY", queue_size=messages)
                )
                for _ in range(subscribers)
            ]
            elapsed = await _drive(publisher, subs, messages, latencies, batch)
            dropped = sum(s.dropped for s in subs)
    finally:
        await receiver.close()
        if publisher is not receiver:
            await publisher.close()
    return Result(name, subscribers, messages, elapsed, latencies, dropped)


async def _drive(
    publisher: EventBus,
    subs: list[Subscription],
    messages: int,
    latencies: list[int],
    batch: int,
) -> float:
    async def consume(sub: Subscription) -> None:
        received = 0
        async for _, msg in sub:
            latencies.append(time.perf_counter_ns() - msg["t"])
            received += 1
            if received == messages:
                return

    consumers = [asyncio.create_task(consume(sub)) for sub in subs]
    start = time.perf_counter()
    for i in range(0, messages, batch):
        if batch == 1:
            await publisher.publish("quotes:NSE:INFY", message(i))
        else:
            n = min(batch, messages - i)
            await publisher.publish_many(("quotes:NSE:INFY", message(i + k)) for k in range(n))
        await asyncio.sleep(0)
    async with asyncio.timeout(60):
        await asyncio.gather(*consumers)
    return time.perf_counter() - start


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--redis-url", default=os.environ.get("QUANTDESK_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1, 50, 500])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    args = parser.parse_args()

    async def memory() -> tuple[EventBus, EventBus]:
        bus = MemoryBus()
        await bus.start()
        return bus, bus

    async def redis() -> tuple[EventBus, EventBus]:
        prefix = f"qdbench:{uuid.uuid4().hex[:8]}:"
        a, b = RedisBus(args.redis_url, prefix=prefix), RedisBus(args.redis_url, prefix=prefix)
        await a.start()
        await b.start()
        return a, b

    print(
        f"{'implementation':<14} {'subs':>5} {'msgs':>7} {'msg/s':>10} {'deliv/s':>11} "
        f"{'p50 us':>9} {'p99 us':>9} {'drops':>6} {'vs queue':>9}"
    )
    for n in args.subscribers:
        m = max(100, int(MESSAGES.get(n, 1_000) * args.scale))
        runs = [await bench_queue(n, m), await bench_bus("MemoryBus", memory, n, m)]
        if not args.no_redis:
            runs.append(await bench_bus("RedisBus", redis, n, m))
            runs.append(await bench_bus("RedisBus/b20", redis, n, m, batch=20))
        reference = runs[0].deliveries_per_s
        for r in runs:
            print(
                f"{r.impl:<14} {n:>5} {m:>7} {m / r.elapsed:>10,.0f} {r.deliveries_per_s:>11,.0f} "
                f"{r.percentile_us(0.50):>9,.1f} {r.percentile_us(0.99):>9,.1f} {r.dropped:>6} "
                f"{r.deliveries_per_s / reference:>9.2f}"
            )


if __name__ == "__main__":
    asyncio.run(main())
