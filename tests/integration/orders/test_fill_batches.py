"""Fills applied in batches, one transaction per quote, on both backends: a batch leaves the
books exactly as the same fills applied one by one; a batch is all or nothing; the paper engine
applies a quote's fills in one commit and falls back to one by one when the batch fails; and it
books a new order from its event without reading the database."""

from __future__ import annotations

import asyncio
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from quantdesk.brokers.paper import PaperBroker
from quantdesk.bus.memory import MemoryBus
from quantdesk.core.market import quote_channel
from quantdesk.core.orders import OrderStatus, OrderType, Product, Side
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.errors import AppError
from quantdesk.market.instruments import seed_demo_universe
from quantdesk.orders.fills import FillRequest
from quantdesk.orders.models import OrderRow, PositionRow, TradeRow
from quantdesk.orders.schemas import OrderOut
from quantdesk.orders.service import Oms, PlaceRequest
from quantdesk.settings import Settings
from quantdesk.wallet import service as wallet_service
from tests.conftest import make_settings
from tests.integration.orders.conftest import INFY, quote
from tests.integration.orders.test_oms_service import ACTOR, buy, new_user


class Counter:
    """Commits and statements on an engine, by their first words."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.commits = 0
        self.statements: list[str] = []
        event.listen(engine.sync_engine, "commit", self._commit)
        event.listen(engine.sync_engine, "before_cursor_execute", self._execute)

    def _commit(self, _conn: Any) -> None:
        self.commits += 1

    def _execute(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements.append(" ".join(statement.split()[:4]))

    def reset(self) -> None:
        self.commits, self.statements = 0, []


async def _books(db: AsyncSession, uid: int) -> dict[str, Any]:
    """A user's books, free of ids and times: positions, order outcomes, trades, wallet."""
    positions = (await db.execute(select(PositionRow).where(PositionRow.user_id == uid))).scalars()
    orders = (
        await db.execute(
            select(OrderRow).where(OrderRow.user_id == uid).order_by(OrderRow.created_at)
        )
    ).scalars()
    trades = (
        await db.execute(select(TradeRow).where(TradeRow.user_id == uid).order_by(TradeRow.at))
    ).scalars()
    w = (await wallet_service.wallet(db, uid))["INR"]
    return {
        "positions": sorted(
            (p.symbol, p.product, p.quantity, p.open_cost, p.realised_pnl, p.fees, p.margin)
            for p in positions
        ),
        "orders": [(o.status, o.filled_quantity, o.filled_value, o.held_amount) for o in orders],
        "trades": [(t.side, t.quantity, t.price, t.fees) for t in trades],
        "wallet": (w.available, w.held, w.margin),
    }


# --- property: a batch equals the same fills one by one ----------------------------------------

PLAN = st.lists(
    st.tuples(
        st.sampled_from(
            [(Side.BUY, Product.CNC), (Side.BUY, Product.MIS), (Side.SELL, Product.MIS)]
        ),
        st.integers(min_value=1, max_value=20),  # quantity
        st.integers(min_value=14300, max_value=14500),  # limit price in ticks of 0.10
        st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=3),  # fill sizes
    ),
    min_size=1,
    max_size=5,
)


async def _batch_equals_one_by_one(db_url: str, plan: list[Any]) -> None:
    engine = create_engine(db_url)
    sessions = create_sessionmaker(engine)
    counter = Counter(engine)
    try:
        async with sessions() as db:
            await seed_demo_universe(db)
        oms = Oms(make_settings(db_url, Path(tempfile.gettempdir())))
        one, batch = await new_user(sessions, "5000000"), await new_user(sessions, "5000000")
        at = datetime.now(UTC)
        requests: dict[int, list[FillRequest]] = {one: [], batch: []}
        for (side, product), qty, ticks, parts in plan:
            price = Decimal(ticks) / 10
            req = PlaceRequest(INFY, side, OrderType.LIMIT, qty, product, limit_price=f"{price}")
            for uid in (one, batch):
                async with sessions() as db:
                    order = (await oms.place(db, uid, req, actor=None)).order
                left = qty
                for k, part in enumerate(parts):
                    size = min(part, left)
                    if size:
                        fill_at = at + timedelta(seconds=len(requests[uid]))
                        trade_id = f"b:{order.id}:{k}"
                        requests[uid].append(FillRequest(order.id, size, price, trade_id, fill_at))
                        left -= size
        for r in requests[one]:
            async with sessions() as db:
                await oms.apply_fill(db, r.order_id, r.quantity, r.price, r.broker_trade_id, r.at)
        counter.reset()
        async with sessions() as db:
            results = await oms.apply_fills(db, requests[batch])
        assert all(r.applied for r in results)
        assert counter.commits == 1
        async with sessions() as db:  # the same fills again: nothing changes
            again = await oms.apply_fills(db, requests[batch])
        assert not any(r.applied for r in again)
        async with sessions() as db:
            assert await _books(db, batch) == await _books(db, one)
            report = await wallet_service.verify(db)
        assert report.ok, report.discrepancy
    finally:
        await engine.dispose()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=PLAN)
