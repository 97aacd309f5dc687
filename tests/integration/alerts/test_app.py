"""The alert service inside the app: /metrics, the 500 path, the paper engine and the bus."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from quantdesk.alerts import Alert, AlertKind, AlertService, Severity
from quantdesk.api import create_app
from quantdesk.bus.base import EventBus
from tests.conftest import client_for, make_settings
from tests.integration.alerts.conftest import BOT_TOKEN, BotApi, SmtpServer


@pytest.fixture
async def app(
    sqlite_database: str, tmp_path: Path, bot_api: BotApi, smtp_server: SmtpServer
) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        sqlite_database,
        tmp_path,
        alert_telegram_bot_token=BOT_TOKEN,
        alert_telegram_chat_id="42",
        alert_telegram_api_url=bot_api.base_url,
        alert_smtp_host=smtp_server.host,
        alert_smtp_port=smtp_server.port,
        alert_smtp_to="ops@desk.test",
        alert_smtp_security="none",
        alert_timeout_seconds=2,
    )
    application = create_app(settings)

    @application.get("/api/v1/_test/alerts-boom")
    async def boom() -> None:
        raise RuntimeError("boom with secret-ish detail")

    async with application.router.lifespan_context(application):
        yield application


def service_of(app: FastAPI) -> AlertService:
    service = app.state.qd.extras["alerts"]
    assert isinstance(service, AlertService)
    return service


async def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_alert_metrics_are_on_the_apps_metrics_endpoint(
    app: FastAPI, bot_api: BotApi
) -> None:
    service = service_of(app)
    assert service.channels == ["bus", "telegram", "email"]
    bot_api.script = [(500, {"ok": False, "description": "down"})] * 3  # one alert fails
    service.retries, service.backoff = 2, 0.01
    halt = Alert(AlertKind.RISK_HALT, Severity.CRITICAL, "halted", user_id=7, dedup_key="h:7")
    service.notify(halt)
    service.notify(halt)  # deduplicated
    assert await service.flush(5)
    service.notify(Alert(AlertKind.KILL_SWITCH, Severity.CRITICAL, "kill switch on", user_id=7))
    assert await service.flush(5)

    async with client_for(app) as c:
        text = (await c.get("/metrics")).text
    assert 'quantdesk_alerts_failed_total{channel="telegram",kind="risk_halt"} 1.0' in text
    assert 'quantdesk_alerts_sent_total{channel="email",kind="risk_halt"} 1.0' in text
    assert 'quantdesk_alerts_sent_total{channel="bus",kind="risk_halt"} 1.0' in text
    assert 'quantdesk_alerts_sent_total{channel="telegram",kind="kill_switch"} 1.0' in text
    assert 'quantdesk_alerts_suppressed_total{reason="dedup"} 1.0' in text
    assert 'quantdesk_alerts_suppressed_total{reason="rate"} 0.0' in text
    assert 'quantdesk_alerts_suppressed_total{reason="queue_full"} 0.0' in text


async def test_an_unhandled_server_error_raises_a_system_alert(
    app: FastAPI, bot_api: BotApi, smtp_server: SmtpServer
) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        r = await c.get("/api/v1/_test/alerts-boom", headers={"X-Request-ID": "rid-77"})
        assert r.status_code == 500
        r = await c.get("/api/v1/_test/alerts-boom")  # the same failure: deduplicated
        assert r.status_code == 500
    assert await service_of(app).flush(5)

    [req] = bot_api.requests
    text = req.json["text"]
    assert "[ERROR] system_error: Unhandled server error: RuntimeError" in text
    assert "GET /api/v1/_test/alerts-boom (request id rid-77)" in text
    assert "secret-ish" not in text  # the exception's text stays in the log
    [mail] = smtp_server.received
    assert mail.message["Subject"].endswith("system_error: Unhandled server error: RuntimeError")


async def test_the_paper_engine_alerts_a_failing_message(app: FastAPI, bot_api: BotApi) -> None:
    paper = app.state.qd.extras["paper_broker"]
    assert paper.alerts is service_of(app)
    bus: EventBus = app.state.qd.extras["bus"]
    # A quote the engine cannot read: logged as paper_broker_message_failed, and alerted.
    # (The engine subscribed at start: messages queue while it loads its book.)
    for _ in range(3):
        await bus.publish("quotes:NSE:BROKEN", {"not": "a quote"})
    await wait_for(lambda: len(bot_api.requests) >= 1)
    assert await service_of(app).flush(5)
    [req] = bot_api.requests  # three failures, one alert
    assert "system_error: Paper engine: a bus message failed" in req.json["text"]
    assert "quotes: " in req.json["text"]


async def test_a_users_alert_is_published_on_their_alerts_stream(app: FastAPI) -> None:
    bus: EventBus = app.state.qd.extras["bus"]
    service = service_of(app)
    async with bus.subscribe("user:7:alerts", "user:8:alerts") as sub:
        service.notify(
            Alert(
                AlertKind.DRAWDOWN,
                Severity.WARNING,
                "Drawdown 12%",
                "Equity fell 12% from its peak.",
                user_id=7,
                data={"drawdown": "0.12"},
            )
        )
        service.notify(Alert(AlertKind.SYSTEM_ERROR, Severity.ERROR, "no owner"))
        channel, message = await sub.get(timeout=5)
        assert channel == "user:7:alerts"
        assert message["type"] == "alert"
        assert message["kind"] == "drawdown"
        assert message["severity"] == "warning"
        assert message["title"] == "Drawdown 12%"
        assert message["user_id"] == 7
        assert message["data"] == {"drawdown": "0.12"}
        assert message["similar"] == 0
        assert await service.flush(5)
        assert sub.pending() == 0  # the system alert has no owner's stream
