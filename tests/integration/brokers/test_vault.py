"""Broker secrets in HashiCorp Vault (KV v2, through hvac) when QUANTDESK_VAULT_ADDR is set,
against a local server speaking Vault's HTTP API: the row keeps only the path."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from quantdesk.auth.roles import Role
from quantdesk.brokers import service
from quantdesk.brokers.secrets import SecretsUnavailable, SecretsUnreadable
from tests.conftest import AuthedUser
from tests.integration.brokers.conftest import (
    MOUNT,
    FakeVault,
    audit_rows,
    counts,
    raw_rows,
    running,
    sessionmaker,
    vault_settings,
)

URL = "/api/v1/admin/broker-accounts"
SECRET = "upstox-secret-" + "v4ult" * 4


def upstox_body(user_id: int) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "broker": "upstox",
        "broker_user_id": f"UC{uuid.uuid4().hex[:8]}",
        "api_key": str(uuid.uuid4()),
        "api_secret": SECRET,
    }


async def _admin(client: httpx.AsyncClient, make_user: Any) -> AuthedUser:
    user: AuthedUser = await make_user(Role.ADMIN, login=False)
    r = await client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": user.password}
    )
    assert r.status_code == 200, r.text
    user.access_token = r.json()["access_token"]
    return user


async def test_secrets_round_trip_through_vault(
    db_url: str, tmp_path: Path, vault: FakeVault, make_user: Any
) -> None:
    settings = vault_settings(db_url, tmp_path, vault)
    async with running(settings) as (app, client):
        admin = await _admin(client, make_user)
        r = await client.post(URL, json=upstox_body(admin.id), headers=admin.headers)
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["secret_store"] == "vault" and created["has_secret"] is True
        assert SECRET not in r.text

        row = next(x for x in await raw_rows(app) if x["id"] == created["id"])
        path = row["secret_blob"]
        assert row["secret_store"] == "vault"
        assert path.startswith("qd-test/broker-accounts/") and SECRET not in path
        assert vault.latest(path) == {"api_secret": SECRET}
        assert ("POST", f"/v1/{MOUNT}/data/{path}") in vault.requests

        async with sessionmaker(app)() as db:
            assert await service.load_secrets(db, settings, created["id"]) == {"api_secret": SECRET}

        # Rotating writes a new version at the same path.
        r = await client.patch(
            f"{URL}/{created['id']}", json={"api_secret": SECRET + "2"}, headers=admin.headers
        )
        assert r.status_code == 200, r.text
        assert vault.latest(path) == {"api_secret": SECRET + "2"}
        assert len(vault.secrets[path]) == 2
        assert SECRET not in json.dumps(await audit_rows(app, created["id"]))

        # Removing the account removes its secret from Vault.
        r = await client.delete(f"{URL}/{created['id']}", headers=admin.headers)
        assert r.status_code == 204
        assert path not in vault.secrets
        assert ("DELETE", f"/v1/{MOUNT}/metadata/{path}") in vault.requests


async def test_a_bad_vault_token_is_a_503_naming_the_setting_and_stores_nothing(
    db_url: str, tmp_path: Path, vault: FakeVault, make_user: Any
) -> None:
    settings = vault_settings(db_url, tmp_path, vault, vault_token="hvs.wrong")
    async with running(settings) as (app, client):
        admin = await _admin(client, make_user)
        before = await counts(app)
        r = await client.post(URL, json=upstox_body(admin.id), headers=admin.headers)
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "BROKER_SECRETS_UNAVAILABLE"
        assert "QUANTDESK_VAULT_TOKEN" in error["message"]
        assert "hvs.wrong" not in r.text
        assert await counts(app) == before and vault.secrets == {}


async def test_vault_down_is_a_503_and_stores_nothing(
    db_url: str, tmp_path: Path, vault: FakeVault, make_user: Any
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    settings = vault_settings(db_url, tmp_path, vault, vault_addr=closed, vault_timeout_seconds=2)
    async with running(settings) as (app, client):
        admin = await _admin(client, make_user)
        before = await counts(app)
        r = await client.post(URL, json=upstox_body(admin.id), headers=admin.headers)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "BROKER_SECRETS_UNAVAILABLE"
        assert "QUANTDESK_VAULT_ADDR" in r.json()["error"]["message"]
        assert await counts(app) == before


async def test_a_secret_gone_from_vault_or_vault_unset_is_a_clear_error(
    db_url: str, tmp_path: Path, vault: FakeVault, make_user: Any
) -> None:
    settings = vault_settings(db_url, tmp_path, vault)
    async with running(settings) as (app, client):
        admin = await _admin(client, make_user)
        r = await client.post(URL, json=upstox_body(admin.id), headers=admin.headers)
        account_id = r.json()["id"]
        async with sessionmaker(app)() as db:
            unset = settings.model_copy(update={"vault_addr": None})
            with pytest.raises(SecretsUnavailable, match="QUANTDESK_VAULT_ADDR"):
                await service.load_secrets(db, unset, account_id)
            vault.secrets.clear()
            with pytest.raises(SecretsUnreadable, match="missing from Vault"):
                await service.load_secrets(db, settings, account_id)
