"""Login, refresh rotation with reuse detection, logout, disabled users: through the API, on
both database backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from quantdesk.auth.models import RefreshToken
from quantdesk.auth.roles import Role
from quantdesk.auth.security import encode_access_token, hash_token
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.settings import Settings
from tests.conftest import AuthedUser, UserFactory

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_login_returns_a_token_pair_that_identifies_the_user(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    r = await client.get(ME, headers=trader.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["username"] == trader.username
    assert body["role"] == "trader"
    assert "password_hash" not in body


async def test_login_token_lifetime_defaults_to_15_minutes(
    client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    u = await make_user(Role.VIEWER, login=False)
    r = await client.post(LOGIN, json={"username": u.username, "password": u.password})
    assert r.json()["expires_in"] == 900
    assert r.json()["token_type"] == "bearer"


async def test_wrong_password_and_unknown_user_get_the_same_401(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    wrong = await client.post(
        LOGIN, json={"username": trader.username, "password": "nope-nope-nope"}
    )
    unknown = await client.post(
        LOGIN, json={"username": "nobody_here", "password": "nope-nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "AUTH_INVALID_CREDENTIALS"


async def test_username_is_case_insensitive_at_login(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    r = await client.post(
        LOGIN, json={"username": trader.username.upper(), "password": trader.password}
    )
    assert r.status_code == 200


async def test_expired_access_token_is_rejected_with_its_own_code(
    client: httpx.AsyncClient, settings: Settings, trader: AuthedUser
) -> None:
    me = await client.get(ME, headers=trader.headers)
    assert me.status_code == 200
    from quantdesk.auth.security import decode_access_token

    claims = decode_access_token(
        trader.access_token, key=settings.jwt_key, algorithm="HS256", issuer=settings.jwt_issuer
    )
    token, _ = encode_access_token(
        user_id=trader.id,
        role="trader",
        session_id=claims.session_id,
        key=settings.jwt_key,
        algorithm="HS256",
        issuer=settings.jwt_issuer,
        ttl=timedelta(seconds=60),
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    r = await client.get(ME, headers=bearer(token))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "AUTH_TOKEN_EXPIRED"


async def test_refresh_rotates_and_spends_the_old_token(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    r1 = await client.post(REFRESH, json={"refresh_token": trader.refresh_token})
    assert r1.status_code == 200
    new = r1.json()
    assert new["refresh_token"] != trader.refresh_token
    assert (await client.get(ME, headers=bearer(new["access_token"]))).status_code == 200
    r2 = await client.post(REFRESH, json={"refresh_token": new["refresh_token"]})
    assert r2.status_code == 200


async def test_reusing_a_spent_refresh_token_revokes_the_whole_family(
    client: httpx.AsyncClient, trader: AuthedUser, admin: AuthedUser
) -> None:
    first = await client.post(REFRESH, json={"refresh_token": trader.refresh_token})
    assert first.status_code == 200
    stolen_reuse = await client.post(REFRESH, json={"refresh_token": trader.refresh_token})
    assert stolen_reuse.status_code == 401
    assert stolen_reuse.json()["error"]["code"] == "AUTH_REFRESH_REUSED"
    # The legitimate holder's newer tokens die with the family.
    latest = first.json()
    again = await client.post(REFRESH, json={"refresh_token": latest["refresh_token"]})
    assert again.status_code == 401
    me = await client.get(ME, headers=bearer(latest["access_token"]))
    assert me.status_code == 401
    assert me.json()["error"]["code"] == "AUTH_SESSION_REVOKED"
    audit = await client.get(
        "/api/v1/admin/audit",
        params={"action": "auth.refresh_reuse", "actor_id": trader.id},
        headers=admin.headers,
    )
    assert len(audit.json()["items"]) == 1


async def test_reuse_in_one_session_leaves_other_sessions_alone(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    other = await client.post(
        LOGIN, json={"username": trader.username, "password": trader.password}
    )
    await client.post(REFRESH, json={"refresh_token": trader.refresh_token})
    await client.post(REFRESH, json={"refresh_token": trader.refresh_token})  # reuse
    assert (await client.get(ME, headers=bearer(other.json()["access_token"]))).status_code == 200


async def test_concurrent_refreshes_with_one_token_let_exactly_one_through(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    results = await asyncio.gather(
        *[client.post(REFRESH, json={"refresh_token": trader.refresh_token}) for _ in range(5)]
    )
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) == 1
    assert codes.count(401) == 4


async def test_refresh_tokens_are_stored_only_as_hashes(
    client: httpx.AsyncClient, settings: Settings, trader: AuthedUser
) -> None:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            hashes = (await db.execute(select(RefreshToken.token_hash))).scalars().all()
    finally:
        await engine.dispose()
    assert trader.refresh_token not in hashes
    assert hash_token(trader.refresh_token) in hashes


async def test_garbage_refresh_token_is_401(client: httpx.AsyncClient) -> None:
    r = await client.post(REFRESH, json={"refresh_token": "not-a-token"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "AUTH_INVALID_REFRESH"


async def test_logout_ends_the_session_for_access_and_refresh_tokens(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    r = await client.post("/api/v1/auth/logout", headers=trader.headers)
    assert r.status_code == 204
    assert (await client.get(ME, headers=trader.headers)).status_code == 401
    r = await client.post(REFRESH, json={"refresh_token": trader.refresh_token})
    assert r.status_code == 401


async def test_disabled_user_cannot_log_in_and_live_tokens_stop(
    client: httpx.AsyncClient, trader: AuthedUser, admin: AuthedUser
) -> None:
    r = await client.patch(
        f"/api/v1/admin/users/{trader.id}", json={"is_active": False}, headers=admin.headers
    )
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert (await client.get(ME, headers=trader.headers)).status_code == 401
    assert (
        await client.post(REFRESH, json={"refresh_token": trader.refresh_token})
    ).status_code == 401
    login = await client.post(
        LOGIN, json={"username": trader.username, "password": trader.password}
    )
    assert login.status_code == 401
    assert login.json()["error"]["code"] == "AUTH_USER_DISABLED"
    # Re-enabled, the user logs in again.
    await client.patch(
        f"/api/v1/admin/users/{trader.id}", json={"is_active": True}, headers=admin.headers
    )
    login = await client.post(
        LOGIN, json={"username": trader.username, "password": trader.password}
    )
    assert login.status_code == 200


async def test_role_change_applies_to_tokens_already_issued(
    client: httpx.AsyncClient, viewer: AuthedUser, admin: AuthedUser
) -> None:
    assert (await client.get("/api/v1/admin/users", headers=viewer.headers)).status_code == 403
    await client.patch(
        f"/api/v1/admin/users/{viewer.id}", json={"role": "admin"}, headers=admin.headers
    )
    assert (await client.get("/api/v1/admin/users", headers=viewer.headers)).status_code == 200


async def test_password_change_ends_existing_sessions(
    client: httpx.AsyncClient, trader: AuthedUser, admin: AuthedUser
) -> None:
    r = await client.patch(
        f"/api/v1/admin/users/{trader.id}",
        json={"password": "a-brand-new-pass-7"},
        headers=admin.headers,
    )
    assert r.status_code == 200
    assert (await client.get(ME, headers=trader.headers)).status_code == 401
    ok = await client.post(
        LOGIN, json={"username": trader.username, "password": "a-brand-new-pass-7"}
    )
    assert ok.status_code == 200
