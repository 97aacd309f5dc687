"""The channels against real servers: the e-mail that arrives at an SMTP server and the HTTP
requests that arrive at a stand-in for the Telegram Bot API."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import structlog

from quantdesk.alerts import (
    Alert,
    AlertKind,
    AlertMetrics,
    AlertService,
    EmailChannel,
    Severity,
    TelegramChannel,
    channels_from_settings,
)
from quantdesk.settings import Settings
from tests.integration.alerts.conftest import (
    BOT_TOKEN,
    SMTP_PASSWORD,
    SMTP_USER,
    BotApi,
    SmtpServer,
)

HALT = Alert(
    kind=AlertKind.RISK_HALT,
    severity=Severity.CRITICAL,
    title="Daily loss limit hit",
    body="Trading halted for user 7: loss 52,000 > limit 50,000.",
    user_id=7,
    dedup_key="halt:7:daily_loss",
)


def telegram(bot_api: BotApi, timeout: float = 2.0) -> TelegramChannel:
    return TelegramChannel(BOT_TOKEN, "-100777", api_url=bot_api.base_url, timeout=timeout)


def email(smtp: SmtpServer, **kw: object) -> EmailChannel:
    return EmailChannel(
        smtp.host,
        smtp.port,
        "QuantDesk <quantdesk@desk.test>",
        ["ops@desk.test", "risk@desk.test"],
        security="none",
        **kw,  # type: ignore[arg-type]
    )


class Sleeps:
    """An injectable sleep that records the waits and yields without waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


