"""``quantdesk alerts test`` against the real servers."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from quantdesk.cli import app
from tests.integration.alerts.conftest import BOT_TOKEN, BotApi, SmtpServer


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"QUANTDESK_DATA_DIR": str(tmp_path), **extra}


def test_alerts_test_sends_on_every_configured_channel(
    tmp_path: Path, bot_api: BotApi, smtp_server: SmtpServer
) -> None:
    result = CliRunner().invoke(
        app,
        ["alerts", "test", "-m", "hello from the CLI"],
        env=env(
            tmp_path,
            QUANTDESK_ALERT_TELEGRAM_BOT_TOKEN=BOT_TOKEN,
            QUANTDESK_ALERT_TELEGRAM_CHAT_ID="42",
            QUANTDESK_ALERT_TELEGRAM_API_URL=bot_api.base_url,
            QUANTDESK_ALERT_SMTP_HOST=smtp_server.host,
            QUANTDESK_ALERT_SMTP_PORT=str(smtp_server.port),
            QUANTDESK_ALERT_SMTP_TO="ops@desk.test",
            QUANTDESK_ALERT_SMTP_SECURITY="none",
        ),
    )
    assert result.exit_code == 0, result.output
    assert "telegram: sent" in result.output and "email: sent" in result.output
    assert "hello from the CLI" in bot_api.requests[0].json["text"]
    assert smtp_server.received[0].message["Subject"] == "[QuantDesk] [INFO] test: Test alert"


def test_alerts_test_fails_when_a_channel_fails(tmp_path: Path, bot_api: BotApi) -> None:
    bot_api.default = (401, {"ok": False, "description": "Unauthorized"})
    result = CliRunner().invoke(
        app,
        ["alerts", "test"],
        env=env(
            tmp_path,
            QUANTDESK_ALERT_TELEGRAM_BOT_TOKEN=BOT_TOKEN,
            QUANTDESK_ALERT_TELEGRAM_CHAT_ID="42",
            QUANTDESK_ALERT_TELEGRAM_API_URL=bot_api.base_url,
            QUANTDESK_ALERT_TIMEOUT_SECONDS="1",
        ),
    )
    assert result.exit_code == 1, result.output
    assert "telegram: failed" in result.output
    assert BOT_TOKEN not in result.output


def test_alerts_test_without_channels_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["alerts", "test"], env=env(tmp_path))
    assert result.exit_code == 2
    assert "No alert channel is configured" in result.output
