"""ledger: journal entries and postings (append-only) and cached account balances

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from quantdesk.db.types import Money, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "journal_entries",
        sa.Column("id", _BigId, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("memo", sa.Text(), nullable=False),
        sa.Column("ref", sa.String(128), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_entries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_journal_entries_idempotency_key")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_journal_entries_created_by_users")
        ),
    )
    op.create_index(op.f("ix_journal_entries_kind"), "journal_entries", ["kind"])
    op.create_index(op.f("ix_journal_entries_ref"), "journal_entries", ["ref"])
    op.create_index(op.f("ix_journal_entries_created_at"), "journal_entries", ["created_at"])
    op.create_table(
        "postings",
        sa.Column("id", _BigId, nullable=False),
        sa.Column("entry_id", _BigId, nullable=False),
        sa.Column("account", sa.String(128), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        # Money: NUMERIC(28, 8) on PostgreSQL, exact decimal text on SQLite (no CHECKs on it:
        # SQLite would compare text with a number); the posting service validates amounts.
        sa.Column("amount", Money(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postings")),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["journal_entries.id"],
            name=op.f("fk_postings_entry_id_journal_entries"),
        ),
    )
    op.create_index(op.f("ix_postings_entry_id"), "postings", ["entry_id"])
    op.create_index("ix_postings_account_currency", "postings", ["account", "currency", "entry_id"])
    op.create_table(
        "account_balances",
        sa.Column("account", sa.String(128), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("balance", Money(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account", "currency", name=op.f("pk_account_balances")),
    )
    _append_only("journal_entries")
    _append_only("postings")


def _append_only(table: str) -> None:
    """The database refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL) on ``table``.

    On PostgreSQL the triggers call qd_refuse_change(), created by revision 0001."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION qd_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION qd_refuse_change()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
            )


def downgrade() -> None:
    # Dropping a table drops its triggers; qd_refuse_change() belongs to 0001.
    op.drop_table("account_balances")
    op.drop_table("postings")
    op.drop_table("journal_entries")
