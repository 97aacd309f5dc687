"""The backtest's in-memory account: orders, fills, positions and cash, on the pure core.

Orders go through the core state machine (:mod:`quantdesk.core.orders`), fills come from the
shared fill model (:mod:`quantdesk.core.fills`), fees from the run's cost model, positions fold
fills with :mod:`quantdesk.core.positions`, and pre-trade limits use :mod:`quantdesk.core.risk`.
Nothing here touches a database, a clock or the network: the engine passes every time in.

Cash rules (the backtest's wallet):

- A CNC buy is paid in full at the fill; if at the fill price it would cost more than the
  available cash, its quantity is reduced to what the cash affords,
  ``floor(cash / (fill * (1 + rate)))`` whole lots, and further (one lot at a time) while the
  fill's charges would still take cash below zero; an order that affords nothing is cancelled.
- MIS orders need margin: what they open, at ``value / leverage``, must fit in the available
  cash; MIS positions may be short. Available cash is cash plus the value of open MIS positions
  at entry, less their margin.
- A CNC sell needs the CNC holding (no short delivery sells): refused at placement otherwise.
- A CNC buy sold the same day is recharged as intraday in cash, as the OMS does
  (:class:`~quantdesk.backtest.costs.SameDay`); the fills keep their delivery charges.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Final

from quantdesk.core import orders as core
from quantdesk.core.charges import Charges
from quantdesk.core.errors import DomainError
from quantdesk.core.fills import FillModel, match
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.core.market import Bar, Quote, round_to_tick
from quantdesk.core.orders import Order, OrderStatus, OrderType, Product, Side, TimeInForce
from quantdesk.core.positions import Fill, Position
from quantdesk.core.risk import OrderContext, RiskLimits, RiskViolation, check_order

from .costs import CostModel, SameDay, trade_date

__all__ = ["Book", "BookFill", "Working", "to_price", "trusted_bar"]

_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)


@functools.cache
def _quantum(tick: Decimal) -> Decimal:
    round_to_tick(tick, tick)  # validates the tick
    exponent = tick.as_tuple().exponent
    assert isinstance(exponent, int)
    return Decimal(1).scaleb(min(exponent, 0))


_PRICES: dict[tuple[float, Decimal], Decimal] = {}
_PRICES_MAX = 1 << 18


def to_price(value: float, tick: Decimal) -> Decimal:
    """A stored float price as a Decimal on the tick, as the replay feed converts it
    (``round_to_tick(Decimal(repr(value)), tick)``); memoised, since bar prices repeat."""
    key = (value, tick)
    price = _PRICES.get(key)
    if price is None:
        steps = (Decimal(repr(float(value))) / tick).to_integral_value(ROUND_HALF_UP)
        price = (steps * tick).quantize(_quantum(tick))
        if len(_PRICES) >= _PRICES_MAX:
            _PRICES.clear()
        _PRICES[key] = price
    return price


def trusted_bar(
    ts: datetime, symbol: str, o: Decimal, h: Decimal, lo: Decimal, c: Decimal, volume: int
) -> Bar:
    """A core :class:`Bar` from the store's already validated bars, skipping the checks."""
    bar = _new(Bar)
    _SET(bar, "ts", ts)
    _SET(bar, "symbol", symbol)
    _SET(bar, "open", o)
    _SET(bar, "high", h)
    _SET(bar, "low", lo)
    _SET(bar, "close", c)
    _SET(bar, "volume", volume)
    return bar


_new = object.__new__
_SET = object.__setattr__


@dataclass(slots=True)
class Working:
    """A live order and what the engine needs to know about it."""

    order: Order
    placed: int  # bar index it was placed on
    accepted_at: datetime
    tag: str | None


@dataclass(slots=True)
class BookFill:
    """One execution, as the result records it (not frozen: a frozen dataclass's ``__init__``
    costs a call per field, and the engine makes one per fill)."""

    index: int  # bar index of the fill
    time: datetime
    order_id: str
    symbol: str
    side: Side
    product: Product
    quantity: int
    price: Decimal
    charges: Charges
    tag: str | None

    @property
    def fees(self) -> Decimal:
        return self.charges.total

    @property
    def signed_quantity(self) -> int:
        return self.quantity if self.side is Side.BUY else -self.quantity


