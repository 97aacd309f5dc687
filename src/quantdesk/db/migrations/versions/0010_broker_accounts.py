"""broker accounts: a user's account at a live broker, its secrets encrypted or in Vault

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from quantdesk.db.types import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("broker", sa.String(16), nullable=False),
        sa.Column("broker_user_id", sa.String(64), nullable=False),
        sa.Column("label", sa.String(64), nullable=True),
        sa.Column("api_key", sa.String(128), nullable=True),
        # The secrets: a Fernet ciphertext or a Vault path, never plaintext.
        sa.Column("secret_store", sa.String(8), nullable=True),
        sa.Column("secret_blob", sa.Text(), nullable=True),
        sa.Column("live_enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broker_accounts")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_broker_accounts_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.UniqueConstraint(
            "broker", "broker_user_id", name=op.f("uq_broker_accounts_broker_user")
        ),
        sa.CheckConstraint(
            "broker IN ('kite', 'upstox', 'ib')", name=op.f("ck_broker_accounts_broker_known")
        ),
        sa.CheckConstraint(
            "secret_store IS NULL OR secret_store IN ('fernet', 'vault')",
            name=op.f("ck_broker_accounts_store_known"),
        ),
        sa.CheckConstraint(
            "(secret_store IS NULL) = (secret_blob IS NULL)",
            name=op.f("ck_broker_accounts_secret_has_store"),
        ),
    )
    op.create_index("ix_broker_accounts_user_id", "broker_accounts", ["user_id"])


def downgrade() -> None:
    op.drop_table("broker_accounts")
