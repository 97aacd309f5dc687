"""OMS tables: orders, their stored transitions, trades (one per broker fill) and positions.

Only accepted orders are stored: a request refused by validation, the market-hours check or the
funds check gets a 4xx and leaves no row (DESIGN invariant 8). ``REJECTED`` is for a broker
refusing an order it had accepted.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from quantdesk.db.base import Base
from quantdesk.db.types import ExactDecimal, Money, UTCDateTime

# BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements there).
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class OrderRow(Base):
    """One order. ``held_amount`` is what is still reserved for it in the user's held account;
    ``hold_price`` is the worst-case price that hold was computed at (the paper broker never
    fills a buy above it or a sell below it: its market protection)."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("user_id", "client_order_id", name="uq_orders_user_id_client_order_id"),
        Index("ix_orders_user_id_created_at", "user_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    client_order_id: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64), index=True)
    side: Mapped[str] = mapped_column(String(4))
    order_type: Mapped[str] = mapped_column(String(8))
    product: Mapped[str] = mapped_column(String(8))
    time_in_force: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[int] = mapped_column(BigInteger)
    limit_price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    stop_price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    filled_quantity: Mapped[int] = mapped_column(BigInteger, default=0)
    filled_value: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(20), index=True)
    triggered: Mapped[bool] = mapped_column(Boolean, default=False)
    currency: Mapped[str] = mapped_column(String(3))
    held_amount: Mapped[Decimal] = mapped_column(Money)
    hold_price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OrderEventRow(Base):
    """One stored transition (DESIGN invariant 4): time, reason, and the fill it carried."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(256))
    quantity: Mapped[int] = mapped_column(BigInteger, default=0)
    price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    trade_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class TradeRow(Base):
    """One fill. ``broker_trade_id`` is unique: a fill delivered twice is applied once
    (DESIGN invariant 5). Ids are prefixed by the broker (``paper:...``)."""

    __tablename__ = "trades"
    __table_args__ = (Index("ix_trades_user_id_at", "user_id", "at", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))
    product: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[int] = mapped_column(BigInteger)
    price: Mapped[Decimal] = mapped_column(Money)
    fees: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    broker_trade_id: Mapped[str] = mapped_column(String(96), unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class PositionRow(Base):
    """A net position per user, symbol and product (CNC delivery and MIS intraday are apart,
    as at a broker): the fold of its trades (core.positions). ``margin`` is what an MIS
    position blocks in the user's margin account (zero for CNC)."""

    __tablename__ = "positions"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    product: Mapped[str] = mapped_column(String(8), primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    open_cost: Mapped[Decimal] = mapped_column(ExactDecimal)
    realised_pnl: Mapped[Decimal] = mapped_column(ExactDecimal)
    fees: Mapped[Decimal] = mapped_column(Money)
    margin: Mapped[Decimal] = mapped_column(Money)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
