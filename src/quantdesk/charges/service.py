"""Charges use cases shared by the HTTP router and the command line: parse raw input into the
core's types (every problem an :class:`~quantdesk.errors.ValidationFailed` with a ``CHARGES_*``
code and the offending parameter) and run the calculator."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from quantdesk.core.charges import (
    ChargesBreakdown,
    ChargesError,
    Exchange,
    Segment,
    check_quantity,
    default_calculator,
    parse_price,
    parse_trade_date,
)
from quantdesk.errors import ValidationFailed

EXCHANGE_TZ = ZoneInfo("Asia/Kolkata")

T = TypeVar("T")


def exchange_today(now: datetime | None = None) -> date:
    """Today's trade date on NSE/BSE (the calendar day in India, not in UTC)."""
    return (now or datetime.now(EXCHANGE_TZ)).astimezone(EXCHANGE_TZ).date()


def _param(parameter: str, parse: Callable[[], T]) -> T:
    try:
        return parse()
    except ChargesError as exc:
        raise ValidationFailed(str(exc), code=exc.code, details={"parameter": parameter}) from exc


def estimate(
    segment: Segment,
    exchange: Exchange,
    buy: str,
    sell: str,
    quantity: int,
    trade_date: str | None = None,
) -> ChargesBreakdown:
    """A round trip's charges, P&L and break-even from raw input: prices as decimal text, the
    trade date as ``YYYY-MM-DD`` (default: today in India)."""
    buy_price = _param("buy", lambda: parse_price(buy, "buy price"))
    sell_price = _param("sell", lambda: parse_price(sell, "sell price"))
    qty = _param("quantity", lambda: check_quantity(quantity))
    day = (
        exchange_today()
        if trade_date is None
        else _param("date", lambda: parse_trade_date(trade_date))
    )
    return _param(
        "date",
        lambda: default_calculator().estimate(segment, exchange, buy_price, sell_price, qty, day),
    )
