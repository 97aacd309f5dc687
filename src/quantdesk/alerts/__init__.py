"""Alerts: Telegram, e-mail and the owner's WebSocket stream; deduplicated and rate-limited.

``service.notify(Alert(...))`` is synchronous and never waits or raises; see docs/alerts.md.
"""

from quantdesk.alerts.channels import (
    BusChannel,
    Channel,
    ChannelError,
    EmailChannel,
    RetryAfter,
    TelegramChannel,
)
from quantdesk.alerts.model import Alert, AlertKind, AlertSink, Delivery, Severity
from quantdesk.alerts.service import (
    AlertMetrics,
    AlertService,
    TokenBucket,
    channels_from_settings,
    create_alert_service,
)

__all__ = [
    "Alert",
    "AlertKind",
    "AlertMetrics",
    "AlertService",
    "AlertSink",
    "BusChannel",
    "Channel",
    "ChannelError",
    "Delivery",
    "EmailChannel",
    "RetryAfter",
    "Severity",
    "TelegramChannel",
    "TokenBucket",
    "channels_from_settings",
    "create_alert_service",
]