@dataclass
class Book:
    """Cash, positions and orders of one backtest account."""

    cash: Decimal
    costs: CostModel
    fill_model: FillModel
    specs: dict[str, InstrumentSpec]
    limits: RiskLimits | None = None
    leverage: Decimal = Decimal(5)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    # state
    net: dict[str, int] = field(default_factory=dict)  # symbol -> signed net quantity
    positions: dict[tuple[str, Product], Position] = field(default_factory=dict)
    working: list[Working] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)  # final state of every order, by id order
    order_index: dict[str, int] = field(default_factory=dict)
    events: list[core.OrderEvent] = field(default_factory=list)
    tags: dict[str, str | None] = field(default_factory=dict)
    fills: list[BookFill] = field(default_factory=list)
    delivery_sold: set[tuple[str, object]] = field(default_factory=set)
    same_day: SameDay = field(default_factory=SameDay)
    order_times: list[datetime] = field(default_factory=list)
    _seq: int = 0

    # -- queries -------------------------------------------------------------------------------

    def position(self, symbol: str, product: Product) -> Position:
        return self.positions.get((symbol, product)) or Position(symbol)

    def pending(self, symbol: str) -> int:
        """Signed remaining quantity of the live orders in ``symbol``."""
        total = 0
        for w in self.working:
            o = w.order
            if o.symbol == symbol:
                total += o.remaining_quantity if o.side is Side.BUY else -o.remaining_quantity
        return total

    def available(self) -> Decimal:
        """Cash that can pay for a CNC buy or an MIS margin."""
        free = self.cash
        for (_, product), pos in self.positions.items():
            if product is Product.MIS and pos.quantity:
                free += pos.open_cost - abs(pos.open_cost) / self.leverage
        return free

    def equity(self, marks: dict[str, Decimal]) -> Decimal:
        value = self.cash
        for symbol, qty in self.net.items():
            if qty:
                value += qty * marks[symbol]
        return value

    # -- placing ---------------------------------------------------------------------------------

    def _record(self, order: Order, event: core.OrderEvent | None) -> None:
        if order.id in self.order_index:
            self.orders[self.order_index[order.id]] = order
        else:
            self.order_index[order.id] = len(self.orders)
            self.orders.append(order)
        if event is not None:
            self.events.append(event)

    def submit(
        self,
        index: int,
        at: datetime,
        symbol: str,
        side: Side,
        quantity: int,
        order_type: OrderType,
        product: Product,
        time_in_force: TimeInForce,
        limit_price: Decimal | None,
        stop_price: Decimal | None,
        reference: Decimal,
        mark: Callable[[str], Decimal],
        tag: str | None,
        refuse: str | None = None,
    ) -> Order:
        """Validate and accept (or reject) a new order; returns it (REJECTED carries why).
        (Positional or keyword arguments: the engine's hot path passes them positionally.)"""
        self._seq += 1
        order_id = f"bt-{self._seq}"
        self.tags[order_id] = tag
        if refuse is not None:
            quantity = max(quantity, 1)
        try:
            order = Order(  # positional (id, client id, account, ...): the hot path
                order_id,
                order_id,
                "backtest",
                symbol,
                side,
                order_type,
                product,
                time_in_force,
                quantity,
                limit_price,
                stop_price,
            )
        except DomainError as exc:
            # Not a valid order at all (bad quantity or prices): record a rejected stand-in.
            stand_in = Order(
                id=order_id,
                client_order_id=order_id,
                account="backtest",
                symbol=symbol,
                side=side,
                order_type=OrderType.MARKET,
                product=product,
                time_in_force=time_in_force,
                quantity=max(abs(quantity), 1) if isinstance(quantity, int) else 1,
            )
            rejected, event = core.reject(stand_in, at=at, reason=str(exc))
            self._record(rejected, event)
            return rejected
        reason = refuse or self._refusal(order, reference, mark, at)
        if reason is not None:
            rejected, event = core.reject(order, at=at, reason=reason)
            self._record(rejected, event)
            return rejected
        accepted, event = core.accept(order, at=at)
        self._record(accepted, event)
        self.working.append(Working(accepted, index, at, tag))
        if self.limits is not None:
            self.order_times.append(at)
        return accepted

    def _refusal(
        self, order: Order, reference: Decimal, mark: Callable[[str], Decimal], at: datetime
    ) -> str | None:
        spec = self.specs[order.symbol]
        try:
            core.validate_order(order, spec)
            if order.product is Product.CNC and order.side is Side.SELL:
                held = self.position(order.symbol, Product.CNC).quantity
                selling = sum(
                    w.order.remaining_quantity
                    for w in self.working
                    if w.order.symbol == order.symbol
                    and w.order.side is Side.SELL
                    and w.order.product is Product.CNC
                )
                core.check_holdings(order, held - selling)
        except DomainError as exc:
            return str(exc)
        if self.limits is not None:
            worst = core.worst_case_price(order, reference, spec)
            after = self.net.get(order.symbol, 0) + order.side.sign * order.quantity
            gross = sum(
                (abs(q) * mark(s) for s, q in self.net.items() if q and s != order.symbol),
                _ZERO,
            )
            try:
                check_order(
                    self.limits,
                    OrderContext(
                        exchange=order.symbol.partition(":")[0],
                        product=str(order.product),
                        quantity=order.quantity,
                        limit_price=order.limit_price,
                        value=worst * order.quantity,
                        reference=reference,
                        position_value=abs(after) * reference,
                        gross_exposure=gross + abs(after) * reference,
                        open_orders=len(self.working),
                        orders_last_minute=sum(
                            1 for t in self.order_times[-100:] if (at - t).total_seconds() < 60
                        ),
                    ),
                )
            except RiskViolation as exc:
                return f"{exc.code}: {exc}"
        return None

    # -- ending orders ---------------------------------------------------------------------------

    def end(self, w: Working, at: datetime, how: str, reason: str) -> Order:
        """Cancel or expire a working order."""
        step = core.expire if how == "expire" else core.cancel
        new, event = step(w.order, at=at, reason=reason)
        self.working.remove(w)
        self._record(new, event)
        return new

    # -- fills -----------------------------------------------------------------------------------

    def match_bar(self, w: Working, index: int, bar: Bar) -> list[Order]:
        """Let ``bar`` act on working order ``w``; returns the order's states after each change."""
        spec = self.specs[w.order.symbol]
        result = match(
            w.order,
            bar,
            spec,
            accepted_at=w.accepted_at,
            traded_volume=bar.volume,
            model=self.fill_model,
            rng=self.rng,
        )
        changed: list[Order] = []
        at = bar.ts
        if result.triggered:
            w.order, event = core.trigger(w.order, at=at)
            self._record(w.order, event)
        for proposed in result.fills:
            done = self.execute(w, index, at, proposed.quantity, proposed.price)
            changed.append(w.order)
            if done:
                return changed
        if result.cancel_remainder and w.order.is_live:
            changed.append(self.end(w, at, "cancel", "IOC remainder cancelled"))
        return changed

    def match_quote(self, w: Working, index: int, quote: Quote) -> None:
        """Fill a market order against one quote (the square-off at a bar's close)."""
        result = match(
            w.order,
            quote,
            self.specs[w.order.symbol],
            accepted_at=w.accepted_at,
            traded_volume=0,
            model=FillModel(
                slippage_ticks=self.fill_model.slippage_ticks,
                slippage_bps=self.fill_model.slippage_bps,
                random_slippage_ticks=self.fill_model.random_slippage_ticks,
                max_volume_share=None,
            ),
            rng=self.rng,
        )
        for proposed in result.fills:
            if self.execute(w, index, quote.ts, proposed.quantity, proposed.price):
                return

    def _affordable(
        self, order: Order, quantity: int, price: Decimal, at: datetime
    ) -> tuple[int, Charges]:
        """How much of a fill of ``quantity`` at ``price`` the cash pays for (whole lots), and
        that fill's charges."""
        fees = self.costs.fees
        charges = fees(order, quantity, price, at)
        opening = quantity
        if order.product is Product.MIS:
            pos = self.position(order.symbol, Product.MIS).quantity
            closing = (
                min(quantity, abs(pos)) if pos and (pos > 0) != (order.side is Side.BUY) else 0
            )
            opening = quantity - closing
            if opening == 0:
                return quantity, charges
        elif order.side is Side.SELL:
            return quantity, charges
        free = self.available()
        per = price / self.leverage if order.product is Product.MIS else price
        closing = quantity - opening
        if per * opening + charges.total <= free:
            return quantity, charges
        lot = self.specs[order.symbol].lot_size
        rate = _ONE + self.costs.rate
        q = int((free / (per * rate)).to_integral_value(ROUND_FLOOR)) if free > 0 else 0
        q = min(q, opening) + closing
        q -= q % lot
        while q > 0:
            charges = fees(order, q, price, at)
            if per * (q - closing) + charges.total <= free:
                return q, charges
            q -= lot
        return 0, charges

    def execute(self, w: Working, index: int, at: datetime, quantity: int, price: Decimal) -> bool:
        """Apply one fill to ``w`` (cash permitting); True when the order is no longer live."""
        order = w.order
        affordable, charges = self._affordable(order, quantity, price, at)
        if affordable == 0:
            self.end(w, at, "cancel", "insufficient cash at the fill price")
            return True
        if affordable < quantity:
            reduced = order.filled_quantity + affordable
            order, event = core.modify(
                order, at=at, quantity=reduced, reason="reduced to what the cash affords"
            )
            self._record(order, event)
            quantity = affordable
        trade_id = f"{order.id}:{order.filled_quantity}"
        new, event = core.fill(order, quantity, price, trade_id, at=at)
        if order.product is Product.CNC and order.side is Side.SELL:
            key_day = (order.symbol, trade_date(at))
            if key_day not in self.delivery_sold:
                self.delivery_sold.add(key_day)
                charges = charges + self.costs.dp_charge(at)
        fees = charges.total
        key = (order.symbol, order.product)
        self.positions[key] = (self.positions.get(key) or Position(order.symbol)).apply(
            Fill(order.symbol, order.side, quantity, price, fees, trade_id)
        )
        signed = quantity if order.side is Side.BUY else -quantity
        self.net[order.symbol] = self.net.get(order.symbol, 0) + signed
        self.cash += -signed * price - fees
        if order.product is Product.CNC:
            self.cash -= self.same_day.cash(
                self.costs, order.symbol, order.id, order.side, quantity, price, at
            )
        w.order = new
        self._record(new, event)
        self.fills.append(
            BookFill(
                index,
                at,
                order.id,
                order.symbol,
                order.side,
                order.product,
                quantity,
                price,
                charges,
                w.tag,
            )
        )
        if not new.is_live:
            self.working.remove(w)
            return True
        return False

    def live(self) -> list[Working]:
        return list(self.working)

    def status_of(self, order_id: str) -> OrderStatus | None:
        i = self.order_index.get(order_id)
        return None if i is None else self.orders[i].status
