"""Delivery channels: Telegram (Bot API ``sendMessage`` over httpx), e-mail (SMTP through
aiosmtplib) and the event bus (the owner's ``alerts`` stream).

A channel's :meth:`Channel.send` delivers one alert or raises; the service around it owns the
timeouts, retries, rate limits and metrics. No secret (the bot token, the SMTP password) ever
appears in an exception raised from here or in a log line: errors are rewritten through
:func:`redact` first, and the bot token is masked in httpx's own request log.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import httpx

from quantdesk.alerts import format as fmt
from quantdesk.alerts.model import Delivery
from quantdesk.bus.base import EventBus
from quantdesk.stream.hub import user_channel

MAX_RETRY_AFTER_SECONDS = 60.0


class ChannelError(Exception):
    """A delivery failed; the message is safe to log (no secrets)."""


class RetryAfter(ChannelError):
    """The service asked us to wait (Telegram's 429 ``retry_after``) before trying again."""

    def __init__(self, seconds: float, message: str) -> None:
        super().__init__(message)
        self.seconds = seconds


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class _MaskFilter(logging.Filter):
    """Masks a secret in the records of a library logger (httpx logs every request's URL,
    and a Bot API URL carries the bot token)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler
            return True
        if self.secret in message:
            record.msg = message.replace(self.secret, "***")
            record.args = None
        return True


class Channel(ABC):
    """One way out for alerts."""

    name: str
    rate_limited = True
    """Whether the service's per-channel token bucket applies (external services only)."""
    after_store = False
    """Whether the channel waits for the inbox row, so its message can carry the row's id.
    Only the UI's own stream does: Telegram and e-mail never wait on the database."""

    def accepts(self, delivery: Delivery) -> bool:
        return True

    @abstractmethod
    async def send(self, delivery: Delivery) -> None:
        """Deliver, or raise (:class:`ChannelError`, :class:`RetryAfter`, anything)."""

    def secrets(self) -> Sequence[str]:
        """Values to mask in any error text from this channel."""
        return ()

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release here
        """Release connections."""


class TelegramChannel(Channel):
    """``POST {api_url}/bot{token}/sendMessage`` with ``{"chat_id", "text"}``.

    A non-2xx status or ``{"ok": false}`` is a failure; a 429 raises :class:`RetryAfter` with
    the Bot API's ``parameters.retry_after`` (or the ``Retry-After`` header).
    """

    name = "telegram"

    def __init__(
        self,
        token: str,
        chat_id: str,
        *,
        api_url: str = "https://api.telegram.org",
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._token = token
        self.chat_id = chat_id
        self.api_url = api_url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._masks = [_MaskFilter(token)]
        for logger in ("httpx", "httpcore"):
            logging.getLogger(logger).addFilter(self._masks[0])

    def __repr__(self) -> str:
        return f"TelegramChannel(api_url={self.api_url!r}, chat_id={self.chat_id!r})"

    def secrets(self) -> Sequence[str]:
        return (self._token,)

    async def send(self, delivery: Delivery) -> None:
        url = f"{self.api_url}/bot{self._token}/sendMessage"
        payload = {
            "chat_id": self.chat_id,
            "text": fmt.telegram_text(delivery),
            "disable_web_page_preview": True,
        }
        try:
            response = await self._client.post(url, json=payload)
        except httpx.HTTPError as exc:
            raise ChannelError(self._safe(f"{type(exc).__name__}: {exc}")) from None
        body = _json_or_none(response)
        description = ""
        if isinstance(body, dict) and isinstance(body.get("description"), str):
            description = f": {body['description']}"
        if response.status_code == 429:
            raise RetryAfter(
                _retry_after(response, body), self._safe(f"HTTP 429 from the Bot API{description}")
            )
        if not response.is_success:
            raise ChannelError(
                self._safe(f"HTTP {response.status_code} from the Bot API{description}")
            )
        if not isinstance(body, dict) or body.get("ok") is not True:
            raise ChannelError(self._safe(f"the Bot API answered ok=false{description}"))

    def _safe(self, text: str) -> str:
        return redact(text, self.secrets())

    async def aclose(self) -> None:
        await self._client.aclose()
        for logger in ("httpx", "httpcore"):
            for mask in self._masks:
                logging.getLogger(logger).removeFilter(mask)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(response: httpx.Response, body: Any) -> float:
    seconds: Any = None
    if isinstance(body, dict) and isinstance(body.get("parameters"), dict):
        seconds = body["parameters"].get("retry_after")
    if seconds is None:
        seconds = response.headers.get("retry-after")
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = 1.0
    return min(max(value, 0.0), MAX_RETRY_AFTER_SECONDS)


class EmailChannel(Channel):
    """One plain-text e-mail per alert through an SMTP server (aiosmtplib: asyncio-native, so a
    slow server costs a suspended coroutine, not a thread, and the timeout is the client's).

    ``security``: ``starttls`` (upgrade a plain connection, required), ``tls`` (implicit TLS,
    port 465) or ``none`` (a local relay).
    """

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        *,
        username: str | None = None,
        password: str | None = None,
        security: str = "starttls",
        timeout: float = 5.0,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"unknown SMTP security {security!r}")
        if not recipients:
            raise ValueError("an e-mail channel needs at least one recipient")
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = list(recipients)
        self.username = username
        self._password = password
        self.security = security
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"EmailChannel(host={self.host!r}, port={self.port}, to={self.recipients!r})"

    def secrets(self) -> Sequence[str]:
        return (self._password,) if self._password else ()

    def message(self, delivery: Delivery) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = fmt.email_subject(delivery)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="quantdesk")
        msg["X-QuantDesk-Alert-Kind"] = delivery.alert.kind.value
        msg["X-QuantDesk-Alert-Severity"] = delivery.alert.severity.value
        msg.set_content(fmt.text(delivery) + "\n")
        return msg

    async def send(self, delivery: Delivery) -> None:
        import aiosmtplib

        try:
            await aiosmtplib.send(
                self.message(delivery),
                hostname=self.host,
                port=self.port,
                username=self.username or None,
                password=self._password if self.username else None,
                use_tls=self.security == "tls",
                start_tls=self.security == "starttls",
                timeout=self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ChannelError(redact(f"{type(exc).__name__}: {exc}", self.secrets())) from None


class BusChannel(Channel):
    """Publishes the alert on the owner's ``user:<id>:alerts`` bus channel (the WebSocket
    ``alerts`` stream), with its inbox id once stored. Alerts about no user (system errors) have
    no owner's stream to go to: there is no admin stream yet (admins read them from the inbox,
    ``GET /api/v1/alerts``)."""

    name = "bus"
    rate_limited = False
    after_store = True

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def accepts(self, delivery: Delivery) -> bool:
        return delivery.alert.user_id is not None

    async def send(self, delivery: Delivery) -> None:
        alert = delivery.alert
        assert alert.user_id is not None
        await self.bus.publish(user_channel(alert.user_id, "alerts"), bus_message(delivery))


def bus_message(delivery: Delivery) -> dict[str, Any]:
    alert = delivery.alert
    return {
        "type": "alert",
        "id": delivery.alert_id,
        "kind": alert.kind.value,
        "severity": alert.severity.value,
        "title": alert.title,
        "body": alert.body,
        "user_id": alert.user_id,
        "ts": alert.ts.isoformat().replace("+00:00", "Z"),
        "similar": delivery.similar,
        "data": alert.data,
    }
