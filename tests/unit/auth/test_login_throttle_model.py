"""MemoryLoginThrottle against a reference model, over random fail/reset/check/wait sequences.

The throttle takes an injected clock; the test drives a fake one.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.auth.throttle import MemoryLoginThrottle

KEYS = ["user:alice", "user:bob", "ip:10.0.0.1", "ip:10.0.0.2"]


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Model:
    """The rule, stated plainly: a key is blocked while it has at least ``limit`` failures in
    the last ``window`` seconds; a reset forgets the key's failures."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.failures: dict[str, list[float]] = defaultdict(list)

    def recent(self, key: str, now: float) -> list[float]:
        return [t for t in self.failures[key] if t > now - self.window]

    def blocked(self, keys: list[tuple[str, int]], now: float) -> bool:
        return any(len(self.recent(k, now)) >= limit for k, limit in keys)

    def wait(self, keys: list[tuple[str, int]], now: float) -> float:
        """Exact seconds until no key is blocked (no new failures meanwhile)."""
        w = 0.0
        for k, limit in keys:
            r = sorted(self.recent(k, now))
            if len(r) >= limit:
                # Unblocked once all but limit-1 of them have left the window.
                w = max(w, r[len(r) - limit] + self.window - now)
        return w


check_keys = st.lists(
    st.tuples(st.sampled_from(KEYS), st.integers(1, 4)),
    min_size=1,
    max_size=3,
    unique_by=lambda t: t[0],
)
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("fail"), st.lists(st.sampled_from(KEYS), min_size=1, max_size=2, unique=True)
        ),
        st.tuples(st.just("reset"), st.sampled_from(KEYS)),
        st.tuples(st.just("check"), check_keys),
        st.tuples(st.just("wait"), st.floats(0, 40, allow_nan=False) | st.integers(0, 40)),
    ),
    max_size=60,
)


async def _run(window: int, ops: list[tuple[str, object]]) -> None:
    clock = FakeTime()
    model = Model(window)
    t = MemoryLoginThrottle(window, clock=clock.monotonic)
    for op, arg in ops:
        if op == "fail":
            await t.fail(arg)  # type: ignore[arg-type]
            for k in arg:  # type: ignore[attr-defined]
                model.failures[k].append(clock.now)
        elif op == "reset":
            await t.reset(arg)  # type: ignore[arg-type]
            model.failures.pop(arg, None)  # type: ignore[call-overload]
        elif op == "wait":
            clock.now += float(arg)  # type: ignore[arg-type]
        else:
            keys: list[tuple[str, int]] = arg  # type: ignore[assignment]
            got = await t.retry_after(keys)
            exact = model.wait(keys, clock.now)
            assert (got > 0) == model.blocked(keys, clock.now), (got, exact)
            if got:
                # A whole number of seconds that is never too early, and late by < 1 s.
                assert got - 1 <= exact <= got, (got, exact)
                # (A microsecond past: the fake clock's float sums round differently from the
                # model's subtraction by an ulp; the throttle's unit is whole seconds.)
                assert not model.blocked(keys, clock.now + got + 1e-6)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 30), steps)
def test_memory_throttle_matches_the_reference_model(
    window: int, ops: list[tuple[str, object]]
) -> None:
    asyncio.run(_run(window, ops))


def test_checking_unknown_keys_does_not_grow_memory() -> None:
    async def run() -> int:
        t = MemoryLoginThrottle(60)
        for i in range(1000):
            await t.retry_after([(f"user:random{i}", 5)])
        return len(t._failures)

    assert asyncio.run(run()) == 0