def sample(metrics: AlertMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def run(service: AlertService, *alerts: Alert) -> None:
    await service.start()
    try:
        for alert in alerts:
            service.notify(alert)
        assert await service.flush(5)
    finally:
        await service.stop(grace=0)


async def test_telegram_sends_the_real_bot_api_request(bot_api: BotApi) -> None:
    metrics = AlertMetrics()
    await run(AlertService([telegram(bot_api)], metrics=metrics), HALT)

    [req] = bot_api.requests
    assert req.path == f"/bot{BOT_TOKEN}/sendMessage"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json["chat_id"] == "-100777"
    text = req.json["text"]
    assert "[CRITICAL] risk_halt: Daily loss limit hit" in text
    assert "loss 52,000 > limit 50,000" in text
    assert "user 7" in text
    assert sample(metrics, "quantdesk_alerts_sent_total", channel="telegram", kind="risk_halt") == 1


async def test_email_arrives_with_subject_sender_recipients_and_body(
    smtp_server: SmtpServer,
) -> None:
    metrics = AlertMetrics()
    await run(AlertService([email(smtp_server)], metrics=metrics), HALT)

    [mail] = smtp_server.received
    assert mail.mail_from == "quantdesk@desk.test"
    assert mail.rcpt_tos == ["ops@desk.test", "risk@desk.test"]
    msg = mail.message
    assert msg["Subject"] == "[QuantDesk] [CRITICAL] risk_halt: Daily loss limit hit"
    assert msg["From"] == "QuantDesk <quantdesk@desk.test>"
    assert msg["To"] == "ops@desk.test, risk@desk.test"
    assert msg["X-QuantDesk-Alert-Kind"] == "risk_halt"
    body = msg.get_body(("plain",))
    assert body is not None
    content = body.get_content()
    assert "Trading halted for user 7: loss 52,000 > limit 50,000." in content
    assert "user 7 |" in content
    assert mail.login is None
    assert sample(metrics, "quantdesk_alerts_sent_total", channel="email", kind="risk_halt") == 1


async def test_email_logs_in_and_a_wrong_password_fails_without_leaking_it(
    smtp_server: SmtpServer,
) -> None:
    metrics = AlertMetrics()
    good = email(smtp_server, username=SMTP_USER, password=SMTP_PASSWORD)
    await run(AlertService([good], metrics=metrics), HALT)
    assert [m.login for m in smtp_server.received] == [SMTP_USER]

    wrong = "wrong-pa55-SeCrEt"
    bad = email(smtp_server, username=SMTP_USER, password=wrong)
    metrics = AlertMetrics()
    with structlog.testing.capture_logs() as logs:
        await run(AlertService([bad], metrics=metrics, retries=1, backoff=0.01), HALT)
    assert len(smtp_server.received) == 1
    assert sample(metrics, "quantdesk_alerts_failed_total", channel="email", kind="risk_halt") == 1
    [failed] = [e for e in logs if e["event"] == "alert_delivery_failed"]
    assert failed["channel"] == "email" and "SMTPAuthenticationError" in failed["error"]
    assert wrong not in repr(logs) and SMTP_PASSWORD not in repr(logs)


async def test_a_500_is_retried_then_counted_failed_and_email_still_delivers(
    bot_api: BotApi, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    bot_api.default = (500, {"ok": False, "description": "Internal Server Error"})
    metrics = AlertMetrics()
    sleeps = Sleeps()
    service = AlertService(
        [telegram(bot_api), email(smtp_server)], metrics=metrics, retries=2, sleep=sleeps
    )
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as logs:
        await run(service, HALT)

    assert len(bot_api.requests) == 3  # the first try and two retries
    assert sleeps.waits == [0.5, 1.0]  # exponential backoff
    assert (
        sample(metrics, "quantdesk_alerts_failed_total", channel="telegram", kind="risk_halt") == 1
    )
    assert sample(metrics, "quantdesk_alerts_sent_total", channel="telegram", kind="risk_halt") == 0
    assert sample(metrics, "quantdesk_alerts_sent_total", channel="email", kind="risk_halt") == 1
    assert len(smtp_server.received) == 1
    [failed] = [e for e in logs if e["event"] == "alert_delivery_failed"]
    assert failed["error"] == "HTTP 500 from the Bot API: Internal Server Error"
    assert failed["attempts"] == 3
    # The bot token is in every request URL: neither our logs nor httpx's may show it.
    assert BOT_TOKEN not in repr(logs)
    assert caplog.records, "httpx logs its requests at INFO"
    assert all(BOT_TOKEN not in r.getMessage() for r in caplog.records)
    assert any("/bot***/sendMessage" in r.getMessage() for r in caplog.records)


async def test_a_429_is_retried_after_the_bot_apis_retry_after(bot_api: BotApi) -> None:
    bot_api.script = [
        (
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 3",
                "parameters": {"retry_after": 3},
            },
        )
    ]
    metrics = AlertMetrics()
    sleeps = Sleeps()
    await run(AlertService([telegram(bot_api)], metrics=metrics, sleep=sleeps), HALT)

    assert len(bot_api.requests) == 2
    assert sleeps.waits == [3.0]
    assert bot_api.requests[0].json == bot_api.requests[1].json
    assert sample(metrics, "quantdesk_alerts_sent_total", channel="telegram", kind="risk_halt") == 1
    assert (
        sample(metrics, "quantdesk_alerts_failed_total", channel="telegram", kind="risk_halt") == 0
    )


async def test_ok_false_with_a_200_is_a_failure(bot_api: BotApi) -> None:
    bot_api.default = (200, {"ok": False, "description": "Bad Request: chat not found"})
    metrics = AlertMetrics()
    with structlog.testing.capture_logs() as logs:
        await run(AlertService([telegram(bot_api)], metrics=metrics, retries=0), HALT)
    assert (
        sample(metrics, "quantdesk_alerts_failed_total", channel="telegram", kind="risk_halt") == 1
    )
    [failed] = [e for e in logs if e["event"] == "alert_delivery_failed"]
    assert failed["error"] == "the Bot API answered ok=false: Bad Request: chat not found"


async def test_a_hung_bot_api_blocks_neither_notify_nor_email(
    bot_api: BotApi, smtp_server: SmtpServer
) -> None:
    bot_api.hang = True
    metrics = AlertMetrics()
    service = AlertService(
        [telegram(bot_api, timeout=30), email(smtp_server)],
        metrics=metrics,
        timeout=0.25,  # the service's per-attempt timeout bounds the hung request
        retries=1,
        backoff=0.01,
    )
    await service.start()
    try:
        started = time.perf_counter()
        for i in range(3):
            service.notify(Alert(AlertKind.ORDER_FAILED, Severity.ERROR, f"fill failed {i}"))
        assert time.perf_counter() - started < 0.05  # notify only queues

        # E-mail delivers all three while Telegram's first request still hangs.
        await asyncio.to_thread(lambda: _wait_for_mails(smtp_server, 3, 3.0))
        assert (
            sample(metrics, "quantdesk_alerts_sent_total", channel="telegram", kind="order_failed")
            == 0
        )
        assert await service.flush(10)
    finally:
        bot_api.release.set()
        await service.stop(grace=0)
    assert (
        sample(metrics, "quantdesk_alerts_failed_total", channel="telegram", kind="order_failed")
        == 3
    )
    assert sample(metrics, "quantdesk_alerts_sent_total", channel="email", kind="order_failed") == 3


def _wait_for_mails(smtp: SmtpServer, count: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while len(smtp.received) < count:
        assert smtp.arrived.wait(max(deadline - time.monotonic(), 0)), "no mail arrived"
        smtp.arrived.clear()


async def test_an_unreachable_smtp_server_fails_fast_and_is_counted() -> None:
    from tests.integration.alerts.conftest import free_port

    metrics = AlertMetrics()
    channel = EmailChannel(
        "127.0.0.1", free_port(), "q@desk.test", ["ops@desk.test"], security="none", timeout=1
    )
    await run(AlertService([channel], metrics=metrics, retries=1, backoff=0.01), HALT)
    assert sample(metrics, "quantdesk_alerts_failed_total", channel="email", kind="risk_halt") == 1


async def test_settings_enable_each_configured_channel_only(
    bot_api: BotApi, smtp_server: SmtpServer
) -> None:
    assert channels_from_settings(Settings()) == []
    only_token = Settings(alert_telegram_bot_token=BOT_TOKEN)  # type: ignore[call-arg]
    assert channels_from_settings(only_token) == []
    settings = Settings(
        alert_telegram_bot_token=BOT_TOKEN,  # type: ignore[call-arg]
        alert_telegram_chat_id="42",  # type: ignore[call-arg]
        alert_telegram_api_url=bot_api.base_url,  # type: ignore[call-arg]
        alert_smtp_host=smtp_server.host,  # type: ignore[call-arg]
        alert_smtp_port=smtp_server.port,  # type: ignore[call-arg]
        alert_smtp_to="a@desk.test, b@desk.test",  # type: ignore[call-arg]
        alert_smtp_security="none",  # type: ignore[call-arg]
    )
    channels = channels_from_settings(settings)
    assert [c.name for c in channels] == ["telegram", "email"]
    assert BOT_TOKEN not in repr(channels)
    await run(AlertService(channels), HALT)
    assert bot_api.requests[0].path == f"/bot{BOT_TOKEN}/sendMessage"
    assert bot_api.requests[0].json["chat_id"] == "42"
    assert smtp_server.received[0].rcpt_tos == ["a@desk.test", "b@desk.test"]
    assert smtp_server.received[0].mail_from == "quantdesk@localhost"
