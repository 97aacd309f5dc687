"""/api/v1/admin/broker-accounts: admins connect, list, change and remove broker accounts;
secrets are stored encrypted and never come back out (responses, audit trail, logs)."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from pydantic import SecretStr

from quantdesk.brokers import service
from quantdesk.brokers.secrets import KEY_FILE, SecretsUnavailable, SecretsUnreadable
from quantdesk.observability.logging import configure_logging
from tests.conftest import AuthedUser, make_settings
from tests.integration.brokers.conftest import (
    KEY,
    audit_rows,
    counts,
    raw_rows,
    running,
    sessionmaker,
)

URL = "/api/v1/admin/broker-accounts"
SECRET = "kite-secret-" + "s3cr3t" * 4
API_KEY = "kiteapikey0123wxyz"


def kite_body(user_id: int, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user_id": user_id,
        "broker": "kite",
        "broker_user_id": f"AB{uuid.uuid4().hex[:8]}",
        "api_key": API_KEY,
        "api_secret": SECRET,
        "label": "Zerodha main",
    }
    body.update(over)
    return body


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    return dict(body["error"])


async def create(
    client: httpx.AsyncClient, admin: AuthedUser, user_id: int, **over: Any
) -> dict[str, Any]:
    r = await client.post(URL, json=kite_body(user_id, **over), headers=admin.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


# --- CRUD as admin ----------------------------------------------------------------------------


async def test_admin_creates_lists_gets_patches_and_deletes_an_account(
    client: httpx.AsyncClient, app: FastAPI, admin: AuthedUser, trader: AuthedUser
) -> None:
    created = await create(client, admin, trader.id)
    assert created["user_id"] == trader.id
    assert created["broker"] == "kite"
    assert created["label"] == "Zerodha main"
    assert created["api_key_masked"] == "****wxyz"
    assert created["has_secret"] is True
    assert created["secret_store"] == "fernet"
    assert created["live_enabled"] is False
    assert created["live_allowed"] is False
    assert "api_secret" not in created and "api_key" not in created
    account_id = created["id"]

    r = await client.get(URL, params={"user_id": trader.id}, headers=admin.headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == 1 and [a["id"] for a in page["items"]] == [account_id]
    assert page["paper_only"] is True

    r = await client.get(f"{URL}/{account_id}", headers=admin.headers)
    assert r.status_code == 200 and r.json() == created

    r = await client.patch(
        f"{URL}/{account_id}",
        json={"live_enabled": True, "label": None, "api_secret": SECRET + "-rotated"},
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["live_enabled"] is True
    assert patched["live_allowed"] is False  # the platform is paper-only by default
    assert patched["label"] is None
    async with sessionmaker(app)() as db:
        assert await service.load_secrets(db, app.state.qd.settings, account_id) == {
            "api_secret": SECRET + "-rotated"
        }

    r = await client.delete(f"{URL}/{account_id}", headers=admin.headers)
    assert r.status_code == 204 and r.content == b""
    r = await client.get(f"{URL}/{account_id}", headers=admin.headers)
    assert_error(r, 404, "BROKER_ACCOUNT_NOT_FOUND")
    assert [a["action"] for a in await audit_rows(app, account_id)] == [
        "broker_account.create",
        "broker_account.update",
        "broker_account.delete",
    ]


async def test_an_empty_patch_changes_and_audits_nothing(
    client: httpx.AsyncClient, app: FastAPI, admin: AuthedUser, trader: AuthedUser
) -> None:
    created = await create(client, admin, trader.id)
    before = await counts(app)
    r = await client.patch(f"{URL}/{created['id']}", json={}, headers=admin.headers)
    assert r.status_code == 200 and r.json() == created
    assert await counts(app) == before


async def test_an_ib_account_needs_no_app_credentials(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    body = {"user_id": trader.id, "broker": "ib", "broker_user_id": f"DU{uuid.uuid4().hex[:7]}"}
    r = await client.post(URL, json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    assert r.json()["has_secret"] is False and r.json()["secret_store"] is None
    assert r.json()["api_key_masked"] is None


async def test_live_allowed_needs_the_platform_switch_off_and_the_account_enabled(
    db_url: str, tmp_path: Path, make_user: Any
) -> None:
    settings = make_settings(db_url, tmp_path, secrets_key=KEY, paper_only=False)
    async with running(settings) as (_app, client):
        admin = await _login(client, make_user, "admin")
        created = await create(client, admin, admin.id)
        assert created["live_allowed"] is False  # not enabled yet
        r = await client.patch(
            f"{URL}/{created['id']}", json={"live_enabled": True}, headers=admin.headers
        )
        assert r.json()["live_enabled"] is True and r.json()["live_allowed"] is True
        r = await client.get(URL, headers=admin.headers)
        assert r.json()["paper_only"] is False


async def _login(client: httpx.AsyncClient, make_user: Any, role: str) -> AuthedUser:
    from quantdesk.auth.roles import Role

    user: AuthedUser = await make_user(Role(role), login=False)
    r = await client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": user.password}
    )
    assert r.status_code == 200, r.text
    user.access_token = r.json()["access_token"]
    return user


# --- roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["trader", "viewer"])
async def test_traders_and_viewers_are_refused_everywhere(
    role: str,
    client: httpx.AsyncClient,
    app: FastAPI,
    admin: AuthedUser,
    trader: AuthedUser,
    viewer: AuthedUser,
) -> None:
    created = await create(client, admin, trader.id)
    who = trader if role == "trader" else viewer
    before = await counts(app)
    calls = [
        client.get(URL, headers=who.headers),
        client.post(URL, json=kite_body(who.id), headers=who.headers),
        client.get(f"{URL}/{created['id']}", headers=who.headers),
        client.patch(f"{URL}/{created['id']}", json={"live_enabled": True}, headers=who.headers),
        client.delete(f"{URL}/{created['id']}", headers=who.headers),
    ]
    for call in calls:
        assert_error(await call, 403, "FORBIDDEN_ROLE")
    assert await counts(app) == before
    r = await client.get(f"{URL}/{created['id']}", headers=admin.headers)
    assert r.json()["live_enabled"] is False


# --- secrets at rest, in the audit trail and in the logs --------------------------------------


async def test_the_secret_is_stored_encrypted_and_never_shown(
    client: httpx.AsyncClient,
    app: FastAPI,
    admin: AuthedUser,
    trader: AuthedUser,
    capfd: pytest.CaptureFixture[str],
) -> None:
    configure_logging("DEBUG", json=True)  # every line the requests log
    try:
        created = await create(client, admin, trader.id)
        rotated = SECRET + "-second"
        r = await client.patch(
            f"{URL}/{created['id']}",
            json={"api_secret": rotated, "api_key": "newkey0000abcd"},
            headers=admin.headers,
        )
        assert r.status_code == 200, r.text
        listed = (await client.get(URL, headers=admin.headers)).text
        one = (await client.get(f"{URL}/{created['id']}", headers=admin.headers)).text
        audit_api = (
            await client.get(
                "/api/v1/admin/audit",
                params={"target_type": "broker_account", "target_id": str(created["id"])},
                headers=admin.headers,
            )
        ).text
    finally:
        configure_logging("WARNING", json=True)
    logs = capfd.readouterr()

    row = next(r for r in await raw_rows(app) if r["id"] == created["id"])
    blob = row["secret_blob"]
    assert row["secret_store"] == "fernet"
    assert rotated not in blob and SECRET not in blob
    assert json.loads(Fernet(KEY.encode()).decrypt(blob.encode())) == {"api_secret": rotated}
    assert not any(SECRET in str(v) for v in row.values())

    audits = json.dumps(await audit_rows(app, created["id"]))
    for text in (listed, one, audit_api, audits, logs.out, logs.err):
        assert SECRET not in text  # (the rotated secret starts with it)
        assert API_KEY not in text and "newkey0000abcd" not in text
    assert "****abcd" in audits and "secret_rotated" in audits
    assert "broker_account_created" in logs.err  # the logs were captured at all


# --- the key: missing, wrong, rotated ---------------------------------------------------------


async def test_without_a_key_sqlite_makes_one_and_other_databases_refuse(
    db_url: str, backend: str, tmp_path: Path, make_user: Any
) -> None:
    settings = make_settings(db_url, tmp_path)  # no QUANTDESK_SECRETS_KEY, no Vault
    async with running(settings) as (application, client):
        admin = await _login(client, make_user, "admin")
        before = await counts(application)
        r = await client.post(URL, json=kite_body(admin.id), headers=admin.headers)
        key_file = tmp_path / KEY_FILE
        if backend == "sqlite":
            assert r.status_code == 201, r.text
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            blob = next(x for x in await raw_rows(application) if x["id"] == r.json()["id"])
            assert json.loads(Fernet(key_file.read_bytes()).decrypt(blob["secret_blob"])) == {
                "api_secret": SECRET
            }
            return
        error = assert_error(r, 503, "BROKER_SECRETS_UNAVAILABLE")
        assert "QUANTDESK_SECRETS_KEY" in error["message"]
        assert not key_file.exists()
        assert await counts(application) == before
        # An account without a secret needs no key.
        body = {"user_id": admin.id, "broker": "ib", "broker_user_id": f"DU{uuid.uuid4().hex[:6]}"}
        r = await client.post(URL, json=body, headers=admin.headers)
        assert r.status_code == 201, r.text


async def test_a_wrong_key_is_a_clear_error_and_the_old_key_as_second_reads_it(
    client: httpx.AsyncClient, app: FastAPI, admin: AuthedUser, trader: AuthedUser
) -> None:
    created = await create(client, admin, trader.id)
    stored = app.state.qd.settings
    other = Fernet.generate_key().decode()
    wrong = stored.model_copy(update={"secrets_key": SecretStr(other)})
    rotated = stored.model_copy(update={"secrets_key": SecretStr(f"{other},{KEY}")})
    async with sessionmaker(app)() as db:
        with pytest.raises(SecretsUnreadable) as caught:
            await service.load_secrets(db, wrong, created["id"])
        assert caught.value.status_code == 503
        assert "QUANTDESK_SECRETS_KEY" in caught.value.message
        assert SECRET not in caught.value.message
        assert await service.load_secrets(db, rotated, created["id"]) == {"api_secret": SECRET}
    # The API keeps answering: reading an account never decrypts its secret.
    r = await client.get(f"{URL}/{created['id']}", headers=admin.headers)
    assert r.status_code == 200


async def test_without_a_key_reading_a_secret_names_the_setting(
    client: httpx.AsyncClient, app: FastAPI, admin: AuthedUser, trader: AuthedUser, backend: str
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite makes a key of its own")
    created = await create(client, admin, trader.id)
    keyless = app.state.qd.settings.model_copy(update={"secrets_key": None})
    async with sessionmaker(app)() as db:
        with pytest.raises(SecretsUnavailable, match="QUANTDESK_SECRETS_KEY"):
            await service.load_secrets(db, keyless, created["id"])


# --- bad input: 4xx with a code, nothing stored -----------------------------------------------


BAD = [
    pytest.param({"broker": "etrade"}, 422, "BROKER_UNKNOWN", id="unknown broker"),
    pytest.param({"broker": "Kite"}, 422, "BROKER_UNKNOWN", id="broker in the wrong case"),
    pytest.param({"api_secret": None}, 422, "BROKER_CREDENTIALS_REQUIRED", id="kite w/o secret"),
    pytest.param({"api_key": None}, 422, "BROKER_CREDENTIALS_REQUIRED", id="kite w/o key"),
    pytest.param({"user_id": 2_000_000_000}, 422, "BROKER_ACCOUNT_USER_NOT_FOUND", id="no user"),
    pytest.param({"user_id": 0}, 422, "VALIDATION_ERROR", id="user id 0"),
    pytest.param({"broker_user_id": "has space"}, 422, "VALIDATION_ERROR", id="bad broker id"),
    pytest.param({"api_secret": "two\nlines"}, 422, "VALIDATION_ERROR", id="secret w/ newline"),
    pytest.param({"api_secret": ""}, 422, "VALIDATION_ERROR", id="empty secret"),
    pytest.param({"api_key": "x" * 129}, 422, "VALIDATION_ERROR", id="key too long"),
    pytest.param({"label": "a\x00b"}, 422, "VALIDATION_ERROR", id="NUL in label"),
    pytest.param({"live_enabled": True}, 422, "VALIDATION_ERROR", id="live on create"),
    pytest.param({"broker": 3}, 422, "VALIDATION_ERROR", id="broker is a number"),
]


@pytest.mark.parametrize(("over", "status", "code"), BAD)
async def test_bad_input_is_refused_and_stores_nothing(
    over: dict[str, Any],
    status: int,
    code: str,
    client: httpx.AsyncClient,
    app: FastAPI,
    admin: AuthedUser,
    trader: AuthedUser,
) -> None:
    before = await counts(app)
    body = {k: v for k, v in {**kite_body(trader.id), **over}.items() if v is not None}
    r = await client.post(URL, json=body, headers=admin.headers)
    error = assert_error(r, status, code)
    assert SECRET not in json.dumps(error)
    assert await counts(app) == before


@pytest.mark.parametrize("missing", ["user_id", "broker", "broker_user_id"])
async def test_missing_fields_are_refused_and_store_nothing(
    missing: str, client: httpx.AsyncClient, app: FastAPI, admin: AuthedUser, trader: AuthedUser
) -> None:
    before = await counts(app)
    body = kite_body(trader.id)
    del body[missing]
    assert_error(await client.post(URL, json=body, headers=admin.headers), 422, "VALIDATION_ERROR")
    assert await counts(app) == before


async def test_the_same_broker_account_twice_is_409(
    client: httpx.AsyncClient, app: FastAPI, admin: AuthedUser, trader: AuthedUser
) -> None:
    first = await create(client, admin, trader.id)
    before = await counts(app)
    again = kite_body(admin.id, broker_user_id=first["broker_user_id"])
    r = await client.post(URL, json=again, headers=admin.headers)
    assert_error(r, 409, "BROKER_ACCOUNT_EXISTS")
    assert await counts(app) == before
    second = await create(client, admin, admin.id)
    r = await client.patch(
        f"{URL}/{second['id']}",
        json={"broker_user_id": first["broker_user_id"]},
        headers=admin.headers,
    )
    assert_error(r, 409, "BROKER_ACCOUNT_EXISTS")
    assert await counts(app) == (before[0] + 1, before[1] + 1)


BAD_PATCH = [
    pytest.param({"broker": "upstox"}, id="broker is fixed"),
    pytest.param({"user_id": 1}, id="user is fixed"),
    pytest.param({"live_enabled": "yes please"}, id="live flag not a boolean"),
    pytest.param({"live_enabled": "true"}, id="live flag a string"),
    pytest.param({"live_enabled": 1}, id="live flag a number"),
    pytest.param({"api_secret": "with space"}, id="secret with a space"),
]


@pytest.mark.parametrize("body", BAD_PATCH)
async def test_bad_patches_change_nothing(
    body: dict[str, Any],
    client: httpx.AsyncClient,
    app: FastAPI,
    admin: AuthedUser,
    trader: AuthedUser,
) -> None:
    created = await create(client, admin, trader.id)
    before = await counts(app)
    r = await client.patch(f"{URL}/{created['id']}", json=body, headers=admin.headers)
    assert_error(r, 422, "VALIDATION_ERROR")
    assert await counts(app) == before
    assert (await client.get(f"{URL}/{created['id']}", headers=admin.headers)).json() == created


async def test_unknown_accounts_are_404(client: httpx.AsyncClient, admin: AuthedUser) -> None:
    for call in (
        client.get(f"{URL}/2000000000", headers=admin.headers),
        client.patch(f"{URL}/2000000000", json={"label": "x"}, headers=admin.headers),
        client.delete(f"{URL}/2000000000", headers=admin.headers),
    ):
        assert_error(await call, 404, "BROKER_ACCOUNT_NOT_FOUND")