def test_a_batch_of_fills_leaves_the_books_as_the_same_fills_one_by_one(
    db_url: str, plan: list[Any]
) -> None:
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(_batch_equals_one_by_one(db_url, plan))).result()


# --- all or nothing, and the engine's fallback -------------------------------------------------


@pytest.fixture
async def counted(db_url: str) -> Any:
    engine = create_engine(db_url)
    try:
        yield create_sessionmaker(engine), Counter(engine)
    finally:
        await engine.dispose()


async def _trades_of(sessions: async_sessionmaker[AsyncSession], order_id: str) -> int:
    async with sessions() as db:
        q = select(func.count()).where(TradeRow.order_id == order_id)
        return int((await db.execute(q)).scalar_one())


@pytest.mark.usefixtures("universe")
async def test_a_batch_is_all_or_nothing(
    settings: Settings, counted: tuple[async_sessionmaker[AsyncSession], Counter]
) -> None:
    sessions, _ = counted
    oms = Oms(settings)
    uid = await new_user(sessions, "100000")
    async with sessions() as db:
        live = (await oms.place(db, uid, buy(2), actor=ACTOR)).order
    async with sessions() as db:
        gone = (await oms.place(db, uid, buy(2), actor=ACTOR)).order
    async with sessions() as db:
        await oms.cancel(db, gone.id, owner_id=uid, actor=ACTOR)
    at = datetime.now(UTC)
    price = Decimal("1440.00")
    with pytest.raises(AppError) as raised:
        async with sessions() as db:
            await oms.apply_fills(
                db,
                [
                    FillRequest(live.id, 2, price, "aon:1", at),
                    FillRequest(gone.id, 2, price, "aon:2", at),
                ],
            )
    assert raised.value.status_code == 409
    assert await _trades_of(sessions, live.id) == 0
    async with sessions() as db:
        row = await oms.get(db, live.id, uid)
        report = await wallet_service.verify(db)
    assert row.status == OrderStatus.OPEN and row.filled_quantity == 0
    assert report.ok, report.discrepancy


@pytest.mark.usefixtures("universe")
async def test_the_engine_fills_a_quote_in_one_commit_and_falls_back_when_the_batch_fails(
    settings: Settings, counted: tuple[async_sessionmaker[AsyncSession], Counter]
) -> None:
    sessions, counter = counted
    oms = Oms(settings)
    broker = PaperBroker(sessions, oms)
    users = [await new_user(sessions, "100000") for _ in range(4)]
    placed = []
    for uid in users:
        for _ in range(3):
            async with sessions() as db:
                placed.append((await oms.place(db, uid, buy(1, "1450.00"), actor=ACTOR)).order)
    for o in placed:  # only these orders in the book (the database is shared with other tests)
        await broker.refresh(o.id)
    counter.reset()
    assert await broker.on_quote(quote("1441.80")) == len(placed)
    assert counter.commits == 1
    async with sessions() as db:
        rows = [await oms.get(db, o.id, None) for o in placed]
    assert {r.status for r in rows} == {OrderStatus.FILLED}

    # An order ended behind the engine's back: the batch fails, the others fill one by one.
    async with sessions() as db:
        first = (await oms.place(db, users[0], buy(1, "1450.00"), actor=ACTOR)).order
    async with sessions() as db:
        second = (await oms.place(db, users[1], buy(1, "1450.00"), actor=ACTOR)).order
    await broker.refresh(first.id)
    await broker.refresh(second.id)
    async with sessions() as db:
        await oms.cancel(db, first.id, owner_id=None, actor=ACTOR)  # the engine is not told
    assert await broker.on_quote(quote("1441.90")) == 1
    async with sessions() as db:
        assert (await oms.get(db, second.id, None)).status == OrderStatus.FILLED
        assert (await oms.get(db, first.id, None)).status == OrderStatus.CANCELLED
        report = await wallet_service.verify(db)
    assert await _trades_of(sessions, first.id) == 0
    assert report.ok, report.discrepancy
    assert all(first.id not in orders for orders in broker.book.values())


