"""Risk tables: limits per scope (``default`` for the platform, ``user:<id>`` per account) and
the risk state per scope (``global`` and ``user:<id>``): kill switch and halt."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Date, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from quantdesk.db.base import Base
from quantdesk.db.types import Money, UTCDateTime

DEFAULT_SCOPE = "default"
GLOBAL_SCOPE = "global"


def user_scope(user_id: int) -> str:
    return f"user:{user_id}"


class RiskLimitsRow(Base):
    """One scope's limits; NULL is "no limit" for the default and "use the default" for an
    account. Lists (exchanges, products) are comma-separated."""

    __tablename__ = "risk_limits"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    max_order_quantity: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_order_value: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    max_position_value: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    max_gross_exposure: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    max_open_orders: Mapped[int | None] = mapped_column(Integer, nullable=True)
    allowed_exchanges: Mapped[str | None] = mapped_column(String(256), nullable=True)
    allowed_products: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fat_finger_pct: Mapped[Decimal | None] = mapped_column(Numeric(9, 4), nullable=True)
    max_orders_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    daily_loss_limit: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    max_drawdown_pct: Mapped[Decimal | None] = mapped_column(Numeric(9, 4), nullable=True)
    square_off_on_halt: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RiskStateRow(Base):
    """One scope's kill switch and (accounts only) halt, and the equity peak the drawdown is
    measured from (``peak_flows``: net deposits at the peak, so cash moved in or out is not
    counted as profit or loss)."""

    __tablename__ = "risk_state"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    kill_engaged: Mapped[bool] = mapped_column(Boolean, default=False)
    kill_reason: Mapped[str | None] = mapped_column(String(256), nullable=True)
    kill_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kill_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    halt_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    halt_reason: Mapped[str | None] = mapped_column(String(256), nullable=True)
    halted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    halt_day: Mapped[date | None] = mapped_column(Date, nullable=True)
    peak_equity: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    peak_flows: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
