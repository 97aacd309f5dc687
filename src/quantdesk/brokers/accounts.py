"""Broker accounts: a user's account at a live broker (the ``broker_accounts`` table), and the
one rule deciding whether an order may go to it (:func:`live_allowed`).

The API key is stored as is (Kite puts it in the login URL; it identifies the app, it does not
authenticate it) but only ever shown masked. The secrets (API secret, later the broker
session's token) are never in a column in clear: ``secret_blob`` is a Fernet ciphertext, or
the path of the secret in Vault (:mod:`quantdesk.brokers.secrets`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from quantdesk.db.base import Base
from quantdesk.db.types import UTCDateTime
from quantdesk.settings import Settings


class BrokerAccountRow(Base):
    __tablename__ = "broker_accounts"
    __table_args__ = (
        # One platform account per account at a broker: two would trade the same money twice.
        UniqueConstraint("broker", "broker_user_id", name="uq_broker_accounts_broker_user"),
        Index("ix_broker_accounts_user_id", "user_id"),
        CheckConstraint("broker IN ('kite', 'upstox', 'ib')", name="broker_known"),
        CheckConstraint(
            "secret_store IS NULL OR secret_store IN ('fernet', 'vault')", name="store_known"
        ),
        CheckConstraint("(secret_store IS NULL) = (secret_blob IS NULL)", name="secret_has_store"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    broker: Mapped[str] = mapped_column(String(16))
    broker_user_id: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    api_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    secret_store: Mapped[str | None] = mapped_column(String(8), nullable=True)
    secret_blob: Mapped[str | None] = mapped_column(Text, nullable=True)
    live_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def has_secret(self) -> bool:
        return self.secret_blob is not None


class LiveSwitch(Protocol):
    """What :func:`live_allowed` reads of an account (a row, or a test's stand-in)."""

    @property
    def live_enabled(self) -> bool: ...


def live_allowed(account: LiveSwitch, settings: Settings) -> bool:
    """May orders of ``account`` go to its live broker? Only when the platform is not
    paper-only (``QUANTDESK_PAPER_ONLY=false``) AND an admin enabled live trading on this
    account. Everything else trades on paper."""
    return not settings.paper_only and account.live_enabled is True


def mask_key(value: str | None) -> str | None:
    """``****abcd``: the last four characters of a key at least eight long, else only stars."""
    if value is None:
        return None
    return "****" + (value[-4:] if len(value) >= 8 else "")
