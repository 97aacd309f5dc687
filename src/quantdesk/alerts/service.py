"""The alert service: ``notify()`` never waits; one background lane per channel delivers.

``notify(alert)`` runs synchronously on the caller's stack and only touches memory:

1. **deduplication** -- an alert whose key was delivered less than ``dedup_seconds`` ago is
   suppressed and counted; the first one after the window says ``(+N similar)``;
2. **rate limiting** -- each external channel (Telegram, e-mail) has a token bucket
   (``rate_per_minute`` refill, ``rate_burst`` capacity); an alert finding it empty is dropped
   for that channel and counted, and the channel's next message says how many were dropped;
3. **queueing** -- each channel has its own bounded queue; when it is full the oldest queued
   alert is dropped (and counted) so memory stays bounded while a channel is down.

With a store (the inbox table, ``GET /api/v1/alerts``), every accepted alert is also queued
for it: one background task inserts it (one INSERT, its own timeout, no retries; a failure is
logged and counted, never raised) and then hands it, with the row's id, to the channels that
wait for the row (the bus: the UI marks an alert read by that id). Telegram and e-mail never
wait for the database, and their failures cannot lose the row.

Each lane's task sends with a timeout, retries with exponential backoff (or after Telegram's
``retry_after``), then counts the alert failed and logs it. A slow or failing channel only
ever delays its own lane: not the caller, not the other channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import structlog
from prometheus_client import CollectorRegistry, Counter

from quantdesk.alerts.channels import (
    BusChannel,
    Channel,
    ChannelError,
    EmailChannel,
    RetryAfter,
    TelegramChannel,
    redact,
)
from quantdesk.alerts.inbox import AlertInbox, SessionMaker
from quantdesk.alerts.model import Alert, AlertKind, AlertStore, Delivery, Severity
from quantdesk.bus.base import EventBus
from quantdesk.settings import Settings

log = structlog.get_logger("quantdesk.alerts")

SUPPRESSION_REASONS = ("dedup", "rate", "queue_full")
MAX_DEDUP_KEYS = 10_000
STORE = "inbox"
"""The ``channel`` label of the store in the sent/failed metrics and the logs."""

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
RiskHook = Callable[[str, str, str, int | None, str], None]
"""``(kind, title, body, user_id, dedup_key)``: the callback shape the risk module takes."""

_HOOK_SEVERITY = {
    AlertKind.RISK_HALT: Severity.CRITICAL,
    AlertKind.KILL_SWITCH: Severity.CRITICAL,
    AlertKind.DRAWDOWN: Severity.CRITICAL,
}


class AlertMetrics:
    """The alert counters, registered on an app's registry (one registry per app)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.sent = Counter(
            "quantdesk_alerts_sent_total",
            "Alerts delivered (or stored: channel inbox), by channel and kind.",
            ["channel", "kind"],
            registry=self.registry,
        )
        self.failed = Counter(
            "quantdesk_alerts_failed_total",
            "Alerts a channel failed to deliver after its retries, by channel and kind.",
            ["channel", "kind"],
            registry=self.registry,
        )
        self.suppressed = Counter(
            "quantdesk_alerts_suppressed_total",
            "Alerts (or per-channel deliveries) not sent: dedup, rate or queue_full.",
            ["reason"],
            registry=self.registry,
        )
        for reason in SUPPRESSION_REASONS:
            self.suppressed.labels(reason)


class TokenBucket:
    """``burst`` tokens, refilled at ``rate_per_minute``; ``take()`` never waits."""

    def __init__(self, rate_per_minute: float, burst: int, clock: Clock) -> None:
        self.rate = rate_per_minute / 60.0
        self.capacity = float(max(burst, 1))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()

    def take(self) -> bool:
        now = self.clock()
        elapsed = max(now - self.updated, 0.0)
        self.updated = now
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class _Seen:
    sent_at: float
    suppressed: int = 0


