"""Where broker secrets live: encrypted in the database with a Fernet key, or in HashiCorp Vault.

A broker account's secrets (its API secret; later the broker session's access token) are one
small JSON object. :class:`FernetStore` encrypts it into the account row; :class:`VaultStore`
writes it to Vault's KV v2 engine and the row keeps only the path. Which store writes new
secrets follows the settings (:func:`secret_store`): Vault when ``QUANTDESK_VAULT_ADDR`` is
set, else Fernet. A row is always read back by the store that wrote it (its ``secret_store``).

The Fernet key (:func:`fernet_keys`): ``QUANTDESK_SECRETS_KEY`` (comma-separated: the first
encrypts, all decrypt, so keys can be rotated); if unset, the embedded SQLite default makes one
once into ``<data_dir>/secrets_key`` (mode 600), as it does the JWT secret; any other database
refuses to store secrets (503 ``BROKER_SECRETS_UNAVAILABLE``) until a key or Vault is set.

Nothing here logs or raises a secret's value: errors name the setting to fix, never the data.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import anyio
import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from quantdesk.errors import AppError
from quantdesk.settings import Settings

log = structlog.get_logger("quantdesk.brokers.secrets")

KEY_FILE = "secrets_key"

Secrets = Mapping[str, str]


class StoreKind(StrEnum):
    FERNET = "fernet"
    VAULT = "vault"


class SecretsUnavailable(AppError):
    """No store can take or give secrets now (no key configured, Vault unreachable)."""

    status_code = 503
    code = "BROKER_SECRETS_UNAVAILABLE"


class SecretsUnreadable(AppError):
    """A stored secret exists but cannot be read back (wrong key, deleted in Vault)."""

    status_code = 503
    code = "BROKER_SECRETS_UNREADABLE"


class SecretStore(Protocol):
    kind: StoreKind

    async def put(self, values: Secrets, previous: str | None = None) -> str:
        """Store ``values``; what the account row keeps (a ciphertext, or a Vault path).
        ``previous`` is what the row held before (a Vault secret is overwritten in place)."""

    async def get(self, stored: str) -> dict[str, str]:
        """The secrets from what :meth:`put` returned."""

    async def delete(self, stored: str) -> None:
        """Forget the secrets (nothing to do for a ciphertext in a deleted row)."""


# --- Fernet -----------------------------------------------------------------------------------


def _serialise(values: Secrets) -> bytes:
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":")).encode()


def _deserialise(raw: bytes | str) -> dict[str, str]:
    data = json.loads(raw)
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError("not a JSON object of strings")
    return data


class FernetStore:
    """Secrets encrypted (AES-128-CBC + HMAC-SHA256, with a timestamp and random IV) into the
    row. The same secrets encrypt differently each time."""

    kind = StoreKind.FERNET

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def encrypt(self, values: Secrets) -> str:
        return self._fernet.encrypt(_serialise(values)).decode("ascii")

    def decrypt(self, token: str) -> dict[str, str]:
        try:
            return _deserialise(self._fernet.decrypt(token.encode("ascii")))
        except (InvalidToken, UnicodeEncodeError, ValueError) as exc:
            raise SecretsUnreadable(
                "A stored broker secret cannot be decrypted with QUANTDESK_SECRETS_KEY: the key "
                "changed or is wrong. Put the key it was stored with back (keys rotate with "
                "QUANTDESK_SECRETS_KEY=<new>,<old>), or store the secret again.",
                details={"store": self.kind.value},
            ) from exc

    async def put(self, values: Secrets, previous: str | None = None) -> str:
        return self.encrypt(values)

    async def get(self, stored: str) -> dict[str, str]:
        return self.decrypt(stored)

    async def delete(self, stored: str) -> None:
        return None


def fernet_keys(settings: Settings) -> list[bytes]:
    """The configured Fernet keys, first the one that encrypts (see the module docstring)."""
    if settings.secrets_key is not None:
        return [k.encode("ascii") for k in settings.secrets_key.get_secret_value().split(",")]
    if not settings.is_sqlite:
        raise SecretsUnavailable(
            "Broker secrets cannot be stored: QUANTDESK_SECRETS_KEY is not set (a Fernet key; "
            "make one with `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`), nor is QUANTDESK_VAULT_ADDR.",
            details={"settings": ["QUANTDESK_SECRETS_KEY", "QUANTDESK_VAULT_ADDR"]},
        )
    return [_embedded_key(settings.data_dir / KEY_FILE)]


def _embedded_key(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Fernet.generate_key()
    # O_EXCL: two processes making the key at once must agree on one.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    log.info("secrets_key_created", path=str(path))
    return key


# --- Vault ------------------------------------------------------------------------------------


class VaultStore:
    """Secrets in Vault's KV v2 engine at ``<mount>/data/<vault_path>/broker-accounts/<id>``
    (a random id: the path says nothing about the account). hvac is synchronous (requests),
    so every call runs in a worker thread."""

    kind = StoreKind.VAULT

    def __init__(
        self, addr: str, token: str | None, mount: str, prefix: str, timeout: float
    ) -> None:
        import hvac  # imported here: only installations using Vault pay for it

        self._client = hvac.Client(url=addr, token=token, timeout=timeout)
        self.mount = mount.strip("/")
        self.prefix = prefix.strip("/")

    def new_path(self) -> str:
        return f"{self.prefix}/broker-accounts/{secrets.token_hex(16)}"

    async def put(self, values: Secrets, previous: str | None = None) -> str:
        path = previous or self.new_path()
        kv = self._client.secrets.kv.v2
        await self._call(
            "write",
            kv.create_or_update_secret,
            path=path,
            secret=dict(values),
            mount_point=self.mount,
        )
        return path

    async def get(self, stored: str) -> dict[str, str]:
        kv = self._client.secrets.kv.v2
        answer = await self._call(
            "read",
            kv.read_secret_version,
            path=stored,
            mount_point=self.mount,
            raise_on_deleted_version=True,
        )
        try:
            data = answer["data"]["data"]
            if not isinstance(data, dict):
                raise TypeError("data is not an object")
            return {str(k): str(v) for k, v in data.items()}
        except (KeyError, TypeError) as exc:
            raise SecretsUnreadable(
                "Vault's answer holds no secret data.", details={"store": self.kind.value}
            ) from exc

    async def delete(self, stored: str) -> None:
        kv = self._client.secrets.kv.v2
        await self._call(
            "delete", kv.delete_metadata_and_all_versions, path=stored, mount_point=self.mount
        )

    async def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        import hvac.exceptions
        import requests

        try:
            return await anyio.to_thread.run_sync(lambda: fn(**kwargs))
        except hvac.exceptions.InvalidPath as exc:
            raise SecretsUnreadable(
                "The broker secret is missing from Vault (deleted there?); store it again.",
                details={"store": self.kind.value},
            ) from exc
        except hvac.exceptions.Forbidden as exc:
            log.warning("vault_refused", operation=what, error=type(exc).__name__)
            raise SecretsUnavailable(
                "Vault refused the request (permission denied): check QUANTDESK_VAULT_TOKEN and "
                "its policy on QUANTDESK_VAULT_MOUNT / QUANTDESK_VAULT_PATH.",
                details={"store": self.kind.value, "operation": what},
            ) from exc
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            log.warning("vault_failed", operation=what, error=type(exc).__name__)
            raise SecretsUnavailable(
                "Vault did not answer the request: check QUANTDESK_VAULT_ADDR and that Vault is "
                "up and unsealed.",
                details={"store": self.kind.value, "operation": what},
            ) from exc


# --- choosing a store -------------------------------------------------------------------------


def vault_store(settings: Settings) -> VaultStore:
    if not settings.vault_addr:
        raise SecretsUnavailable(
            "This broker account's secret is in Vault, but QUANTDESK_VAULT_ADDR is not set.",
            details={"settings": ["QUANTDESK_VAULT_ADDR", "QUANTDESK_VAULT_TOKEN"]},
        )
    token = settings.vault_token.get_secret_value() if settings.vault_token else None
    return VaultStore(
        settings.vault_addr,
        token,
        settings.vault_mount,
        settings.vault_path,
        settings.vault_timeout_seconds,
    )


def secret_store(settings: Settings) -> SecretStore:
    """The store new secrets go to: Vault when configured, else Fernet."""
    if settings.vault_addr:
        return vault_store(settings)
    return FernetStore(fernet_keys(settings))


def store_for(kind: str, settings: Settings) -> SecretStore:
    """The store that wrote a row's secrets (to read or delete them)."""
    if kind == StoreKind.VAULT:
        return vault_store(settings)
    return FernetStore(fernet_keys(settings))
