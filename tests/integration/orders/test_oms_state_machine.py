"""A hypothesis state machine over the OMS on both backends: random deposits, orders (CNC and
MIS, buys and sells, limits and markets, valid and not), partial fills, modifies, cancels and
resubmits keep DESIGN's invariants 2-6 after every step:

2. the ledger balances and every cached balance equals its postings (``ledger verify``);
3. available cash never goes negative and held equals what the live orders still hold;
4. every order follows the state machine, terminal orders hold nothing, and every stored
   transition chains from the previous one;
5. a resubmitted ``client_order_id`` returns the original order, and a fill delivered twice
   is applied once;
6. every position equals the fold of its trades.

A refused request (any 4xx) must change nothing: no order row, no hold, no ledger entry.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from quantdesk.core import ledger
from quantdesk.core.orders import LIVE_STATUSES, OrderStatus, OrderType, Product, Side
from quantdesk.core.positions import Fill, rebuild
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.errors import AppError
from quantdesk.market.instruments import seed_demo_universe
from quantdesk.orders.models import OrderEventRow, OrderRow, PositionRow, TradeRow
from quantdesk.orders.service import ModifyRequest, Oms, PlaceRequest
from quantdesk.wallet import service as wallet_service
from quantdesk.wallet.models import JournalEntryRow
from tests.conftest import make_settings
from tests.integration.orders.conftest import INFY
from tests.integration.orders.test_oms_service import ACTOR, new_user

T = TypeVar("T")
LIVE = {s.value for s in LIVE_STATUSES}
TERMINAL = {"FILLED", "CANCELLED", "EXPIRED", "REJECTED"}


def mostly(valid: st.SearchStrategy[T], invalid: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """``valid`` nine times in ten, else ``invalid``."""
    return st.integers(min_value=0, max_value=9).flatmap(lambda k: valid if k else invalid)


# Prices around INFY's 1441.80 on its 0.10 tick; sometimes off tick, outside the 10% band, zero.
PRICES = mostly(
    st.integers(min_value=13800, max_value=15000).map(lambda t: f"{Decimal(t) / 10:.2f}"),
    st.sampled_from(["1440.05", "1200.00", "1700.00", "0.00"]),
)
TICKS = st.integers(min_value=-30, max_value=30)
QUANTITIES = mostly(st.integers(min_value=1, max_value=20), st.sampled_from([0, -3, 10**9]))


class OmsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.engine = create_engine(DB_URL)
        self.sessions = create_sessionmaker(self.engine)
        self.oms = Oms(make_settings(DB_URL, Path(tempfile.gettempdir())))
        self.uid = self.run(new_user(self.sessions, "50000"))
        self.at = datetime.now(UTC)
        self.fills = 0
        self.delivered: list[tuple[str, int, Decimal, str]] = []
        self.placed: list[tuple[str, str]] = []  # (order id, client order id)

    def pick(self, n: int) -> tuple[str, str]:
        return self.placed[n % len(self.placed)]

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def teardown(self) -> None:

        async def close() -> None:
            async with self.sessions() as db:
                report = await wallet_service.verify(db)
            assert report.ok, report.discrepancy
            await self.engine.dispose()

        try:
            self.run(close())
        finally:
            self.runner.close()

    # --- helpers ------------------------------------------------------------------------------

    async def _footprint(self) -> tuple[int, int, int, Any]:
        async with self.sessions() as db:
            n_orders = (
                await db.execute(
                    select(func.count()).select_from(OrderRow).where(OrderRow.user_id == self.uid)
                )
            ).scalar_one()
            n_events = (
                await db.execute(select(func.count()).select_from(OrderEventRow))
            ).scalar_one()
            n_entries = (
                await db.execute(select(func.count()).select_from(JournalEntryRow))
            ).scalar_one()
            w = (await wallet_service.wallet(db, self.uid))["INR"]
        return n_orders, n_events, n_entries, w

    def refused_changes_nothing(self, coro: Coroutine[Any, Any, T]) -> T | None:
        before = self.run(self._footprint())
        try:
            return self.run(coro)
        except AppError as exc:
            refused = exc
        assert 400 <= refused.status_code < 500, refused
        assert self.run(self._footprint()) == before, refused.code
        return None

    # --- rules --------------------------------------------------------------------------------

    @rule(amount=st.integers(min_value=1, max_value=200000))
    def deposit(self, amount: int) -> None:
        async def go() -> None:
            async with self.sessions() as db:
                entry = ledger.deposit(self.uid, Decimal(amount), "INR", ref=f"sm:{self.fills}")
                await wallet_service.post(db, entry)
                await db.commit()

        self.run(go())

    @rule(
        side=st.sampled_from(Side),
        product=st.sampled_from(Product),
        market=st.booleans(),
        qty=QUANTITIES,
        price=PRICES,
    )
    def place(self, side: Side, product: Product, market: bool, qty: int, price: str) -> None:
        req = PlaceRequest(
            INFY,
            side,
            OrderType.MARKET if market else OrderType.LIMIT,
            qty,
            product,
            limit_price=None if market else price,
        )

        async def go() -> OrderRow:
            async with self.sessions() as db:
                return (await self.oms.place(db, self.uid, req, actor=ACTOR)).order

        row = self.refused_changes_nothing(go())
        if row is not None:
            assert row.status == "OPEN" and row.held_amount >= 0
            self.placed.append((row.id, row.client_order_id))

    @precondition(lambda self: bool(self.placed))
    @rule(n=st.integers(min_value=0), part=st.integers(min_value=1, max_value=40), ticks=TICKS)
    def fill(self, n: int, part: int, ticks: int) -> None:
        order = self.pick(n)

        async def go() -> None:
            async with self.sessions() as db:
                row = await self.oms.get(db, order[0], self.uid)

            if row.status not in LIVE:
                return
            qty = min(part, row.quantity - row.filled_quantity)
            # At the limit or better (the paper venue never fills beyond the held worst case).
            price = row.limit_price if row.limit_price is not None else row.hold_price
            assert price is not None
            better = Decimal(abs(ticks)) / 10
            price = price - better if row.side == "BUY" else price + better
            if price <= 0 or (row.side == "BUY" and row.hold_price and price > row.hold_price):
                return
            self.at += timedelta(seconds=1)
            trade_id = f"sm:{row.id}:{row.filled_quantity}"
            short: AppError | None = None
            try:
                async with self.sessions() as db:
                    applied = await self.oms.apply_fill(db, row.id, qty, price, trade_id, self.at)
            except AppError as exc:
                short = exc
            if short is not None:
                # Only an MIS order whose position changed may find its hold short.
                assert short.code == "WALLET_INSUFFICIENT_FUNDS" and row.product == "MIS", short
                return
            assert applied.applied
            self.fills += 1
            self.delivered.append((row.id, qty, price, trade_id))

        self.run(go())

    @precondition(lambda self: bool(self.delivered))
    @rule()
    def redeliver_a_fill(self) -> None:
        order_id, qty, price, trade_id = self.delivered[-1]

        async def go() -> None:
            before = await self._footprint()
            async with self.sessions() as db:
                again = await self.oms.apply_fill(db, order_id, qty, price, trade_id, self.at)
            assert not again.applied
            assert await self._footprint() == before

        self.run(go())

    @precondition(lambda self: bool(self.placed))
    @rule(n=st.integers(min_value=0), qty=st.none() | QUANTITIES, price=st.none() | PRICES)
    def modify(self, n: int, qty: int | None, price: str | None) -> None:
        order = self.pick(n)
        if qty is None and price is None:
            return

        async def go() -> OrderRow:
            async with self.sessions() as db:
                return await self.oms.modify(
                    db,
                    order[0],
                    ModifyRequest(quantity=qty, limit_price=price),
                    owner_id=self.uid,
                    actor=ACTOR,
                )

        self.refused_changes_nothing(go())

    @precondition(lambda self: bool(self.placed))
    @rule(n=st.integers(min_value=0))
    def cancel(self, n: int) -> None:
        order = self.pick(n)

        async def go() -> OrderRow:
            async with self.sessions() as db:
                return await self.oms.cancel(db, order[0], owner_id=self.uid, actor=ACTOR)

        row = self.refused_changes_nothing(go())
        assert row is None or (row.status == "CANCELLED" and row.held_amount == 0)

    @precondition(lambda self: bool(self.placed))
    @rule(n=st.integers(min_value=0), qty=st.integers(min_value=1, max_value=5))
    def resubmit(self, n: int, qty: int) -> None:
        order = self.pick(n)

        async def go() -> None:
            req = PlaceRequest(
                INFY, Side.BUY, OrderType.LIMIT, qty, limit_price="1.00", client_order_id=order[1]
            )
            before = await self._footprint()
            async with self.sessions() as db:
                again = await self.oms.place(db, self.uid, req, actor=ACTOR)
            assert not again.created and again.order.id == order[0]
            assert await self._footprint() == before

        self.run(go())

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def holds_positions_and_transitions_agree(self) -> None:
        async def check() -> None:
            async with self.sessions() as db:
                rows = (
                    (await db.execute(select(OrderRow).where(OrderRow.user_id == self.uid)))
                    .scalars()
                    .all()
                )
                w = (await wallet_service.wallet(db, self.uid))["INR"]
                positions = (
                    (await db.execute(select(PositionRow).where(PositionRow.user_id == self.uid)))
                    .scalars()
                    .all()
                )
                trades = (
                    (
                        await db.execute(
                            select(TradeRow)
                            .where(TradeRow.user_id == self.uid)
                            .order_by(TradeRow.at, TradeRow.id)
                        )
                    )
                    .scalars()
                    .all()
                )
                events = {
                    r.id: list(await self.oms.events(db, r.id)) for r in rows if r.status != "OPEN"
                }
            # 3: no overdraft; held is exactly what the live orders hold.
            assert w.available >= 0 and w.held >= 0 and w.margin >= 0
            assert w.held == sum((r.held_amount for r in rows if r.status in LIVE), Decimal(0))
            # 4: terminal orders hold nothing; fills never exceed the quantity; transitions chain.
            for r in rows:
                assert 0 <= r.filled_quantity <= r.quantity
                if r.status in TERMINAL:
                    assert r.held_amount == 0
                if r.status == OrderStatus.FILLED:
                    assert r.filled_quantity == r.quantity
                chain = events.get(r.id, [])
                for prev, nxt in itertools.pairwise(chain):
                    assert prev.to_status == nxt.from_status
                if chain:
                    assert chain[-1].to_status == r.status
            # 6: positions are the fold of their trades, per product; margin only for MIS.
            for p in positions:
                folded = rebuild(
                    INFY,
                    [
                        Fill(INFY, Side(t.side), t.quantity, t.price, t.fees, t.broker_trade_id)
                        for t in trades
                        if t.product == p.product
                    ],
                )
                assert (p.quantity, p.open_cost) == (folded.quantity, folded.open_cost)
                assert (p.realised_pnl, p.fees) == (folded.realised_pnl, folded.fees)
                if p.product == "CNC":
                    assert p.margin == 0 and p.quantity >= 0  # no delivery shorts
            assert w.margin == sum((p.margin for p in positions), Decimal(0))

        self.run(check())


DB_URL = ""


def test_random_oms_sessions_keep_the_invariants(db_url: str) -> None:
    global DB_URL
    DB_URL = db_url

    async def seed() -> None:
        engine = create_engine(db_url)
        try:
            async with create_sessionmaker(engine)() as db:
                await seed_demo_universe(db)
        finally:
            await engine.dispose()

    def go() -> None:
        asyncio.run(seed())
        run_state_machine_as_test(
            OmsMachine,
            settings=settings(
                max_examples=12,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )

    # Its own thread: the machine runs its own event loop per example.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(go).result()
