"""Ledger tables: journal entries and their postings (append-only), and the cached balance of
every account (updated only by :func:`quantdesk.wallet.service.post`, in the same transaction)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from quantdesk.db.base import Base
from quantdesk.db.types import Money, UTCDateTime

# BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements there).
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class JournalEntryRow(Base):
    """One balanced journal entry. Never updated or deleted (the database refuses both)."""

    __tablename__ = "journal_entries"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    memo: Mapped[str] = mapped_column(Text, default="")
    # What caused the entry (an order, a trade, a deposit request); several entries may share it.
    ref: Mapped[str] = mapped_column(String(128), default="", index=True)
    # Set when a caller must apply something at most once (a broker trade id, a request key).
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)


class PostingRow(Base):
    """One line of an entry. Never updated or deleted (the database refuses both)."""

    __tablename__ = "postings"
    __table_args__ = (Index("ix_postings_account_currency", "account", "currency", "entry_id"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(_BigId, ForeignKey("journal_entries.id"), index=True)
    account: Mapped[str] = mapped_column(String(128))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(Money)


class AccountBalance(Base):
    """The sum of an account's postings in one currency: a cache that ``ledger verify`` checks."""

    __tablename__ = "account_balances"

    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    balance: Mapped[Decimal] = mapped_column(Money)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
