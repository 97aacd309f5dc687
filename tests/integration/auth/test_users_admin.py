"""Admin user management: creation, the password policy, conflicts, self-lockout."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import AuthedUser, unique_name

USERS = "/api/v1/admin/users"


async def _count(client: httpx.AsyncClient, admin: AuthedUser) -> tuple[int, int]:
    users = (await client.get(USERS, headers=admin.headers)).json()["total"]
    audit = await client.get(
        "/api/v1/admin/audit", params={"action": "user.", "limit": 500}, headers=admin.headers
    )
    return users, len(audit.json()["items"])


async def test_admin_creates_a_user_who_can_log_in(
    client: httpx.AsyncClient, admin: AuthedUser
) -> None:
    name = unique_name("new")
    r = await client.post(
        USERS,
        json={"username": name.upper(), "password": "long-enough-pw-1", "role": "viewer"},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["username"] == name  # usernames are stored lower-case
    login = await client.post(
        "/api/v1/auth/login", json={"username": name, "password": "long-enough-pw-1"}
    )
    assert login.status_code == 200


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("aaaaaaaaaaaa", "4 different"),
        ("password123", "too common"),
        ("é" * 37, "at most 72 bytes"),  # 37 characters, 74 bytes
    ],
)
async def test_password_policy_rejects_weak_passwords_and_writes_nothing(
    client: httpx.AsyncClient, admin: AuthedUser, password: str, reason: str
) -> None:
    before = await _count(client, admin)
    r = await client.post(
        USERS,
        json={"username": unique_name(), "password": password, "role": "trader"},
        headers=admin.headers,
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "PASSWORD_POLICY"
    assert reason in r.json()["error"]["message"]
    assert await _count(client, admin) == before


@pytest.mark.parametrize("password", ["short1", "x" * 73])
async def test_password_length_is_in_the_schema_and_checked_before_anything(
    client: httpx.AsyncClient, admin: AuthedUser, password: str
) -> None:
    before = await _count(client, admin)
    r = await client.post(
        USERS,
        json={"username": unique_name(), "password": password, "role": "trader"},
        headers=admin.headers,
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"] == ["body", "password"]
    assert await _count(client, admin) == before


async def test_password_may_not_contain_the_username(
    client: httpx.AsyncClient, admin: AuthedUser
) -> None:
    name = unique_name("bob")
    r = await client.post(
        USERS,
        json={"username": name, "password": f"{name}-secret", "role": "trader"},
        headers=admin.headers,
    )
    assert r.status_code == 422


async def test_duplicate_username_is_409_and_writes_nothing(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    before = await _count(client, admin)
    r = await client.post(
        USERS,
        json={"username": trader.username, "password": "long-enough-pw-1", "role": "viewer"},
        headers=admin.headers,
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "USER_EXISTS"
    assert await _count(client, admin) == before


async def test_bad_username_and_unknown_role_are_422(
    client: httpx.AsyncClient, admin: AuthedUser
) -> None:
    for body in (
        {"username": "a b", "password": "long-enough-pw-1", "role": "trader"},
        {"username": "ok_name", "password": "long-enough-pw-1", "role": "superuser"},
    ):
        r = await client.post(USERS, json=body, headers=admin.headers)
        assert r.status_code == 422


async def test_admin_cannot_disable_or_demote_themselves(
    client: httpx.AsyncClient, admin: AuthedUser
) -> None:
    for body in ({"is_active": False}, {"role": "viewer"}):
        r = await client.patch(f"{USERS}/{admin.id}", json=body, headers=admin.headers)
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "USER_SELF_LOCKOUT"


async def test_unknown_user_is_404(client: httpx.AsyncClient, admin: AuthedUser) -> None:
    r = await client.patch(f"{USERS}/987654321", json={"role": "viewer"}, headers=admin.headers)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "USER_NOT_FOUND"


async def test_user_list_paginates(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    page = (await client.get(USERS, params={"limit": 1}, headers=admin.headers)).json()
    assert len(page["items"]) == 1
    assert page["total"] >= 2
