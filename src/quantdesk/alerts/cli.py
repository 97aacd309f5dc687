"""``quantdesk alerts test``: send one test alert on every configured channel."""

from __future__ import annotations

import asyncio
import uuid

from prometheus_client import CollectorRegistry

from quantdesk.alerts.model import Alert, AlertKind, Severity
from quantdesk.alerts.service import AlertMetrics, create_alert_service
from quantdesk.settings import Settings


def send_test_alert(settings: Settings, message: str) -> dict[str, bool] | None:
    """Send a test alert through Telegram and e-mail (no bus: there is no app here).

    Returns each channel's outcome (True: delivered), or None when no channel is configured.
    """
    metrics = AlertMetrics(CollectorRegistry())
    service = create_alert_service(settings, metrics=metrics)
    if not service.channels:
        return None
    alert = Alert(
        AlertKind.TEST,
        Severity.INFO,
        "Test alert",
        message,
        dedup_key=f"test:{uuid.uuid4().hex}",
    )
    # Enough for every attempt of every channel (they run side by side) and their backoff.
    budget = settings.alert_timeout_seconds * (service.retries + 1) + 2 * service.backoff * 4

    async def run() -> None:
        await service.start()
        service.notify(alert)
        await service.flush(budget + 5)
        await service.stop(grace=0)

    asyncio.run(run())
    outcome = {}
    for name in service.channels:
        sent = metrics.registry.get_sample_value(
            "quantdesk_alerts_sent_total", {"channel": name, "kind": AlertKind.TEST.value}
        )
        outcome[name] = bool(sent)
    return outcome
