"""Fixtures for broker accounts: apps with a Fernet key or a Vault, and a local server that
speaks Vault's KV v2 HTTP API (``/v1/<mount>/data/<path>``, ``X-Vault-Token``), so the hvac
path runs against the real wire format without a Vault install."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy import func, select, text

from quantdesk.api import create_app
from quantdesk.brokers.accounts import BrokerAccountRow
from quantdesk.observability.audit import AuditLog
from quantdesk.settings import Settings
from tests.conftest import client_for, make_settings

KEY = Fernet.generate_key().decode()
VAULT_TOKEN = "hvs.test-token-" + "t" * 20
MOUNT = "kv-test"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """The default app of these tests has a Fernet key (as production must)."""
    return make_settings(db_url, tmp_path, secrets_key=KEY)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A started app and a client for it, for tests that need other settings."""
    application = create_app(settings)
    async with application.router.lifespan_context(application), client_for(application) as c:
        yield application, c


def sessionmaker(application: FastAPI) -> Any:
    return application.state.qd.sessionmaker


async def raw_rows(application: FastAPI) -> list[dict[str, Any]]:
    """The broker_accounts rows as stored, every column."""
    async with sessionmaker(application)() as db:
        result = await db.execute(text("SELECT * FROM broker_accounts ORDER BY id"))
        return [dict(r._mapping) for r in result]


async def counts(application: FastAPI) -> tuple[int, int]:
    """(broker accounts, broker-account audit rows)."""
    async with sessionmaker(application)() as db:
        accounts = (
            await db.execute(select(func.count()).select_from(BrokerAccountRow))
        ).scalar_one()
        audits = (
            await db.execute(
                select(func.count())
                .select_from(AuditLog)
                .where(AuditLog.action.like("broker_account.%"))
            )
        ).scalar_one()
    return accounts, audits


async def audit_rows(application: FastAPI, account_id: int) -> list[dict[str, Any]]:
    async with sessionmaker(application)() as db:
        rows = await db.execute(
            select(AuditLog)
            .where(AuditLog.target_type == "broker_account")
            .where(AuditLog.target_id == str(account_id))
            .order_by(AuditLog.id)
        )
        return [
            {"action": r.action, "changes": r.changes, "actor_id": r.actor_id}
            for r in rows.scalars()
        ]


# --- a Vault KV v2 stand-in -------------------------------------------------------------------


@dataclass
class FakeVault:
    """Vault's KV v2 engine at one mount: versions per path, the token checked on every call."""

    token: str
    mount: str
    secrets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    down: bool = False

    def latest(self, path: str) -> dict[str, Any] | None:
        versions = self.secrets.get(path)
        return versions[-1]["data"] if versions else None


def _handler(vault: FakeVault) -> type[BaseHTTPRequestHandler]:
    route = re.compile(rf"^/v1/{re.escape(vault.mount)}/(data|metadata)/(.+)$")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict[str, Any] | None) -> None:
            raw = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _route(self, method: str) -> tuple[str, str] | None:
            vault.requests.append((method, self.path))
            if vault.down:
                self._send(503, {"errors": ["Vault is sealed"]})
                return None
            if self.headers.get("X-Vault-Token") != vault.token:
                self._send(403, {"errors": ["permission denied"]})
                return None
            match = route.match(self.path.split("?", 1)[0])
            if match is None:
                self._send(404, {"errors": [f"no handler for route '{self.path}'"]})
                return None
            return match.group(1), match.group(2)

        def do_GET(self) -> None:
            found = self._route("GET")
            if found is None:
                return
            kind, path = found
            versions = vault.secrets.get(path)
            if kind != "data" or not versions:
                self._send(404, {"errors": []})
                return
            latest = versions[-1]
            self._send(
                200,
                {
                    "request_id": "00000000-0000-0000-0000-000000000000",
                    "lease_id": "",
                    "renewable": False,
                    "lease_duration": 0,
                    "data": {"data": latest["data"], "metadata": latest["metadata"]},
                    "wrap_info": None,
                    "warnings": None,
                    "auth": None,
                },
            )

        def do_POST(self) -> None:
            found = self._route("POST")
            if found is None:
                return
            kind, path = found
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if kind != "data" or not isinstance(body.get("data"), dict):
                self._send(400, {"errors": ["no data provided"]})
                return
            versions = vault.secrets.setdefault(path, [])
            metadata = {
                "created_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "custom_metadata": None,
                "deletion_time": "",
                "destroyed": False,
                "version": len(versions) + 1,
            }
            versions.append({"data": body["data"], "metadata": metadata})
            self._send(200, {"request_id": "1", "data": metadata, "warnings": None})

        def do_DELETE(self) -> None:
            found = self._route("DELETE")
            if found is None:
                return
            kind, path = found
            if kind == "metadata":
                vault.secrets.pop(path, None)
            elif path in vault.secrets:
                vault.secrets[path][-1]["metadata"]["deletion_time"] = "now"
            self._send(204, None)

    return Handler


@pytest.fixture
def vault() -> Iterator[FakeVault]:
    fake = FakeVault(VAULT_TOKEN, MOUNT)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def vault_settings(db_url: str, data_dir: Path, vault: FakeVault, **over: object) -> Settings:
    values: dict[str, object] = {
        "vault_addr": vault.url,
        "vault_token": vault.token,
        "vault_mount": vault.mount,
        "vault_path": "qd-test",
    }
    values.update(over)
    return make_settings(db_url, data_dir, **values)
