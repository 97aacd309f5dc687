"""alert inbox: the alerts delivered to each user, with their read state (GET /api/v1/alerts)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from quantdesk.db.types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_inbox",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("similar", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("read_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_inbox")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_alert_inbox_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "severity IN ('info', 'warning', 'error', 'critical')",
            name=op.f("ck_alert_inbox_severity_known"),
        ),
    )
    # A user's alerts newest first (NULL user_id, the admins' platform-wide alerts, included).
    op.create_index("ix_alert_inbox_user_id_id", "alert_inbox", ["user_id", "id"])
    # The retention's DELETE of old rows.
    op.create_index("ix_alert_inbox_created_at", "alert_inbox", ["created_at"])


def downgrade() -> None:
    op.drop_table("alert_inbox")
