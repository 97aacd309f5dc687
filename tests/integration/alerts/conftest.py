"""Real servers for the alert channels: an aiosmtpd SMTP server and a stand-in for the Telegram
Bot API (an http.server in a thread) that record what actually arrives."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

BOT_TOKEN = "123456:TEST-bot-token-SeCrEt"
SMTP_USER = "alerts@quantdesk.test"
SMTP_PASSWORD = "smtp-pa55word-SeCrEt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- SMTP ---------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None


class _Handler:
    def __init__(self, box: SmtpServer) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        login = session.auth_data.login.decode() if session.auth_data else None
        self.box.received.append(
            ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message, login)  # type: ignore[arg-type]
        )
        self.box.arrived.set()
        return "250 Message accepted for delivery"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    if isinstance(data, LoginPassword) and (
        data.login.decode() == SMTP_USER and data.password.decode() == SMTP_PASSWORD
    ):
        return AuthResult(success=True, auth_data=data)
    return AuthResult(success=False, handled=False)


@dataclass
class SmtpServer:
    host: str = "127.0.0.1"
    port: int = 0
    received: list[ReceivedMail] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    box = SmtpServer(port=free_port())
    controller = Controller(
        _Handler(box),
        hostname=box.host,
        port=box.port,
        authenticator=_authenticator,
        auth_require_tls=False,  # a local test server; production uses STARTTLS or TLS
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


# --- the Bot API stand-in -------------------------------------------------------------------


@dataclass
class BotRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclass
class BotApi:
    """Answers each request with the next scripted reply (then the default one)."""

    port: int = 0
    requests: list[BotRequest] = field(default_factory=list)
    script: list[tuple[int, Any]] = field(default_factory=list)
    default: tuple[int, Any] = (200, {"ok": True, "result": {"message_id": 1}})
    hang: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reply(self) -> tuple[int, Any]:
        with self.lock:
            return self.script.pop(0) if self.script else self.default


@pytest.fixture
def bot_api() -> Iterator[BotApi]:
    api = BotApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            with api.lock:
                api.requests.append(BotRequest("POST", self.path, dict(self.headers.items()), body))
            if api.hang:
                api.release.wait(10)
                return
            status, payload = api.reply()
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    api.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.release.set()
        server.shutdown()
        server.server_close()
