"""instruments master

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from quantdesk.db.types import Money, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instruments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exchange", sa.String(16), nullable=False),
        sa.Column("symbol", sa.String(48), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("isin", sa.String(12), nullable=True),
        sa.Column("segment", sa.String(16), nullable=False),
        sa.Column("instrument_type", sa.String(16), nullable=False),
        # Money: NUMERIC(28, 8) on PostgreSQL, exact decimal text on SQLite. No CHECKs on these:
        # SQLite would compare the text with a number and always pass; the service validates.
        sa.Column("tick_size", Money(), nullable=False),
        sa.Column("lot_size", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("price_band_pct", Money(), nullable=True),
        sa.Column("kite_instrument_token", sa.BigInteger(), nullable=True),
        sa.Column("kite_exchange_token", sa.BigInteger(), nullable=True),
        sa.Column("last_price", Money(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instruments")),
        sa.UniqueConstraint("exchange", "symbol", name=op.f("uq_instruments_exchange")),
        sa.CheckConstraint("lot_size > 0", name=op.f("ck_instruments_lot_size_positive")),
    )
    op.create_index(op.f("ix_instruments_isin"), "instruments", ["isin"])
    op.create_index(
        op.f("ix_instruments_kite_instrument_token"), "instruments", ["kite_instrument_token"]
    )


def downgrade() -> None:
    op.drop_table("instruments")
