"""ml: training jobs run over the API (status, progress, request, result, error)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from quantdesk.db.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ml_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("stage", sa.JSON(), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ml_runs")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_ml_runs_user_id_users")),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_ml_runs_status_known"),
        ),
        sa.CheckConstraint(
            "progress >= 0 AND progress <= 1", name=op.f("ck_ml_runs_progress_fraction")
        ),
    )
    op.create_index(op.f("ix_ml_runs_status"), "ml_runs", ["status"])
    op.create_index("ix_ml_runs_user_id_created_at", "ml_runs", ["user_id", "created_at", "id"])
    op.create_index("ix_ml_runs_created_at_id", "ml_runs", ["created_at", "id"])


def downgrade() -> None:
    op.drop_table("ml_runs")
