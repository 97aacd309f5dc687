"""The alert service's own logic with an injectable clock and in-memory channels: dedup,
rate limits, the queue bound, retries, isolation of a hung channel, never raising."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

import pytest

from quantdesk.alerts import (
    Alert,
    AlertKind,
    AlertMetrics,
    AlertService,
    BusChannel,
    Channel,
    Delivery,
    Severity,
    TokenBucket,
)
from quantdesk.alerts import format as fmt
from quantdesk.alerts.channels import redact
from quantdesk.bus.memory import MemoryBus


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder(Channel):
    """A channel that keeps what it is given (and can fail a few times, or hang)."""

    def __init__(self, name: str = "rec", *, fail: int = 0, hang: bool = False) -> None:
        self.name = name
        self.sent: list[Delivery] = []
        self.fail = fail
        self.hang = hang
        self.calls = 0

    async def send(self, delivery: Delivery) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.fail > 0:
            self.fail -= 1
            raise RuntimeError("flaky")
        self.sent.append(delivery)


def alert(title: str = "t", key: str | None = None, user_id: int | None = 7) -> Alert:
    return Alert(AlertKind.ORDER_REJECTED, Severity.WARNING, title, user_id=user_id, dedup_key=key)


def suppressed(metrics: AlertMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "quantdesk_alerts_suppressed_total", {"reason": reason}
    )
    return value or 0.0


def service(*channels: Channel, clock: Clock | None = None, **kw: object) -> AlertService:
    return AlertService(list(channels), clock=clock or Clock(), **kw)


async def test_the_same_key_within_the_window_is_sent_once_then_with_a_count() -> None:
    clock, rec = Clock(), Recorder()
    svc = service(rec, clock=clock, dedup_seconds=60)
    await svc.start()
    for _ in range(4):
        svc.notify(alert("halt", key="halt:7"))
    svc.notify(alert("other", key="halt:8"))  # another key is not held back
    clock.advance(59.9)
    svc.notify(alert("halt", key="halt:7"))
    clock.advance(0.2)  # the window (from the last send) has passed
    svc.notify(alert("halt again", key="halt:7"))
    svc.notify(alert("halt again", key="halt:7"))
    assert await svc.flush(2)
    await svc.stop()

    assert [(d.alert.title, d.similar) for d in rec.sent] == [
        ("halt", 0),
        ("other", 0),
        ("halt again", 4),
    ]
    assert suppressed(svc.metrics, "dedup") == 5
    assert "(+4 similar)" in fmt.headline(rec.sent[2])


async def test_without_a_key_the_kind_user_and_title_deduplicate() -> None:
    rec = Recorder()
    svc = service(rec)
    await svc.start()
    svc.notify(alert("a", user_id=1))
    svc.notify(alert("a", user_id=1))
    svc.notify(alert("a", user_id=2))
    svc.notify(alert("b", user_id=1))
    assert await svc.flush(2)
    await svc.stop()
    assert [(d.alert.title, d.alert.user_id) for d in rec.sent] == [("a", 1), ("a", 2), ("b", 1)]


async def test_zero_dedup_seconds_sends_every_alert() -> None:
    rec = Recorder()
    svc = service(rec, dedup_seconds=0)
    await svc.start()
    for _ in range(3):
        svc.notify(alert(key="k"))
    assert await svc.flush(2)
    await svc.stop()
    assert len(rec.sent) == 3


async def test_each_channel_has_a_token_bucket_and_says_what_it_dropped() -> None:
    clock, rec = Clock(), Recorder()
    bus = MemoryBus()
    await bus.start()
    bus_channel = BusChannel(bus)  # not rate limited
    svc = service(rec, bus_channel, clock=clock, rate_per_minute=60, rate_burst=3)
    async with bus.subscribe("user:7:alerts") as sub:
        await svc.start()
        for i in range(10):
            svc.notify(alert(f"a{i}"))
        assert await svc.flush(2)
        clock.advance(1.0)  # one token back
        svc.notify(alert("after"))
        assert await svc.flush(2)
        await svc.stop()
        on_bus = [sub.get_nowait() for _ in range(sub.pending())]
    await bus.close()

    assert [d.alert.title for d in rec.sent] == ["a0", "a1", "a2", "after"]
    # The channel's next message out says how many it dropped since its previous one (here
    # the burst's first: the drops happened before the lane took it from the queue).
    assert [d.dropped for d in rec.sent] == [7, 0, 0, 0]
    assert "(+7 other alerts dropped" in fmt.text(rec.sent[0])
    assert suppressed(svc.metrics, "rate") == 7
    assert len(on_bus) == 11
    sent = svc.metrics.registry.get_sample_value(
        "quantdesk_alerts_sent_total", {"channel": "bus", "kind": "order_rejected"}
    )
    assert sent == 11


def test_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_minute=30, burst=2, clock=clock)
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.advance(1.9)
    assert not bucket.take()
    clock.advance(0.1)
    assert bucket.take()
    clock.advance(3600)
    assert [bucket.take() for _ in range(3)] == [True, True, False]


async def test_the_queue_is_bounded_and_drops_the_oldest() -> None:
    rec = Recorder()
    svc = service(rec, queue_size=3, rate_burst=1000)
    for i in range(8):  # not started: nothing drains the queue
        svc.notify(alert(f"a{i}"))
    assert suppressed(svc.metrics, "queue_full") == 5
    await svc.start()
    assert await svc.flush(2)
    await svc.stop()
    assert [d.alert.title for d in rec.sent] == ["a5", "a6", "a7"]
    assert rec.sent[0].dropped == 5


async def test_a_failing_send_is_retried_with_backoff() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    rec = Recorder(fail=2)
    svc = service(rec, retries=2, backoff=0.25, sleep=sleep)
    await svc.start()
    svc.notify(alert())
    assert await svc.flush(2)
    await svc.stop()
    assert rec.calls == 3 and len(rec.sent) == 1
    assert waits == [0.25, 0.5]
    labels = {"channel": "rec", "kind": "order_rejected"}
    assert svc.metrics.registry.get_sample_value("quantdesk_alerts_sent_total", labels) == 1
    assert svc.metrics.registry.get_sample_value("quantdesk_alerts_failed_total", labels) is None


async def test_a_hung_channel_blocks_neither_notify_nor_the_others() -> None:
    hung, fine = Recorder("hung", hang=True), Recorder("fine")
    svc = service(hung, fine, timeout=0.1, retries=0)
    await svc.start()
    started = time.perf_counter()
    for i in range(3):
        svc.notify(alert(f"a{i}"))
    assert time.perf_counter() - started < 0.01
    await asyncio.sleep(0.02)
    assert [d.alert.title for d in fine.sent] == ["a0", "a1", "a2"]
    assert hung.calls == 1  # still on the first
    assert await svc.flush(2)
    await svc.stop()
    failed = svc.metrics.registry.get_sample_value(
        "quantdesk_alerts_failed_total", {"channel": "hung", "kind": "order_rejected"}
    )
    assert failed == 3


class Store:
    """An in-memory store: ids from 1, or a hang, or a failure."""

    def __init__(self, *, hang: bool = False, fail: bool = False) -> None:
        self.rows: list[Delivery] = []
        self.hang = hang
        self.fail = fail
        self.release = asyncio.Event()
        self.closed = False

    async def add(self, delivery: Delivery) -> int:
        if self.hang:
            await self.release.wait()
        if self.fail:
            raise RuntimeError("database down")
        self.rows.append(delivery)
        return len(self.rows)

    async def aclose(self) -> None:
        self.closed = True


class AfterStore(Recorder):
    after_store = True


async def test_the_store_gets_every_accepted_alert_and_the_bus_its_id() -> None:
    store, bus_like, external = Store(), AfterStore("bus"), Recorder("telegram")
    svc = service(bus_like, external, store=store)
    await svc.start()
    svc.notify(alert("a", key="k"))
    svc.notify(alert("a", key="k"))  # deduplicated: neither stored nor sent
    svc.notify(alert("b"))
    assert await svc.flush(2)
    await svc.stop()
    assert [d.alert.title for d in store.rows] == ["a", "b"]
    assert [(d.alert.title, d.alert_id) for d in bus_like.sent] == [("a", 1), ("b", 2)]
    assert [d.alert_id for d in external.sent] == [None, None]  # never waits for the row
    assert store.closed


async def test_a_hung_store_holds_up_only_the_channels_waiting_for_it() -> None:
    store, bus_like, external = Store(hang=True), AfterStore("bus"), Recorder("telegram")
    svc = service(bus_like, external, store=store, timeout=60)
    await svc.start()
    started = time.perf_counter()
    svc.notify(alert("slow db"))
    assert time.perf_counter() - started < 0.01
    await asyncio.sleep(0.05)
    assert [d.alert.title for d in external.sent] == ["slow db"]
    assert bus_like.sent == []
    store.release.set()
    assert await svc.flush(2)
    assert [d.alert_id for d in bus_like.sent] == [1]
    await svc.stop()


async def test_a_failing_store_is_counted_and_the_alert_still_published() -> None:
    store, bus_like = Store(fail=True), AfterStore("bus")
    svc = service(bus_like, store=store)
    await svc.start()
    svc.notify(alert("unstored"))
    assert await svc.flush(2)
    await svc.stop()
    assert [(d.alert.title, d.alert_id) for d in bus_like.sent] == [("unstored", None)]
    failed = svc.metrics.registry.get_sample_value(
        "quantdesk_alerts_failed_total", {"channel": "inbox", "kind": "order_rejected"}
    )
    assert failed == 1


async def test_stop_cancels_a_hung_delivery_after_the_grace() -> None:
    svc = service(Recorder(hang=True), timeout=60)
    await svc.start()
    svc.notify(alert())
    started = time.perf_counter()
    await svc.stop(grace=0.1)
    assert time.perf_counter() - started < 1
    svc.notify(alert("after stop"))  # ignored, not raised


async def test_notify_never_raises() -> None:
    class Broken(Channel):
        name = "broken"

        def accepts(self, delivery: Delivery) -> bool:
            raise RuntimeError("bug in a channel")

        async def send(self, delivery: Delivery) -> None:
            raise AssertionError

    svc = service(Broken())
    svc.notify(alert())  # logged, not raised


async def test_notify_from_another_thread_is_handed_to_the_loop() -> None:
    rec = Recorder()
    svc = service(rec)
    await svc.start()
    thread = threading.Thread(target=lambda: svc.notify(alert("from a thread")))
    thread.start()
    thread.join()
    for _ in range(50):
        if rec.sent:
            break
        await asyncio.sleep(0.01)
    await svc.stop()
    assert [d.alert.title for d in rec.sent] == ["from a thread"]


async def test_the_bus_channel_publishes_to_the_owners_alerts_stream_only() -> None:
    bus = MemoryBus()
    await bus.start()
    channel = BusChannel(bus)
    assert not channel.accepts(Delivery(alert(user_id=None)))
    async with bus.subscribe(patterns=["user:*"]) as sub:
        ts = datetime(2025, 1, 31, 10, 0, tzinfo=UTC)
        a = Alert(AlertKind.KILL_SWITCH, Severity.CRITICAL, "Kill switch", "all flat", 3, ts=ts)
        await channel.send(Delivery(a, similar=2))
        assert await sub.get(timeout=1) == (
            "user:3:alerts",
            {
                "type": "alert",
                "id": None,  # not stored: the service's store sets it
                "kind": "kill_switch",
                "severity": "critical",
                "title": "Kill switch",
                "body": "all flat",
                "user_id": 3,
                "ts": "2025-01-31T10:00:00Z",
                "similar": 2,
                "data": {},
            },
        )
    await bus.close()


def test_the_text_of_an_alert() -> None:
    ts = datetime(2025, 1, 31, 10, 0, tzinfo=UTC)
    a = Alert(AlertKind.DRAWDOWN, Severity.WARNING, "Big\ndrawdown\r\n", "Equity -12%", 5, ts=ts)
    d = Delivery(a, similar=1, dropped=2)
    assert fmt.headline(d) == "[WARNING] drawdown: Big drawdown (+1 similar)"
    assert fmt.email_subject(d) == "[QuantDesk] [WARNING] drawdown: Big drawdown (+1 similar)"
    assert fmt.text(d) == (
        "[WARNING] drawdown: Big drawdown (+1 similar)\n\nEquity -12%\n\n"
        "user 5 | 2025-01-31T10:00:00Z\n"
        "(+1 similar alert suppressed in the deduplication window)\n"
        "(+2 other alerts dropped by this channel's rate limit)"
    )
    long = Delivery(Alert(AlertKind.MODEL_DRIFT, Severity.INFO, "x" * 500, "y" * 5000))
    assert len(fmt.telegram_text(long)) == fmt.TELEGRAM_MAX_CHARS
    assert len(fmt.email_subject(long)) == fmt.SUBJECT_MAX_CHARS
    system = Delivery(Alert(AlertKind.SYSTEM_ERROR, Severity.ERROR, "boom", ts=ts))
    assert "system | 2025-01-31T10:00:00Z" in fmt.text(system)


def test_redact_masks_every_secret() -> None:
    assert redact("GET /bot123:abc/sendMessage 123:abc", ["123:abc", ""]) == (
        "GET /bot***/sendMessage ***"
    )


@pytest.mark.parametrize("kind", list(AlertKind))
def test_every_kind_has_a_stable_lowercase_value(kind: AlertKind) -> None:
    assert kind.value == kind.name.lower()


async def test_the_dedup_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from quantdesk.alerts import service as service_module

    monkeypatch.setattr(service_module, "MAX_DEDUP_KEYS", 3)
    rec = Recorder()
    svc = service(rec, rate_burst=1000)
    for key in ("a", "b", "c", "d"):  # "a" is forgotten
        svc.notify(alert(key, key=key))
    svc.notify(alert("a", key="a"))  # so it is sent again
    svc.notify(alert("d", key="d"))  # still remembered: suppressed
    await svc.start()
    assert await svc.flush(2)
    await svc.stop()
    assert [d.alert.title for d in rec.sent] == ["a", "b", "c", "d", "a"]


async def test_the_risk_hook_makes_alerts_from_plain_arguments() -> None:
    rec = Recorder()
    svc = service(rec)
    hook = svc.risk_hook()
    await svc.start()
    hook("risk_halt", "Account 7 halted: daily_loss", "Loss over the limit.", 7, "halt:7:dl")
    hook("drawdown", "Account 7 halted: drawdown", "", 7, "halt:7:dd")
    hook("kill_switch", "Kill switch engaged (global)", "Operator", None, "kill:global")
    hook("something_new", "?", "", None, "")
    hook("risk_halt", "Account 7 halted: daily_loss", "again", 7, "halt:7:dl")  # deduplicated
    assert await svc.flush(2)
    await svc.stop()
    assert [(d.alert.kind, d.alert.severity, d.alert.user_id) for d in rec.sent] == [
        (AlertKind.RISK_HALT, Severity.CRITICAL, 7),
        (AlertKind.DRAWDOWN, Severity.CRITICAL, 7),
        (AlertKind.KILL_SWITCH, Severity.CRITICAL, None),
        (AlertKind.SYSTEM_ERROR, Severity.ERROR, None),
    ]
    assert rec.sent[0].alert.dedup_key == "halt:7:dl"
