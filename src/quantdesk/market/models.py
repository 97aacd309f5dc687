"""Market tables: the instruments master."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from quantdesk.core.instruments import InstrumentRef, InstrumentSpec
from quantdesk.db.base import Base
from quantdesk.db.types import Money, UTCDateTime


class Instrument(Base):
    """One tradable (or, for indices, quotable) instrument, named ``EXCHANGE:SYMBOL``.

    ``symbol`` is the exchange's trading symbol (Kite's ``tradingsymbol``). Broker identifiers
    sit in their own nullable columns: Kite's ``instrument_token`` keys its ticker and
    historical data. ``price_band_pct`` is a percentage around the previous close (NULL: no
    band); :meth:`spec` turns the row into the rules the trading core applies.
    """

    __tablename__ = "instruments"
    __table_args__ = (
        UniqueConstraint("exchange", "symbol"),
        CheckConstraint("lot_size > 0", name="lot_size_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exchange: Mapped[str] = mapped_column(String(16))
    symbol: Mapped[str] = mapped_column(String(48))
    name: Mapped[str] = mapped_column(String(128))
    isin: Mapped[str | None] = mapped_column(String(12), nullable=True, index=True)
    segment: Mapped[str] = mapped_column(String(16))
    instrument_type: Mapped[str] = mapped_column(String(16))
    tick_size: Mapped[Decimal] = mapped_column(Money)
    lot_size: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="INR")
    price_band_pct: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    kite_instrument_token: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    kite_exchange_token: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def ref(self) -> InstrumentRef:
        return InstrumentRef(self.exchange, self.symbol)

    def spec(self) -> InstrumentSpec:
        return InstrumentSpec(
            tick_size=self.tick_size,
            lot_size=self.lot_size,
            price_band_pct=self.price_band_pct,
            currency=self.currency,
        )
