"""risk: limits per scope and risk state (kill switches, halts, equity peak)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from quantdesk.db.types import Money, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    limits = op.create_table(
        "risk_limits",
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("max_order_quantity", sa.BigInteger(), nullable=True),
        sa.Column("max_order_value", Money(), nullable=True),
        sa.Column("max_position_value", Money(), nullable=True),
        sa.Column("max_gross_exposure", Money(), nullable=True),
        sa.Column("max_open_orders", sa.Integer(), nullable=True),
        sa.Column("allowed_exchanges", sa.String(256), nullable=True),
        sa.Column("allowed_products", sa.String(64), nullable=True),
        sa.Column("fat_finger_pct", sa.Numeric(9, 4), nullable=True),
        sa.Column("max_orders_per_minute", sa.Integer(), nullable=True),
        sa.Column("daily_loss_limit", Money(), nullable=True),
        sa.Column("max_drawdown_pct", sa.Numeric(9, 4), nullable=True),
        sa.Column("square_off_on_halt", sa.Boolean(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_risk_limits")),
    )
    state = op.create_table(
        "risk_state",
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("kill_engaged", sa.Boolean(), nullable=False),
        sa.Column("kill_reason", sa.String(256), nullable=True),
        sa.Column("kill_by", sa.Integer(), nullable=True),
        sa.Column("kill_at", UTCDateTime(), nullable=True),
        sa.Column("halt_kind", sa.String(16), nullable=True),
        sa.Column("halt_reason", sa.String(256), nullable=True),
        sa.Column("halted_at", UTCDateTime(), nullable=True),
        sa.Column("halt_day", sa.Date(), nullable=True),
        sa.Column("peak_equity", Money(), nullable=True),
        sa.Column("peak_flows", Money(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_risk_state")),
    )
    now = datetime.now(UTC)
    # The platform defaults (no limits until an admin sets them) and the global kill switch:
    # both always exist, so placing an order can lock the global row.
    op.bulk_insert(limits, [{"scope": "default", "updated_at": now}])
    op.bulk_insert(state, [{"scope": "global", "kill_engaged": False, "updated_at": now}])


def downgrade() -> None:
    op.drop_table("risk_state")
    op.drop_table("risk_limits")
