"""What an alert is: a kind, a severity, a title and body, an owner and a deduplication key."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol


class AlertKind(StrEnum):
    ORDER_REJECTED = "order_rejected"  # the broker (or the paper venue) refused an order or fill
    ORDER_FAILED = "order_failed"  # an order could not be processed (an error, not a refusal)
    RISK_HALT = "risk_halt"  # a risk limit halted trading
    KILL_SWITCH = "kill_switch"  # the kill switch was engaged or released
    DRAWDOWN = "drawdown"  # a large drawdown
    SYSTEM_ERROR = "system_error"  # an unhandled server error, a failing background task
    MODEL_DRIFT = "model_drift"  # the hook for model monitoring
    TEST = "test"  # `quantdesk alerts test`


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Alert:
    """One alert. ``user_id`` is the account it concerns (``None``: the whole system).

    ``dedup_key`` groups repeats: the same key within the deduplication window is delivered
    once. Without one, the key is ``kind:user_id:title``. ``data`` is extra JSON-able context
    published on the bus (not sent to Telegram or e-mail).
    """

    kind: AlertKind
    severity: Severity
    title: str
    body: str = ""
    user_id: int | None = None
    dedup_key: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def key(self) -> str:
        if self.dedup_key:
            return self.dedup_key
        return f"{self.kind.value}:{self.user_id if self.user_id is not None else '-'}:{self.title}"


class AlertSink(Protocol):
    """Anything alerts can be handed to (the :class:`~quantdesk.alerts.AlertService`)."""

    def notify(self, alert: Alert) -> None: ...


class AlertStore(Protocol):
    """Where accepted alerts are kept for the UI's inbox (:class:`~quantdesk.alerts.inbox.
    AlertInbox`): ``add`` stores one and returns its id, or raises."""

    async def add(self, delivery: Delivery) -> int: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Delivery:
    """An alert as one channel sends it: with the repeats deduplication folded into it
    (``similar``), the alerts the channel's rate limit dropped before it (``dropped``) and, once
    the inbox stored it, its row's id (``alert_id``: the id the UI marks it read by)."""

    alert: Alert
    similar: int = 0
    dropped: int = 0
    alert_id: int | None = None