@dataclass
class _Lane:
    channel: Channel
    queue: asyncio.Queue[Delivery]
    bucket: TokenBucket | None
    dropped: int = 0  # dropped (rate limit, full queue) since the last one taken to send
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class AlertService:
    """Deduplicates, rate-limits and delivers alerts on every configured channel."""

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        metrics: AlertMetrics | None = None,
        dedup_seconds: float = 300.0,
        rate_per_minute: float = 20.0,
        rate_burst: int = 10,
        queue_size: int = 100,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.5,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        store: AlertStore | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.metrics = metrics or AlertMetrics()
        self.dedup_seconds = dedup_seconds
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.clock = clock
        self._sleep = sleep
        self._lanes = [
            _Lane(
                channel,
                asyncio.Queue(queue_size),
                TokenBucket(rate_per_minute, rate_burst, clock) if channel.rate_limited else None,
            )
            for channel in channels
        ]
        self.store = store
        self._store_queue: asyncio.Queue[Delivery] = asyncio.Queue(queue_size)
        self._store_task: asyncio.Task[None] | None = None
        self._seen: dict[str, _Seen] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._closed = False

    @property
    def channels(self) -> list[str]:
        """The names of the enabled channels, e.g. ``["bus", "telegram", "email"]``."""
        return [lane.channel.name for lane in self._lanes]

    # --- the caller's side: synchronous, memory only --------------------------------------

    def notify(self, alert: Alert) -> None:
        """Queue ``alert`` for delivery and return at once; never raises, never waits.

        Safe to call from another thread (it is handed to the service's event loop)."""
        try:
            loop = self._loop
            if loop is not None and self._thread != threading.get_ident() and not loop.is_closed():
                loop.call_soon_threadsafe(self._accept, alert)
            else:
                self._accept(alert)
        except Exception as exc:  # an alert must never break the code reporting a problem
            log.error("alert_notify_failed", error=repr(exc))

    def _accept(self, alert: Alert) -> None:
        if self._closed:
            log.warning("alert_after_stop", kind=alert.kind.value, title=alert.title)
            return
        now = self.clock()
        key = alert.key
        seen = self._seen.get(key)
        if seen is not None and now - seen.sent_at < self.dedup_seconds:
            seen.suppressed += 1
            self.metrics.suppressed.labels("dedup").inc()
            return
        similar = seen.suppressed if seen is not None else 0
        self._remember(key, now)
        log.info(
            "alert",
            kind=alert.kind.value,
            severity=alert.severity.value,
            title=alert.title,
            user_id=alert.user_id,
            similar=similar,
        )
        delivery = Delivery(alert, similar)
        if self.store is None:
            self._fan_out(delivery, self._lanes)
            return
        self._queue_for_store(delivery)
        # The others go at once; the store's task hands the alert on to these with its id.
        self._fan_out(delivery, (lane for lane in self._lanes if not lane.channel.after_store))

    def _fan_out(self, delivery: Delivery, lanes: Iterable[_Lane]) -> None:
        for lane in lanes:
            try:
                self._enqueue(lane, delivery)
            except Exception as exc:  # one channel's bug must not cost the others the alert
                log.error("alert_enqueue_failed", channel=lane.channel.name, error=repr(exc))

    def _after_store(self) -> list[_Lane]:
        return [lane for lane in self._lanes if lane.channel.after_store]

    def _queue_for_store(self, delivery: Delivery) -> None:
        try:
            if self._store_queue.full():
                oldest = self._store_queue.get_nowait()
                self._store_queue.task_done()
                self.metrics.suppressed.labels("queue_full").inc()
                log.warning("alert_queue_full", channel=STORE, dropped=oldest.alert.kind.value)
                self._fan_out(oldest, self._after_store())  # unstored, but still shown live
            self._store_queue.put_nowait(delivery)
        except Exception as exc:
            log.error("alert_enqueue_failed", channel=STORE, error=repr(exc))

    def _remember(self, key: str, now: float) -> None:
        self._seen.pop(key, None)
        self._seen[key] = _Seen(now)  # re-inserted: the dict stays ordered by send time
        # Bounded: beyond the cap the least recently sent keys are forgotten (an expired key is
        # kept until then, so its suppressed repeats are still reported when it recurs).
        while len(self._seen) > MAX_DEDUP_KEYS:
            del self._seen[next(iter(self._seen))]

    def _enqueue(self, lane: _Lane, delivery: Delivery) -> None:
        if not lane.channel.accepts(delivery):
            return
        if lane.bucket is not None and not lane.bucket.take():
            lane.dropped += 1
            self.metrics.suppressed.labels("rate").inc()
            return
        if lane.queue.full():
            oldest = lane.queue.get_nowait()
            lane.queue.task_done()
            lane.dropped += 1
            self.metrics.suppressed.labels("queue_full").inc()
            log.warning(
                "alert_queue_full", channel=lane.channel.name, dropped=oldest.alert.kind.value
            )
        lane.queue.put_nowait(delivery)

    def risk_hook(self) -> RiskHook:
        """A plain callback for the risk module: ``hook(kind, title, body, user_id, key)``.

        ``kind`` is an :class:`AlertKind` value (an unknown one is a ``system_error``); halts,
        kill switches and drawdowns are critical."""

        def hook(kind: str, title: str, body: str, user_id: int | None, key: str) -> None:
            try:
                alert_kind = AlertKind(kind)
            except ValueError:
                alert_kind = AlertKind.SYSTEM_ERROR
            severity = _HOOK_SEVERITY.get(alert_kind, Severity.ERROR)
            self.notify(Alert(alert_kind, severity, title, body, user_id, dedup_key=key or None))

        return hook

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start one delivery task per channel; idempotent."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        if self.store is not None and self._store_task is None:
            self._store_task = asyncio.create_task(
                self._run_store(self.store), name=f"alerts-{STORE}"
            )
        for lane in self._lanes:
            if lane.task is None:
                lane.task = asyncio.create_task(self._run(lane), name=f"alerts-{lane.channel.name}")
        log.info("alerts_started", channels=self.channels, stored=self.store is not None)

    async def flush(self, timeout: float = 10.0) -> bool:  # noqa: ASYNC109
        """Wait until every queued alert was delivered or failed; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._store_queue.join()  # first: it feeds the lanes after it
                for lane in self._lanes:
                    await lane.queue.join()
        except TimeoutError:
            return False
        return True

    async def stop(self, grace: float = 2.0) -> None:
        """Give the queued alerts ``grace`` seconds, then stop the tasks and close channels."""
        if self._closed:
            return
        if self._store_task is not None or any(lane.task is not None for lane in self._lanes):
            await self.flush(grace)
        self._closed = True
        if self._store_task is not None:
            self._store_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._store_task
            self._store_task = None
        if self.store is not None:
            try:
                await self.store.aclose()
            except Exception as exc:
                log.warning("alert_channel_close_failed", channel=STORE, error=repr(exc))
        for lane in self._lanes:
            if lane.task is not None:
                lane.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lane.task
                lane.task = None
        for lane in self._lanes:
            try:
                await lane.channel.aclose()
            except Exception as exc:
                log.warning(
                    "alert_channel_close_failed", channel=lane.channel.name, error=repr(exc)
                )

    # --- the store and the lanes ---------------------------------------------------------

    async def _run_store(self, store: AlertStore) -> None:
        while True:
            delivery = await self._store_queue.get()
            try:
                alert_id = await self._store_one(store, delivery)
                self._fan_out(replace(delivery, alert_id=alert_id), self._after_store())
            except Exception as exc:  # _store_one handles its errors; this is a bug guard
                log.error("alert_lane_error", channel=STORE, error=repr(exc))
            finally:
                self._store_queue.task_done()

    async def _store_one(self, store: AlertStore, delivery: Delivery) -> int | None:
        """The row's id, or None when it could not be stored (logged and counted)."""
        kind = delivery.alert.kind.value
        try:
            async with asyncio.timeout(self.timeout):
                alert_id = await store.add(delivery)
        except Exception as exc:
            self.metrics.failed.labels(STORE, kind).inc()
            log.warning(
                "alert_store_failed",
                kind=kind,
                user_id=delivery.alert.user_id,
                error=self._describe_store_error(exc),
            )
            return None
        self.metrics.sent.labels(STORE, kind).inc()
        return alert_id

    def _describe_store_error(self, exc: Exception) -> str:
        if isinstance(exc, TimeoutError):
            return f"timed out after {self.timeout:g} s"
        # A driver's message can run to the whole statement and its parameters: its first line.
        first = next(iter(str(exc).splitlines()), "")
        return f"{type(exc).__name__}: {first[:300]}"

    async def _run(self, lane: _Lane) -> None:
        while True:
            queued = await lane.queue.get()
            # The next message out says how many this channel dropped since the last one.
            delivery = replace(queued, dropped=lane.dropped)
            lane.dropped = 0
            try:
                await self.deliver(lane.channel, delivery)
            except Exception as exc:  # deliver() handles its errors; this is a bug guard
                log.error("alert_lane_error", channel=lane.channel.name, error=repr(exc))
            finally:
                lane.queue.task_done()

    async def deliver(self, channel: Channel, delivery: Delivery) -> bool:
        """Send with a timeout and retries; count and log the outcome. True when sent."""
        kind = delivery.alert.kind.value
        attempt = 0
        while True:
            try:
                async with asyncio.timeout(self.timeout):
                    await channel.send(delivery)
            except Exception as exc:
                error = self._describe(channel, exc)
                if attempt >= self.retries:
                    self.metrics.failed.labels(channel.name, kind).inc()
                    log.warning(
                        "alert_delivery_failed",
                        channel=channel.name,
                        kind=kind,
                        attempts=attempt + 1,
                        error=error,
                    )
                    return False
                wait = exc.seconds if isinstance(exc, RetryAfter) else self.backoff * 2**attempt
                attempt += 1
                log.info(
                    "alert_delivery_retry",
                    channel=channel.name,
                    kind=kind,
                    attempt=attempt,
                    wait_seconds=wait,
                    error=error,
                )
                await self._sleep(wait)
            else:
                self.metrics.sent.labels(channel.name, kind).inc()
                return True

    def _describe(self, channel: Channel, exc: Exception) -> str:
        if isinstance(exc, TimeoutError):
            return f"timed out after {self.timeout:g} s"
        if isinstance(exc, ChannelError):
            return redact(str(exc), channel.secrets())
        return redact(f"{type(exc).__name__}: {exc}", channel.secrets())