@pytest.mark.usefixtures("universe")
async def test_the_engine_books_a_new_order_from_its_event_without_reading_the_database(
    settings: Settings, counted: tuple[async_sessionmaker[AsyncSession], Counter]
) -> None:
    sessions, counter = counted
    oms = Oms(settings)
    broker = PaperBroker(sessions, oms)
    uid = await new_user(sessions, "100000")
    async with sessions() as db:
        seed = (await oms.place(db, uid, buy(1, "1300.00"), actor=ACTOR)).order
    await broker.refresh(seed.id)  # the spec of INFY is known from now on
    async with sessions() as db:
        placed = await oms.place(db, uid, buy(3, None, order_type=OrderType.MARKET), actor=ACTOR)
    message = {"type": "order", **OrderOut.of(placed.order, placed.reason).model_dump(mode="json")}
    counter.reset()
    await broker.handle(f"user:{uid}:orders", message)
    assert counter.statements == []  # booked from the event itself
    from_event = broker.book[INFY].pop(placed.order.id)
    await broker.refresh(placed.order.id)  # what the database says
    from_db = broker.book[INFY][placed.order.id]
    assert from_event.order == from_db.order
    assert (from_event.accepted_at, from_event.hold_price) == (
        from_db.accepted_at,
        from_db.hold_price,
    )
    assert from_event.hold_price == Decimal("1513.90")

    # Ended: it leaves the book, and a late copy of its first event does not bring it back.
    async with sessions() as db:
        row = await oms.cancel(db, placed.order.id, owner_id=uid, actor=ACTOR)
    counter.reset()
    ended = {"type": "order", **OrderOut.of(row, "cancelled").model_dump(mode="json")}
    await broker.handle(f"user:{uid}:orders", ended)
    await broker.handle(f"user:{uid}:orders", message)
    assert counter.statements == []
    assert placed.order.id not in broker.book[INFY]


@pytest.mark.usefixtures("universe")
async def test_a_busy_engine_matches_on_the_newest_quote_not_on_stale_ones(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    bus = MemoryBus()
    await bus.start()
    oms = Oms(settings, bus=bus)
    broker = PaperBroker(sessions, oms)
    uid = await new_user(sessions, "100000")
    await broker.start(bus)
    try:
        base = datetime.now(UTC)
        async with sessions() as db:
            placed = (
                await oms.place(db, uid, buy(1, None, order_type=OrderType.MARKET), actor=ACTOR)
            ).order
        async with asyncio.timeout(10):  # booked (from its event, or the start's reload)
            while placed.id not in broker.book.get(INFY, {}):  # noqa: ASYNC110 - polling state
                await asyncio.sleep(0.02)
        async with broker._lock:  # the engine is busy while quotes pile up
            for k in range(30):
                q = quote(f"{1441 + k / 10:.2f}", ts=base + timedelta(seconds=k + 1))
                await bus.publish(quote_channel(INFY), q.to_json())
            await asyncio.sleep(0.05)
        async with asyncio.timeout(10):
            while True:
                async with sessions() as db:
                    row = await oms.get(db, placed.id, uid)
                if row.status == OrderStatus.FILLED:
                    break
                await asyncio.sleep(0.05)
        # Filled at the newest quote's ask (1443.90 + 0.10), not the first one after it
        # was accepted (1441.00 + 0.10): the 29 stale quotes were skipped.
        assert row.filled_value == Decimal("1444.00")
        assert broker.last[INFY].last == Decimal("1443.90")
    finally:
        await broker.stop()
        await bus.close()


@pytest.mark.usefixtures("universe")
async def test_a_basket_is_placed_in_one_commit_and_each_order_sees_the_holds_before_it(
    settings: Settings, counted: tuple[async_sessionmaker[AsyncSession], Counter]
) -> None:
    sessions, counter = counted
    oms = Oms(settings)
    uid = await new_user(sessions, "5000")  # three holds of ~1,441 fit, the fourth does not
    basket = [buy(1, "1441.00", client_order_id=f"basket-{k}") for k in range(5)]
    basket[1] = buy(1, "1441.03", client_order_id="basket-1")  # off the 0.10 tick
    counter.reset()
    async with sessions() as db:
        outcomes = await oms.place_many(db, uid, basket, actor=ACTOR)
    assert counter.commits == 1
    codes = [o.code if isinstance(o, AppError) else "accepted" for o in outcomes]
    assert codes == [
        "accepted",
        "ORDER_PRICE_OFF_TICK",
        "accepted",
        "accepted",
        "ORDER_INSUFFICIENT_FUNDS",
    ]
    async with sessions() as db:
        w = (await wallet_service.wallet(db, uid))["INR"]
        rows = (await db.execute(select(OrderRow).where(OrderRow.user_id == uid))).scalars().all()
        report = await wallet_service.verify(db)
    assert len(rows) == 3
    assert w.held == sum((r.held_amount for r in rows), Decimal(0))
    assert w.available + w.held == Decimal(5000)
    assert report.ok, report.discrepancy
    # The same basket again: the accepted ones come back (created False), nothing is placed.
    async with sessions() as db:
        again = await oms.place_many(db, uid, basket, actor=ACTOR)
    assert [getattr(o, "created", None) for o in again] == [False, None, False, False, None]
