"""The broker adapter interface and the normalised values every adapter speaks.

An adapter (Kite, Upstox, IB; the paper broker too) translates between one broker's wire
formats and these values: its order types, products, validities and statuses become the OMS's
(:mod:`quantdesk.core.orders`), its errors become a :class:`BrokerError` with a platform code,
its candles and quotes the core's :class:`~quantdesk.core.market.Bar` and
:class:`~quantdesk.core.market.Quote`. Symbols are always the platform's ``EXCHANGE:SYMBOL``;
the broker's own keys (Kite's instrument token, Upstox's ``NSE_EQ|ISIN``, IB's conId) stay
inside the adapter. Money and prices are ``Decimal``; times are aware UTC.

The interface is two protocols, so a broker that only executes (the paper broker, which fills
against the platform's own feed) implements :class:`BrokerExecution` alone, and one that also
serves market data implements :class:`BrokerAdapter`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, Protocol, runtime_checkable

from quantdesk.core.market import Bar, Quote
from quantdesk.core.orders import Order, OrderStatus, OrderType, Product, Side, TimeInForce
from quantdesk.errors import AppError

__all__ = [
    "LIVE_BROKERS",
    "BrokerAdapter",
    "BrokerError",
    "BrokerErrorCode",
    "BrokerExecution",
    "BrokerHolding",
    "BrokerId",
    "BrokerInstrument",
    "BrokerMarketData",
    "BrokerOrder",
    "BrokerPosition",
    "BrokerTrade",
    "BrokerUpdate",
    "Funds",
    "OrderChange",
    "OrderRequest",
    "derive_status",
]


class BrokerId(StrEnum):
    PAPER = "paper"
    KITE = "kite"  # Zerodha Kite Connect v3
    UPSTOX = "upstox"  # Upstox API v2
    IB = "ib"  # Interactive Brokers TWS / IB Gateway


LIVE_BROKERS: Final = frozenset({BrokerId.KITE, BrokerId.UPSTOX, BrokerId.IB})


# --- errors -----------------------------------------------------------------------------------


class BrokerErrorCode(StrEnum):
    """What went wrong at the broker, as the platform names it; the broker's own code and
    message travel alongside (:class:`BrokerError`)."""

    AUTH = "BROKER_AUTH"  # credentials wrong or the session expired: log in again
    INPUT = "BROKER_INPUT"  # the broker refused the request's content
    ORDER_REJECTED = "BROKER_ORDER_REJECTED"  # the order was refused (RMS, exchange, product)
    MARGIN = "BROKER_MARGIN"  # not enough funds or margin at the broker
    HOLDING = "BROKER_HOLDING"  # selling what the demat account does not hold
    INSTRUMENT = "BROKER_UNKNOWN_INSTRUMENT"  # the broker does not know the instrument
    NOT_FOUND = "BROKER_ORDER_NOT_FOUND"  # no such order at the broker
    RATE_LIMITED = "BROKER_RATE_LIMITED"  # 429 or the broker's own cap: retry later
    UNAVAILABLE = "BROKER_UNAVAILABLE"  # network error, timeout, 5xx: the outcome is unknown
    DATA = "BROKER_DATA"  # the broker's answer could not be understood
    OTHER = "BROKER_ERROR"


# HTTP status of each code when it reaches an API client. Never 401: that status means the
# caller's own platform token, and the web UI would log the user out.
_HTTP_STATUS: Final[Mapping[BrokerErrorCode, int]] = {
    BrokerErrorCode.AUTH: 409,  # a valid request, but the broker session must be renewed
    BrokerErrorCode.INPUT: 422,
    BrokerErrorCode.ORDER_REJECTED: 422,
    BrokerErrorCode.MARGIN: 422,
    BrokerErrorCode.HOLDING: 422,
    BrokerErrorCode.INSTRUMENT: 422,
    BrokerErrorCode.NOT_FOUND: 404,
    BrokerErrorCode.RATE_LIMITED: 429,
    BrokerErrorCode.UNAVAILABLE: 503,
    BrokerErrorCode.DATA: 502,
    BrokerErrorCode.OTHER: 502,
}

_RETRYABLE: Final = frozenset({BrokerErrorCode.RATE_LIMITED, BrokerErrorCode.UNAVAILABLE})


class BrokerError(AppError):
    """A broker refused or failed a request. ``code`` is the platform's
    (:class:`BrokerErrorCode`); ``broker_code`` and ``broker_message`` are the broker's own
    (Kite's ``error_type``, Upstox's ``errorCode``, IB's error number), kept for the user and
    the order's rejection reason. ``retry_after`` (seconds) comes from a rate limit answer."""

    def __init__(
        self,
        broker: BrokerId,
        code: BrokerErrorCode,
        broker_message: str,
        *,
        broker_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        headers = None
        if retry_after is not None:
            headers = {"Retry-After": str(max(1, round(retry_after)))}
        super().__init__(
            f"{broker.value}: {broker_message}",
            code=code.value,
            status_code=_HTTP_STATUS[code],
            details={
                "broker": broker.value,
                "broker_code": broker_code,
                "broker_message": broker_message,
            },
            headers=headers,
        )
        self.broker = broker
        self.error_code = code
        self.broker_code = broker_code
        self.broker_message = broker_message
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Whether sending the same request again may succeed. An UNAVAILABLE placement's
        outcome is unknown: reconcile (:meth:`BrokerExecution.orders`) before resending."""
        return self.error_code in _RETRYABLE


# --- orders and trades ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order as the OMS accepted it, to be sent to the broker. ``tag`` identifies it at the
    broker (our client order id, the platform and the strategy deployment; the adapter
    shortens it to the broker's limit, e.g. Kite's 20 characters)."""

    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: int
    product: Product = Product.CNC
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    tag: str = ""

    @classmethod
    def from_order(cls, order: Order, *, tag: str = "") -> OrderRequest:
        return cls(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            order_type=order.order_type,
            quantity=order.quantity,
            product=order.product,
            time_in_force=order.time_in_force,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            tag=tag,
        )


@dataclass(frozen=True, slots=True)
class OrderChange:
    """A modification of a working order; ``None`` leaves a field as it is. ``quantity`` is
    the new total quantity (filled part included), as in the OMS."""

    quantity: int | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    order_type: OrderType | None = None


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """One order as the broker reports it. ``status`` is the OMS's status (:func:`derive_status`
    turns the broker's open-with-fills into PARTIALLY_FILLED); ``broker_status`` and
    ``status_message`` are the broker's words (a rejection's reason)."""

    broker: BrokerId
    broker_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    product: Product
    quantity: int
    filled_quantity: int
    status: OrderStatus
    broker_status: str
    updated_at: datetime
    average_price: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    client_order_id: str | None = None  # from the tag, when the order was ours
    exchange_order_id: str | None = None
    status_message: str | None = None

    @property
    def pending_quantity(self) -> int:
        return self.quantity - self.filled_quantity


@dataclass(frozen=True, slots=True)
class BrokerTrade:
    """One fill. ``trade_id`` is the broker's (the OMS applies a fill once per trade id).
    ``charges`` are the broker's own figures where it reports them (contract note, charges
    API); ``None`` means the ledger estimates them with the charges model."""

    broker: BrokerId
    trade_id: str
    broker_order_id: str
    symbol: str
    side: Side
    quantity: int
    price: Decimal
    ts: datetime
    product: Product = Product.CNC
    exchange_trade_id: str | None = None
    charges: Mapping[str, Decimal] | None = None


BrokerUpdate = BrokerOrder | BrokerTrade
"""What :meth:`BrokerExecution.updates` yields: an order's new state, or a fill."""


# --- portfolio and funds ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    """A net position; ``quantity`` is signed (negative: short)."""

    symbol: str
    product: Product
    quantity: int
    average_price: Decimal
    realised_pnl: Decimal = Decimal(0)
    last_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class BrokerHolding:
    """Delivered (demat) holdings; ``t1_quantity`` is bought but not yet settled."""

    symbol: str
    quantity: int
    average_price: Decimal
    t1_quantity: int = 0
    last_price: Decimal | None = None
    isin: str | None = None


@dataclass(frozen=True, slots=True)
class Funds:
    """Funds and margins in one currency (one segment, where the broker splits them)."""

    currency: str
    available: Decimal  # what new orders may use
    used_margin: Decimal  # blocked by open orders and positions
    total: Decimal  # net: available + used, as the broker reports it
    segment: str = "equity"


# --- instruments ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerInstrument:
    """One row of the broker's instruments master, with the broker's own key for it."""

    symbol: str  # EXCHANGE:SYMBOL
    broker_key: str  # Kite instrument_token, Upstox instrument_key, IB conId
    name: str
    tick_size: Decimal
    lot_size: int
    instrument_type: str  # EQ, FUT, CE, PE, INDEX, ...
    segment: str = ""
    expiry: date | None = None
    strike: Decimal | None = None
    isin: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


# --- status mapping ---------------------------------------------------------------------------


def derive_status(base: OrderStatus, filled_quantity: int, quantity: int) -> OrderStatus:
    """The OMS status of a broker order whose status maps to ``base``: brokers report a live
    order with some fills as still open (Kite ``OPEN``, IB ``Submitted``), which the OMS calls
    PARTIALLY_FILLED; a cancelled, expired or rejected order keeps its terminal status."""
    if base in (OrderStatus.NEW, OrderStatus.OPEN) and 0 < filled_quantity < quantity:
        return OrderStatus.PARTIALLY_FILLED
    if base in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED) and filled_quantity >= quantity:
        return OrderStatus.FILLED
    return base


# --- the interface ----------------------------------------------------------------------------


@runtime_checkable
class BrokerExecution(Protocol):
    """Orders and the account at one broker, for one connected broker account.

    Every method raises :class:`BrokerError` for a refusal or failure at the broker and
    nothing else (an adapter maps its transport's exceptions)."""

    @property
    def broker(self) -> BrokerId: ...

    async def connect(self) -> None:
        """Log in or check the session, and start receiving updates. Raises a
        :class:`BrokerError` with code ``BROKER_AUTH`` when the user must log in again."""

    async def close(self) -> None:
        """Stop the update stream and release connections; idempotent."""

    async def place(self, request: OrderRequest) -> str:
        """Send a new order; the broker's order id. An ``BROKER_UNAVAILABLE`` error leaves the
        outcome unknown (find the order by its tag in :meth:`orders` before resending)."""

    async def modify(self, broker_order_id: str, change: OrderChange) -> None:
        """Change a working order (quantity, prices, type)."""

    async def cancel(self, broker_order_id: str) -> None:
        """Cancel a working order (its remainder, after partial fills)."""

    def updates(self) -> AsyncIterator[BrokerUpdate]:
        """Order and trade updates as they happen: pushed where the broker pushes (postbacks,
        WebSocket), polled otherwise. The same update may arrive twice, and an update may
        arrive before :meth:`place` returns; consumers key orders by broker order id and fills
        by trade id."""

    async def orders(self) -> Sequence[BrokerOrder]:
        """Today's orders at the broker (reconciliation after a restart or a lost stream)."""

    async def trades(self) -> Sequence[BrokerTrade]:
        """Today's fills at the broker."""

    async def positions(self) -> Sequence[BrokerPosition]: ...

    async def holdings(self) -> Sequence[BrokerHolding]: ...

    async def funds(self) -> Sequence[Funds]: ...


@runtime_checkable
class BrokerMarketData(Protocol):
    """The broker's reference and market data."""

    async def instruments(self, exchange: str | None = None) -> Sequence[BrokerInstrument]:
        """The instruments master (all of it, or one exchange's)."""

    async def candles(
        self, symbol: str, interval: str, start: datetime, end: datetime
    ) -> Sequence[Bar]:
        """Historical candles in ``[start, end]``; ``interval`` is the platform's candle
        interval (``1m``, ``5m``, ``15m``, ``30m``, ``1h``, ``1d``, as in
        :data:`quantdesk.market.candles.INTERVALS`), mapped to the broker's."""

    async def quotes(self, symbols: Sequence[str]) -> Mapping[str, Quote]:
        """A snapshot quote per known symbol (unknown symbols are left out)."""

    def stream_quotes(self, symbols: Sequence[str]) -> AsyncIterator[Quote]:
        """Live quotes for ``symbols`` from the broker's feed, resubscribing after a
        reconnect (this is what ``QUANTDESK_FEED=<broker>`` puts on the bus)."""


@runtime_checkable
class BrokerAdapter(BrokerExecution, BrokerMarketData, Protocol):
    """A live broker: execution and market data."""