def channels_from_settings(settings: Settings, bus: EventBus | None = None) -> list[Channel]:
    """The channels the environment configures: a half-configured one is logged and left off
    (a missing alert setting must not stop trading from starting)."""
    channels: list[Channel] = []
    if bus is not None:
        channels.append(BusChannel(bus))
    token = settings.alert_telegram_bot_token
    chat = settings.alert_telegram_chat_id
    if token is not None and chat:
        channels.append(
            TelegramChannel(
                token.get_secret_value(),
                chat,
                api_url=settings.alert_telegram_api_url,
                timeout=settings.alert_timeout_seconds,
            )
        )
    elif token is not None or chat:
        log.warning(
            "alert_channel_incomplete",
            channel="telegram",
            missing="QUANTDESK_ALERT_TELEGRAM_CHAT_ID"
            if token is not None
            else "QUANTDESK_ALERT_TELEGRAM_BOT_TOKEN",
        )
    recipients = [r.strip() for r in (settings.alert_smtp_to or "").split(",") if r.strip()]
    if settings.alert_smtp_host and recipients:
        password = settings.alert_smtp_password
        channels.append(
            EmailChannel(
                settings.alert_smtp_host,
                settings.alert_smtp_port,
                settings.alert_smtp_from,
                recipients,
                username=settings.alert_smtp_username,
                password=password.get_secret_value() if password is not None else None,
                security=settings.alert_smtp_security.value,
                timeout=settings.alert_timeout_seconds,
            )
        )
    elif settings.alert_smtp_host or recipients:
        log.warning(
            "alert_channel_incomplete",
            channel="email",
            missing="QUANTDESK_ALERT_SMTP_TO"
            if settings.alert_smtp_host
            else "QUANTDESK_ALERT_SMTP_HOST",
        )
    return channels


def create_alert_service(
    settings: Settings,
    *,
    bus: EventBus | None = None,
    metrics: AlertMetrics | None = None,
    clock: Clock = time.monotonic,
    sessionmaker: SessionMaker | None = None,
) -> AlertService:
    """The service for these settings (not started: ``await service.start()``). With a
    ``sessionmaker``, accepted alerts are also stored in the inbox table."""
    store = (
        AlertInbox(sessionmaker, retention_days=settings.alert_inbox_retention_days)
        if sessionmaker is not None
        else None
    )
    return AlertService(
        channels_from_settings(settings, bus),
        metrics=metrics,
        dedup_seconds=settings.alert_dedup_seconds,
        rate_per_minute=settings.alert_rate_per_minute,
        rate_burst=settings.alert_rate_burst,
        queue_size=settings.alert_queue_size,
        timeout=settings.alert_timeout_seconds,
        clock=clock,
        store=store,
    )
