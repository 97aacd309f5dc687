"""Response shapes of the charges API (the CLI's --json too). Money travels as strings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, Field

from quantdesk.core.charges import PAISA, ChargesBreakdown, Exchange, Segment


def money_text(value: Decimal) -> str:
    """Rupees with at least two decimals, never exponent form (``86.06``, ``100000.00``)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    return format(value.quantize(PAISA) if exponent > -2 else value, "f")


class ChargesEstimateOut(BaseModel):
    segment: Segment
    exchange: Exchange
    trade_date: date = Field(description="The day whose rates apply")
    broker: str = Field(description="Broker tariff used for brokerage and DP", examples=["zerodha"])
    schedule_from: date = Field(description="Start of the statutory schedule row applied")
    quantity: int
    buy_price: str = Field(examples=["1000.00"])
    sell_price: str = Field(examples=["1100.00"])
    buy_turnover: str = Field(description="Buy price x quantity", examples=["100000.00"])
    sell_turnover: str = Field(description="Sell price x quantity", examples=["110000.00"])
    turnover: str = Field(description="Buy + sell turnover", examples=["210000.00"])
    brokerage: str = Field(description="Per executed order (two orders), to the paisa")
    stt: str = Field(description="Securities transaction tax, to the rupee")
    exchange_charge: str = Field(description="Exchange transaction charge incl. IPF, to the paisa")
    sebi_fee: str = Field(description="SEBI turnover fee, to the paisa")
    stamp_duty: str = Field(description="On the buy, to the rupee")
    gst: str = Field(description="18% of brokerage + exchange charge + SEBI fee, to the paisa")
    dp_charge: str = Field(description="Depository charge of a delivery sell, GST included")
    total: str = Field(description="Sum of the charges", examples=["86.06"])
    gross_pnl: str = Field(description="(sell - buy) x quantity", examples=["10000.00"])
    net_pnl: str = Field(description="Gross P&L minus total charges", examples=["9913.94"])
    breakeven_points: str = Field(
        description="Price move per share that pays the charges, to the paisa", examples=["0.86"]
    )

    @classmethod
    def of(cls, b: ChargesBreakdown) -> ChargesEstimateOut:
        return cls(
            segment=b.segment,
            exchange=b.exchange,
            trade_date=b.trade_date,
            broker=b.broker,
            schedule_from=b.schedule_from,
            quantity=b.quantity,
            buy_price=money_text(b.buy_price),
            sell_price=money_text(b.sell_price),
            buy_turnover=money_text(b.buy_turnover),
            sell_turnover=money_text(b.sell_turnover),
            turnover=money_text(b.turnover),
            **{name: money_text(v) for name, v in b.charges.as_dict().items()},
            total=money_text(b.total),
            gross_pnl=money_text(b.gross_pnl),
            net_pnl=money_text(b.net_pnl),
            breakeven_points=money_text(b.breakeven_points),
        )
