"""Request and response shapes of the market API. Decimals travel as strings."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from quantdesk.market.models import Instrument


def plain_decimal(value: Decimal) -> str:
    """``Decimal`` as plain text without trailing zeros (``0.05``, ``20``), never exponent form:
    PostgreSQL hands back NUMERIC(28, 8) padding, SQLite the text as written."""
    return format(value.normalize(), "f")


def price_text(value: Decimal, tick: Decimal) -> str:
    """A price with the tick's precision and at least two decimals (``1441.80``, ``168.77``)."""
    exponent = value.normalize().as_tuple().exponent
    tick_exponent = tick.normalize().as_tuple().exponent
    assert isinstance(exponent, int) and isinstance(tick_exponent, int)
    places = max(2, -tick_exponent, -exponent)
    return format(value.quantize(Decimal(1).scaleb(-places)), "f")


class InstrumentOut(BaseModel):
    ref: str = Field(description="EXCHANGE:SYMBOL, e.g. NSE:INFY", examples=["NSE:INFY"])
    exchange: str
    symbol: str
    name: str
    isin: str | None
    segment: str
    instrument_type: str = Field(description="EQ, INDEX, ...")
    tick_size: str = Field(description="Decimal string", examples=["0.05"])
    lot_size: int
    currency: str
    price_band_pct: str | None = Field(
        description="Allowed move from the previous close, in percent (decimal string); "
        "null: no band",
        examples=["20"],
    )
    last_price: str | None = Field(description="Decimal string; demo or last imported price")
    kite_instrument_token: int | None
    kite_exchange_token: int | None
    is_active: bool
    updated_at: datetime

    @classmethod
    def of(cls, inst: Instrument) -> InstrumentOut:
        return cls(
            ref=str(inst.ref),
            exchange=inst.exchange,
            symbol=inst.symbol,
            name=inst.name,
            isin=inst.isin,
            segment=inst.segment,
            instrument_type=inst.instrument_type,
            tick_size=plain_decimal(inst.tick_size),
            lot_size=inst.lot_size,
            currency=inst.currency,
            price_band_pct=(
                None if inst.price_band_pct is None else plain_decimal(inst.price_band_pct)
            ),
            last_price=(
                None if inst.last_price is None else price_text(inst.last_price, inst.tick_size)
            ),
            kite_instrument_token=inst.kite_instrument_token,
            kite_exchange_token=inst.kite_exchange_token,
            is_active=inst.is_active,
            updated_at=inst.updated_at,
        )


class InstrumentList(BaseModel):
    items: list[InstrumentOut]


class ImportIssueOut(BaseModel):
    row: int | None = Field(description="1-based data row (header not counted); null: the file")
    line: int | None = Field(description="Line in the file")
    column: str | None
    code: str
    message: str


class ImportReportOut(BaseModel):
    accepted: bool
    rows_read: int
    valid: int
    bad_rows: int
    inserted: int
    updated: int
    unchanged: int
    skipped: dict[str, int] = Field(description="Rows of unsupported types, by instrument_type")
    issue_count: int
    issues: list[ImportIssueOut] = Field(description="The first 100 issues")


class CandleOut(BaseModel):
    time: datetime = Field(description="Start of the candle (UTC)")
    open: str
    high: str
    low: str
    close: str
    volume: int


class CandleSeries(BaseModel):
    symbol: str = Field(examples=["NSE:INFY"])
    interval: str = Field(examples=["5m"])
    timezone: str = Field(description="The exchange's time zone; candles align to its sessions")
    candles: list[CandleOut]
    truncated: bool = Field(description="True when only the latest `limit` candles are returned")


class QuoteOut(BaseModel):
    symbol: str
    last: str
    bid: str
    ask: str
    volume: int = Field(description="Volume traded in the session so far")
    ts: datetime


class QuoteList(BaseModel):
    quotes: list[QuoteOut]
    missing: list[str] = Field(description="Requested symbols with no quote yet")
