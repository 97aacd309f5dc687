"""orders: orders, order events, trades (unique broker trade id) and positions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from quantdesk.db.types import ExactDecimal, Money, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("order_type", sa.String(8), nullable=False),
        sa.Column("product", sa.String(8), nullable=False),
        sa.Column("time_in_force", sa.String(8), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("limit_price", Money(), nullable=True),
        sa.Column("stop_price", Money(), nullable=True),
        sa.Column("filled_quantity", sa.BigInteger(), nullable=False),
        sa.Column("filled_value", Money(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("triggered", sa.Boolean(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("held_amount", Money(), nullable=False),
        sa.Column("hold_price", Money(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_orders_user_id_users")),
        sa.UniqueConstraint("user_id", "client_order_id", name="uq_orders_user_id_client_order_id"),
    )
    op.create_index(op.f("ix_orders_symbol"), "orders", ["symbol"])
    op.create_index(op.f("ix_orders_status"), "orders", ["status"])
    op.create_index("ix_orders_user_id_created_at", "orders", ["user_id", "created_at", "id"])
    op.create_table(
        "order_events",
        sa.Column("id", _BigId, nullable=False),
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=False),
        sa.Column("to_status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("price", Money(), nullable=True),
        sa.Column("trade_id", sa.String(64), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_events_order_id_orders")
        ),
    )
    op.create_index(op.f("ix_order_events_order_id"), "order_events", ["order_id"])
    op.create_table(
        "trades",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("product", sa.String(8), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("price", Money(), nullable=False),
        sa.Column("fees", Money(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("broker_trade_id", sa.String(96), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trades")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_trades_order_id_orders")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_trades_user_id_users")),
        sa.UniqueConstraint("broker_trade_id", name=op.f("uq_trades_broker_trade_id")),
    )
    op.create_index(op.f("ix_trades_order_id"), "trades", ["order_id"])
    op.create_index("ix_trades_user_id_at", "trades", ["user_id", "at", "id"])
    op.create_table(
        "positions",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("product", sa.String(8), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("open_cost", ExactDecimal(), nullable=False),
        sa.Column("realised_pnl", ExactDecimal(), nullable=False),
        sa.Column("fees", Money(), nullable=False),
        sa.Column("margin", Money(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "symbol", "product", name=op.f("pk_positions")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_positions_user_id_users")),
    )


def downgrade() -> None:
    op.drop_table("positions")
    op.drop_table("trades")
    op.drop_table("order_events")
    op.drop_table("orders")
