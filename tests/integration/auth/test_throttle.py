"""Failed logins are throttled per user and per IP; with Redis the count is shared by every
API process."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from quantdesk.api import create_app
from quantdesk.auth.roles import Role
from tests.conftest import UserFactory, client_for, make_settings, unique_name

LOGIN = "/api/v1/auth/login"


async def _fail(client: httpx.AsyncClient, username: str) -> httpx.Response:
    return await client.post(LOGIN, json={"username": username, "password": "wrong-password-x"})


async def test_user_is_throttled_after_the_limit_even_with_the_right_password(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    u = await make_user(Role.TRADER, login=False)
    for _ in range(5):  # default limit
        assert (await _fail(client, u.username)).status_code == 401
    r = await client.post(LOGIN, json={"username": u.username, "password": u.password})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "AUTH_THROTTLED"
    assert int(r.headers["Retry-After"]) > 0


async def test_success_before_the_limit_resets_the_user_count(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    u = await make_user(Role.TRADER, login=False)
    for _ in range(4):
        await _fail(client, u.username)
    ok = await client.post(LOGIN, json={"username": u.username, "password": u.password})
    assert ok.status_code == 200
    for _ in range(4):
        assert (await _fail(client, u.username)).status_code == 401
    assert (
        await client.post(LOGIN, json={"username": u.username, "password": u.password})
    ).status_code == 200


async def test_ip_is_throttled_across_usernames(
    db_url: str, tmp_path: Path, make_user: UserFactory
) -> None:
    settings = make_settings(db_url, tmp_path, login_max_failures_per_ip=3)
    app = create_app(settings)
    async with app.router.lifespan_context(app), client_for(app, ip="10.9.8.7") as attacker:
        for _ in range(3):
            assert (await _fail(attacker, unique_name())).status_code == 401
        assert (await _fail(attacker, unique_name())).status_code == 429
        # Another address is not affected.
        async with client_for(app, ip="10.9.8.8") as other:
            assert (await _fail(other, unique_name())).status_code == 401


@pytest.mark.redis
async def test_redis_throttle_is_shared_between_api_processes(
    db_url: str, tmp_path: Path, redis_url: str, redis_prefix: str, make_user: UserFactory
) -> None:
    u = await make_user(Role.TRADER, login=False)
    settings = make_settings(
        db_url,
        tmp_path,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        login_max_failures_per_user=3,
    )
    app_a, app_b = create_app(settings), create_app(settings)
    async with (
        app_a.router.lifespan_context(app_a),
        app_b.router.lifespan_context(app_b),
        client_for(app_a) as a,
        client_for(app_b) as b,
    ):
        assert (await _fail(a, u.username)).status_code == 401
        assert (await _fail(b, u.username)).status_code == 401
        assert (await _fail(a, u.username)).status_code == 401
        r = await b.post(LOGIN, json={"username": u.username, "password": u.password})
        assert r.status_code == 429
        ready = await a.get("/readyz")
        assert ready.json()["checks"]["redis"] == "ok"


async def test_throttled_attempts_are_audited(
    client: httpx.AsyncClient, make_user: UserFactory, admin: object
) -> None:
    u = await make_user(Role.VIEWER, login=False)
    for _ in range(6):
        await _fail(client, u.username)
    rows = (
        await client.get(
            "/api/v1/admin/audit",
            params={"action": "auth.login", "limit": 200},
            headers=admin.headers,  # type: ignore[attr-defined]
        )
    ).json()["items"]
    mine = [r for r in rows if (r["changes"] or {}).get("username") == u.username]
    assert sorted(r["outcome"] for r in mine) == ["failed"] * 5 + ["throttled"]
