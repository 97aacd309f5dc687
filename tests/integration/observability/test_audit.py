"""The audit trail: who, what, when, from where; filters and pages; append-only in the database."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from quantdesk.db.engine import create_engine
from quantdesk.settings import Settings
from tests.conftest import AuthedUser, unique_name

AUDIT = "/api/v1/admin/audit"


async def test_user_creation_is_audited_with_actor_ip_request_id_and_changes(
    client: httpx.AsyncClient, admin: AuthedUser
) -> None:
    name = unique_name("aud")
    r = await client.post(
        "/api/v1/admin/users",
        json={"username": name, "password": "long-enough-pw-1", "role": "viewer"},
        headers={**admin.headers, "X-Request-ID": "req-audit-123"},
    )
    assert r.status_code == 201
    rows = (
        await client.get(
            AUDIT, params={"action": "user.create", "actor_id": admin.id}, headers=admin.headers
        )
    ).json()["items"]
    row = next(x for x in rows if x["target_id"] == str(r.json()["id"]))
    assert row["actor_username"] == admin.username
    assert row["ip"] == "127.0.0.1"
    assert row["request_id"] == "req-audit-123"
    assert row["changes"] == {"username": name, "role": "viewer"}
    assert row["at"].endswith("Z") or "+00:00" in row["at"]


async def test_audit_never_stores_passwords(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    await client.patch(
        f"/api/v1/admin/users/{trader.id}",
        json={"password": "another-long-pw-2"},
        headers=admin.headers,
    )
    rows = (
        await client.get(
            AUDIT,
            params={"target_id": str(trader.id), "action": "user.update"},
            headers=admin.headers,
        )
    ).json()["items"]
    assert rows and rows[0]["changes"]["password"] == "***"
    assert "another-long-pw-2" not in str(rows)


async def test_logins_and_logouts_are_audited(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    await client.post("/api/v1/auth/logout", headers=trader.headers)
    rows = (
        await client.get(
            AUDIT, params={"actor_id": trader.id, "action": "auth."}, headers=admin.headers
        )
    ).json()["items"]
    assert [r["action"] for r in rows] == ["auth.logout", "auth.login"]


async def test_audit_pages_with_a_cursor_without_gaps_or_repeats(
    client: httpx.AsyncClient, admin: AuthedUser
) -> None:
    for _ in range(5):
        await client.post(
            "/api/v1/admin/users",
            json={"username": unique_name("pg"), "password": "long-enough-pw-1", "role": "viewer"},
            headers=admin.headers,
        )
    seen: list[int] = []
    cursor = None
    while True:
        params = {"actor_id": admin.id, "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(AUDIT, params=params, headers=admin.headers)).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 6  # login + 5 creations
    assert seen == sorted(seen, reverse=True)


async def test_audit_time_filter_needs_a_time_zone(
    client: httpx.AsyncClient, admin: AuthedUser
) -> None:
    r = await client.get(AUDIT, params={"since": "2026-01-01T00:00:00"}, headers=admin.headers)
    assert r.status_code == 422
    r = await client.get(
        AUDIT,
        params={"since": "2020-01-01T00:00:00Z", "until": "2020-01-02T00:00:00Z"},
        headers=admin.headers,
    )
    assert r.status_code == 200 and r.json()["items"] == []


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"]
)
async def test_database_refuses_to_change_audit_rows(
    settings: Settings, admin: AuthedUser, statement: str
) -> None:
    engine = create_engine(settings.resolved_database_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(sa.text(statement))
        async with engine.connect() as conn:
            n = (await conn.execute(sa.text("SELECT count(*) FROM audit_log"))).scalar_one()
        assert n > 0
    finally:
        await engine.dispose()
