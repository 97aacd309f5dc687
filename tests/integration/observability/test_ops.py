"""Request ids, readiness, Prometheus metrics and structured logs."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from quantdesk.api import create_app
from quantdesk.bus.base import BusUnavailableError
from quantdesk.observability.logging import configure_logging
from tests.conftest import AuthedUser, client_for, make_settings


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/healthz")
    assert len(r.headers["x-request-id"]) == 32
    # A hostile id (header injection, huge) is replaced, not reflected.
    r = await client.get("/healthz", headers={"X-Request-ID": "x" * 500})
    assert r.headers["x-request-id"] != "x" * 500


async def test_error_responses_carry_the_request_id_too(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/auth/me", headers={"X-Request-ID": "rid-401"})
    assert r.status_code == 401
    assert r.headers["x-request-id"] == "rid-401"


async def test_readyz_checks_the_database(client: httpx.AsyncClient) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"database": "ok"}}


@pytest.mark.redis
async def test_readyz_turns_503_when_redis_goes_down(db_url: str, tmp_path: Path) -> None:
    # A private redis-server, so it can be stopped under the running app.
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        *[
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        await _wait_for_port(port)
        settings = make_settings(db_url, tmp_path, redis_url=f"redis://127.0.0.1:{port}/0")
        app = create_app(settings)
        async with app.router.lifespan_context(app), client_for(app) as c:
            assert (await c.get("/readyz")).json()["checks"]["redis"] == "ok"
            proc.kill()
            await proc.wait()
            r = await c.get("/readyz")
            assert r.status_code == 503
            assert r.json()["checks"]["database"] == "ok"
            assert r.json()["checks"]["redis"].startswith("error")
            assert (await c.get("/healthz")).status_code == 200
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_app_refuses_to_start_when_configured_redis_is_unreachable(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path}/x.db", tmp_path, redis_url="redis://127.0.0.1:1/0"
    )
    app = create_app(settings)

    async def start() -> None:
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(BusUnavailableError):
        asyncio.run(start())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_for_port(port: int) -> None:
    for _ in range(100):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("redis-server did not start")


async def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = make_settings("postgresql+asyncpg://nobody@127.0.0.1:1/none", tmp_path)
    app = create_app(settings)
    async with app.router.lifespan_context(app), client_for(app) as c:
        r = await c.get("/readyz")
        assert (await c.get("/healthz")).status_code == 200
    assert r.status_code == 503
    assert r.json()["checks"]["database"].startswith("error")


async def test_metrics_count_requests_by_route_template_not_raw_path(
    client: httpx.AsyncClient, admin: AuthedUser
) -> None:
    for uid in (admin.id, 424_242):
        await client.get(f"/api/v1/admin/users/{uid}", headers=admin.headers)
    await client.get("/no/such/path/123")
    text = (await client.get("/metrics")).text
    assert 'route="/api/v1/admin/users/{user_id}",status="200"' in text
    assert 'route="/api/v1/admin/users/{user_id}",status="404"' in text
    assert "/424242" not in text
    assert 'route="<unmatched>"' in text
    assert (
        'quantdesk_http_request_duration_seconds_count{method="GET",'
        'route="/api/v1/admin/users/{user_id}"} 2.0'
    ) in text
    assert 'quantdesk_logins_total{outcome="success"}' in text


def test_logs_are_json_lines_with_request_id_and_no_secrets(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import structlog

    configure_logging("INFO", json=True)
    structlog.contextvars.bind_contextvars(request_id="rid-log")
    structlog.get_logger("t").info("something_happened", password="hunter2hunter2", n=3)
    structlog.contextvars.clear_contextvars()
    configure_logging("WARNING", json=True)
    line = capfd.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["event"] == "something_happened"
    assert record["request_id"] == "rid-log"
    assert record["level"] == "info"
    assert record["password"] == "***"
    assert "hunter2" not in line


async def test_unknown_query_parameters_are_rejected(
    client: httpx.AsyncClient, admin: AuthedUser
) -> None:
    r = await client.get("/api/v1/admin/users", params={"limt": "5"}, headers=admin.headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "UNKNOWN_QUERY_PARAMETER"
    assert r.json()["error"]["details"]["unknown"] == ["limt"]
    assert "limit" in r.json()["error"]["details"]["allowed"]
    ok = await client.get("/api/v1/admin/users", params={"limit": "5"}, headers=admin.headers)
    assert ok.status_code == 200
