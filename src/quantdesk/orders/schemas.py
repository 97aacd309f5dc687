"""Request and response shapes of the orders, trades and positions API. Money and prices are
decimal strings; quantities are JSON integers."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from quantdesk.api.types import NO_NUL
from quantdesk.core.orders import OrderStatus, OrderType, Product, Side, TimeInForce
from quantdesk.core.positions import Position
from quantdesk.orders.models import OrderEventRow, OrderRow, PositionRow, TradeRow
from quantdesk.wallet.service import money_str

MAX_ORDER_QUANTITY = 10_000_000
MAX_PRICE_TEXT = 24
# Documented, enforced by the service (so every bad value answers with an ORDER_* code).
_PRICE_SCHEMA = {"pattern": r"^[0-9]{1,10}(\.[0-9]{1,4})?$", "maxLength": MAX_PRICE_TEXT}
_QUANTITY_SCHEMA = {"minimum": 1, "maximum": MAX_ORDER_QUANTITY}
CLIENT_ORDER_ID = r"^[A-Za-z0-9_.:-]{1,40}$"
ORDER_ID = r"^[0-9a-f]{32}$"
CURSOR = r"^[0-9]{1,17}-[0-9a-f]{32}$"

PriceText = Annotated[
    str,
    Field(
        description="A plain decimal string on the instrument's tick, e.g. 1500.05. Errors: "
        "ORDER_BAD_PRICE, ORDER_PRICE_OFF_TICK, ORDER_OUTSIDE_BAND.",
        json_schema_extra=_PRICE_SCHEMA,
    ),
]
Quantity = Annotated[
    int,
    Field(
        strict=True,
        description=f"Whole lots, 1 to {MAX_ORDER_QUANTITY}. Errors: ORDER_BAD_QUANTITY.",
        json_schema_extra=_QUANTITY_SCHEMA,
    ),
]


def price_str(value: Decimal | None) -> str | None:
    """A price or amount as text with at least two places, never an exponent."""
    return None if value is None else money_str(value, "INR")


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_order_id: Annotated[
        str | None,
        Field(
            pattern=CLIENT_ORDER_ID,
            description="Your id for the order, unique per account: resubmitting it returns the "
            "original order (200) instead of placing a second one.",
        ),
    ] = None
    symbol: Annotated[
        str, Field(min_length=1, max_length=64, pattern=NO_NUL, examples=["NSE:INFY"])
    ]
    side: Side
    quantity: Quantity
    order_type: OrderType
    limit_price: PriceText | None = None
    stop_price: PriceText | None = None
    product: Product = Product.CNC
    time_in_force: TimeInForce = TimeInForce.DAY


class OrderPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: Quantity | None = None
    limit_price: PriceText | None = None
    stop_price: PriceText | None = None


class OrderEventOut(BaseModel):
    action: str
    from_status: str
    to_status: str
    reason: str
    quantity: int
    price: str | None
    trade_id: str | None
    at: datetime

    @classmethod
    def of(cls, e: OrderEventRow) -> OrderEventOut:
        return cls(
            action=e.action,
            from_status=e.from_status,
            to_status=e.to_status,
            reason=e.reason,
            quantity=e.quantity,
            price=price_str(e.price),
            trade_id=e.trade_id,
            at=e.at,
        )


class OrderOut(BaseModel):
    id: str
    client_order_id: str
    user_id: int
    symbol: str
    side: Side
    order_type: OrderType
    product: Product
    time_in_force: TimeInForce
    quantity: int
    limit_price: str | None
    stop_price: str | None
    filled_quantity: int
    average_price: str | None = Field(description="Volume-weighted mean fill price")
    status: OrderStatus
    reason: str | None = Field(
        description="Why the order is in its status: the reason of its last stored transition "
        "(e.g. 'cancelled by user', 'margin shortfall: ...', 'kill switch: ...', 'risk halt: "
        "...', 'MIS square-off', an expiry or the broker's rejection; 'accepted', 'filled' ...)"
    )
    triggered: bool
    currency: str
    held_amount: str = Field(description="Cash still reserved for the order")
    hold_price: str | None = Field(
        description="The worst-case price the hold was computed at; the paper engine cancels "
        "the rest of an order rather than fill it beyond this price (market protection)"
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, o: OrderRow, reason: str | None = None) -> OrderOut:
        """``reason``: the last transition's (:mod:`quantdesk.orders.reasons`, or the event
        just stored); every API response and stream frame passes it."""
        average = None
        if o.filled_quantity:
            average = (o.filled_value / o.filled_quantity).quantize(Decimal("0.0001"))
        return cls(
            id=o.id,
            client_order_id=o.client_order_id,
            user_id=o.user_id,
            symbol=o.symbol,
            side=Side(o.side),
            order_type=OrderType(o.order_type),
            product=Product(o.product),
            time_in_force=TimeInForce(o.time_in_force),
            quantity=o.quantity,
            limit_price=price_str(o.limit_price),
            stop_price=price_str(o.stop_price),
            filled_quantity=o.filled_quantity,
            average_price=price_str(average),
            status=OrderStatus(o.status),
            reason=reason,
            triggered=o.triggered,
            currency=o.currency,
            held_amount=money_str(o.held_amount, o.currency),
            hold_price=price_str(o.hold_price),
            created_at=o.created_at,
            updated_at=o.updated_at,
        )


class OrderDetailOut(OrderOut):
    events: list[OrderEventOut]


class OrderPageOut(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None


class TradeOut(BaseModel):
    id: str
    order_id: str
    user_id: int
    symbol: str
    side: Side
    product: Product
    quantity: int
    price: str
    fees: str
    currency: str
    broker_trade_id: str
    at: datetime

    @classmethod
    def of(cls, t: TradeRow) -> TradeOut:
        return cls(
            id=t.id,
            order_id=t.order_id,
            user_id=t.user_id,
            symbol=t.symbol,
            side=Side(t.side),
            product=Product(t.product),
            quantity=t.quantity,
            price=money_str(t.price, t.currency),
            fees=money_str(t.fees, t.currency),
            currency=t.currency,
            broker_trade_id=t.broker_trade_id,
            at=t.at,
        )


class TradePageOut(BaseModel):
    items: list[TradeOut]
    next_cursor: str | None


_PNL_PLACES = Decimal("0.01")


class PositionOut(BaseModel):
    user_id: int
    symbol: str
    product: str = Field(description="CNC (delivery) or MIS (intraday)")
    quantity: int = Field(description="Signed: negative is short")
    average_price: str | None
    realised_pnl: str = Field(description="Gross of fees")
    fees: str
    net_realised_pnl: str
    last_price: str | None = Field(description="Mark: the latest quote (or last close)")
    unrealised_pnl: str | None
    day_pnl: str | None = Field(
        description="Today's P&L, gross of fees: the change in value since the last close "
        "(null without a mark, or without a last close for a quantity carried in)"
    )
    margin: str = Field(description="Margin blocked for an open MIS position")
    updated_at: datetime

    @classmethod
    def of(cls, row: PositionRow, mark: Decimal | None, day: Decimal | None) -> PositionOut:
        p = Position(row.symbol, row.quantity, row.open_cost, row.realised_pnl, row.fees)
        avg = p.average_price
        unrealised = None if mark is None else p.unrealised_pnl(mark).quantize(_PNL_PLACES)
        return cls(
            user_id=row.user_id,
            symbol=row.symbol,
            product=row.product,
            quantity=row.quantity,
            average_price=price_str(None if avg is None else avg.quantize(Decimal("0.0001"))),
            realised_pnl=money_str(p.realised_pnl.quantize(_PNL_PLACES), "INR"),
            fees=money_str(p.fees, "INR"),
            net_realised_pnl=money_str(p.net_realised_pnl.quantize(_PNL_PLACES), "INR"),
            last_price=price_str(mark),
            unrealised_pnl=price_str(unrealised),
            day_pnl=None if day is None else money_str(day.quantize(_PNL_PLACES), "INR"),
            margin=money_str(row.margin, "INR"),
            updated_at=row.updated_at,
        )
