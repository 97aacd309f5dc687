"""Broker accounts: connect a user's broker account, change it, remove it; read its secrets.

Every change is audited with its non-secret fields only (the API key masked, a rotated secret
as a flag). Input is checked before anything is written; a secret goes to its store before the
row is committed, and a secret written for a row that then fails to commit is removed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from quantdesk.auth.models import User
from quantdesk.brokers.accounts import BrokerAccountRow, mask_key
from quantdesk.brokers.base import BrokerId
from quantdesk.brokers.schemas import BROKER_NAMES
from quantdesk.brokers.secrets import SecretStore, secret_store, store_for
from quantdesk.errors import Conflict, NotFound, ValidationFailed
from quantdesk.observability import audit
from quantdesk.settings import Settings

log = structlog.get_logger("quantdesk.brokers")

# Brokers whose apps authenticate with an API key and secret (IB's TWS API does not).
NEEDS_APP_CREDENTIALS = frozenset({BrokerId.KITE, BrokerId.UPSTOX})


@dataclass(frozen=True, slots=True)
class NewAccount:
    user_id: int
    broker: str
    broker_user_id: str
    api_key: str | None = None
    api_secret: str | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class AccountChange:
    """``None``: unchanged (``label`` too, unless ``clear_label``)."""

    label: str | None = None
    clear_label: bool = False
    broker_user_id: str | None = None
    api_key: str | None = None
    api_secret: str | None = None
    live_enabled: bool | None = None


def _broker(name: str) -> BrokerId:
    if name not in BROKER_NAMES:
        raise ValidationFailed(
            f"Unknown broker {name!r}; one of {', '.join(BROKER_NAMES)}.",
            code="BROKER_UNKNOWN",
            details={"broker": name, "known": list(BROKER_NAMES)},
        )
    return BrokerId(name)


def _exists(broker: str, broker_user_id: str) -> Conflict:
    return Conflict(
        f"A {broker} account {broker_user_id!r} is already connected.",
        code="BROKER_ACCOUNT_EXISTS",
        details={"broker": broker, "broker_user_id": broker_user_id},
    )


async def _taken(db: AsyncSession, broker: str, broker_user_id: str, but: int | None) -> bool:
    query = select(BrokerAccountRow.id).where(
        BrokerAccountRow.broker == broker, BrokerAccountRow.broker_user_id == broker_user_id
    )
    if but is not None:
        query = query.where(BrokerAccountRow.id != but)
    return (await db.execute(query.limit(1))).first() is not None


def _facts(row: BrokerAccountRow) -> dict[str, Any]:
    """The account as the audit trail records it: no secret, the key masked."""
    return {
        "user_id": row.user_id,
        "broker": row.broker,
        "broker_user_id": row.broker_user_id,
        "label": row.label,
        "api_key": mask_key(row.api_key),
        "has_secret": row.has_secret,
        "secret_store": row.secret_store,
        "live_enabled": row.live_enabled,
    }


async def _forget(store: SecretStore, stored: str) -> None:
    """Best effort: a secret left in Vault by a failed write or a removed account."""
    try:
        await store.delete(stored)
    except Exception as exc:  # logged; never the secret, only where it was
        log.warning("broker_secret_not_removed", store=store.kind.value, error=type(exc).__name__)


async def create_account(
    db: AsyncSession, settings: Settings, actor: audit.Actor, new: NewAccount
) -> BrokerAccountRow:
    broker = _broker(new.broker)
    if broker in NEEDS_APP_CREDENTIALS and (new.api_key is None or new.api_secret is None):
        missing = [f for f in ("api_key", "api_secret") if getattr(new, f) is None]
        raise ValidationFailed(
            f"A {broker.value} account needs the app's api_key and api_secret.",
            code="BROKER_CREDENTIALS_REQUIRED",
            details={"broker": broker.value, "missing": missing},
        )
    if await db.get(User, new.user_id) is None:
        raise ValidationFailed(
            f"User {new.user_id} does not exist.",
            code="BROKER_ACCOUNT_USER_NOT_FOUND",
            details={"user_id": new.user_id},
        )
    if await _taken(db, broker.value, new.broker_user_id, None):
        raise _exists(broker.value, new.broker_user_id)
    store: SecretStore | None = None
    stored: str | None = None
    if new.api_secret is not None:
        store = secret_store(settings)
        stored = await store.put({"api_secret": new.api_secret})
    now = datetime.now(UTC)
    row = BrokerAccountRow(
        user_id=new.user_id,
        broker=broker.value,
        broker_user_id=new.broker_user_id,
        label=new.label,
        api_key=new.api_key,
        secret_store=None if store is None else store.kind.value,
        secret_blob=stored,
        live_enabled=False,
        created_at=now,
        updated_at=now,
    )
    try:
        db.add(row)
        await db.flush()
        audit.record(
            db,
            actor,
            "broker_account.create",
            target_type="broker_account",
            target_id=row.id,
            changes=_facts(row),
        )
        await db.commit()
    except IntegrityError as exc:  # a concurrent create of the same account won the race
        await db.rollback()
        if store is not None and stored is not None:
            await _forget(store, stored)
        raise _exists(broker.value, new.broker_user_id) from exc
    log.info("broker_account_created", account_id=row.id, broker=row.broker, user_id=row.user_id)
    return row


async def list_accounts(
    db: AsyncSession,
    *,
    user_id: int | None = None,
    broker: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[Sequence[BrokerAccountRow], int]:
    where = []
    if user_id is not None:
        where.append(BrokerAccountRow.user_id == user_id)
    if broker is not None:
        where.append(BrokerAccountRow.broker == broker)
    total = (
        await db.execute(select(func.count()).select_from(BrokerAccountRow).where(*where))
    ).scalar_one()
    rows = await db.execute(
        select(BrokerAccountRow)
        .where(*where)
        .order_by(BrokerAccountRow.id)
        .limit(limit)
        .offset(offset)
    )
    return rows.scalars().all(), total


async def get_account(db: AsyncSession, account_id: int) -> BrokerAccountRow:
    row = await db.get(BrokerAccountRow, account_id)
    if row is None:
        raise NotFound(
            f"Broker account {account_id} not found.",
            code="BROKER_ACCOUNT_NOT_FOUND",
            details={"account_id": account_id},
        )
    return row


async def update_account(
    db: AsyncSession,
    settings: Settings,
    actor: audit.Actor,
    account_id: int,
    change: AccountChange,
) -> BrokerAccountRow:
    row = await get_account(db, account_id)
    changes: dict[str, Any] = {}

    def apply(name: str, value: object) -> None:
        old = getattr(row, name)
        if value == old:
            return
        if name == "api_key":  # the audit trail shows keys as the API does: masked
            changes[name] = {"from": mask_key(old), "to": mask_key(str(value))}
        else:
            changes[name] = {"from": old, "to": value}
        setattr(row, name, value)

    if change.broker_user_id is not None and change.broker_user_id != row.broker_user_id:
        if await _taken(db, row.broker, change.broker_user_id, row.id):
            raise _exists(row.broker, change.broker_user_id)
        apply("broker_user_id", change.broker_user_id)
    if change.label is not None or change.clear_label:
        apply("label", change.label)
    if change.api_key is not None:
        apply("api_key", change.api_key)
    if change.live_enabled is not None:
        apply("live_enabled", change.live_enabled)
    old_store, old_blob = row.secret_store, row.secret_blob
    new_store: SecretStore | None = None
    if change.api_secret is not None:
        new_store = secret_store(settings)
        previous = old_blob if old_store == new_store.kind.value else None
        row.secret_blob = await new_store.put({"api_secret": change.api_secret}, previous)
        row.secret_store = new_store.kind.value
        changes["secret_rotated"] = True
        if old_store != row.secret_store:
            changes["secret_store"] = {"from": old_store, "to": row.secret_store}
    if not changes:
        return row
    row.updated_at = datetime.now(UTC)
    audit.record(
        db,
        actor,
        "broker_account.update",
        target_type="broker_account",
        target_id=row.id,
        changes=changes,
    )
    try:
        await db.commit()
    except IntegrityError as exc:
        await db.rollback()
        if new_store is not None and row.secret_blob is not None and row.secret_blob != old_blob:
            await _forget(new_store, row.secret_blob)
        raise _exists(row.broker, change.broker_user_id or "") from exc
    if old_store is not None and old_blob is not None and old_store != row.secret_store:
        await _forget(store_for(old_store, settings), old_blob)  # moved from Vault to Fernet
    log.info("broker_account_updated", account_id=row.id, fields=sorted(changes))
    return row


async def delete_account(
    db: AsyncSession, settings: Settings, actor: audit.Actor, account_id: int
) -> None:
    row = await get_account(db, account_id)
    facts = _facts(row)
    kind, blob = row.secret_store, row.secret_blob
    await db.delete(row)
    audit.record(
        db,
        actor,
        "broker_account.delete",
        target_type="broker_account",
        target_id=account_id,
        changes=facts,
    )
    await db.commit()
    if kind is not None and blob is not None:
        try:
            store = store_for(kind, settings)
        except Exception as exc:  # Vault no longer configured: the secret stays there
            log.warning("broker_secret_not_removed", store=kind, error=type(exc).__name__)
        else:
            await _forget(store, blob)
    log.info("broker_account_deleted", account_id=account_id)


async def load_secrets(db: AsyncSession, settings: Settings, account_id: int) -> dict[str, str]:
    """The account's secrets in clear, for an adapter: ``{}`` when it has none. Raises
    ``BROKER_SECRETS_UNREADABLE`` (wrong key, gone from Vault) or
    ``BROKER_SECRETS_UNAVAILABLE`` (no key, Vault down) with the setting to fix."""
    row = await get_account(db, account_id)
    if row.secret_store is None or row.secret_blob is None:
        return {}
    return await store_for(row.secret_store, settings).get(row.secret_blob)
