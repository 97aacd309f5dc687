"""The OMS service on both backends: concurrent orders never overdraw, random fill sequences keep
positions equal to the fold of their trades and the ledger balanced, market hours, and the paper
broker's IOC, stop and market-protection rules."""

from __future__ import annotations

import asyncio
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.auth import users as users_service
from quantdesk.auth.roles import Role
from quantdesk.brokers.paper import PaperBroker
from quantdesk.core import ledger
from quantdesk.core.orders import OrderStatus, OrderType, Product, Side, TimeInForce
from quantdesk.core.positions import Fill, rebuild
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.errors import AppError
from quantdesk.market.instruments import seed_demo_universe
from quantdesk.observability.audit import Actor
from quantdesk.orders.models import OrderRow, PositionRow, TradeRow
from quantdesk.orders.service import Oms, PlaceRequest
from quantdesk.settings import Settings
from quantdesk.wallet import service as wallet_service
from tests.conftest import TEST_PASSWORD, make_settings, unique_name
from tests.integration.orders.conftest import INFY, quote

ACTOR = Actor(None, "test", None, None)


async def new_user(sessions: async_sessionmaker[AsyncSession], cash: str) -> int:
    async with sessions() as db:
        user = await users_service.create_user(
            db,
            ACTOR,
            username=unique_name("oms"),
            password=TEST_PASSWORD,
            role=Role.TRADER,
            bcrypt_rounds=4,
        )
        uid = user.id
    async with sessions() as db:
        await wallet_service.post(db, ledger.deposit(uid, Decimal(cash), "INR", ref=f"d:{uid}"))
        await db.commit()
    return uid


def buy(qty: int = 1, price: str = "1440.00", **kw: object) -> PlaceRequest:
    values: dict[str, object] = {
        "symbol": INFY,
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "quantity": qty,
        "limit_price": price,
        **kw,
    }
    return PlaceRequest(**values)  # type: ignore[arg-type]


@pytest.mark.usefixtures("universe")
async def test_fifty_concurrent_orders_never_overdraw_the_account(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    oms = Oms(settings)
    uid = await new_user(sessions, "10000")

    async def one(n: int) -> str:
        async with sessions() as db:
            try:
                await oms.place(db, uid, buy(1, client_order_id=f"c{n}"), actor=ACTOR)
            except AppError as exc:
                return exc.code
            return "OK"

    outcomes = await asyncio.gather(*(one(n) for n in range(50)))
    accepted = outcomes.count("OK")
    assert set(outcomes) == {"OK", "ORDER_INSUFFICIENT_FUNDS"}
    async with sessions() as db:
        rows = (await db.execute(select(OrderRow).where(OrderRow.user_id == uid))).scalars().all()
        w = (await wallet_service.wallet(db, uid))["INR"]
        report = await wallet_service.verify(db)
    hold = rows[0].held_amount
    assert len(rows) == accepted == int(Decimal(10000) // hold)  # as many as fit, no more
    assert w.available >= 0 and w.held == hold * accepted
    assert w.total == 10000
    assert report.ok, report.discrepancy


async def test_orders_outside_the_exchange_session_are_refused_with_calendar_hours(
    db_url: str, tmp_path: Path, universe: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cal = make_settings(db_url, tmp_path, paper_session="calendar")
    uid = await new_user(sessions, "100000")
    saturday = Oms(cal, clock=lambda: datetime(2026, 11, 28, 6, 0, tzinfo=UTC))
    async with sessions() as db:
        with pytest.raises(AppError) as err:
            await saturday.place(db, uid, buy(), actor=ACTOR)
    assert err.value.code == "ORDER_MARKET_CLOSED"
    wednesday = Oms(cal, clock=lambda: datetime(2026, 11, 25, 6, 0, tzinfo=UTC))  # 11:30 IST
    async with sessions() as db:
        placed = await wednesday.place(db, uid, buy(), actor=ACTOR)
    assert placed.created and placed.order.status == "OPEN"


@pytest.mark.usefixtures("universe")
async def test_paper_broker_cancels_an_ioc_remainder_and_triggers_stops(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    oms = Oms(settings)
    broker = PaperBroker(sessions, oms)
    uid = await new_user(sessions, "100000")
    async with sessions() as db:
        ioc = await oms.place(
            db, uid, buy(5, "1400.00", time_in_force=TimeInForce.IOC), actor=ACTOR
        )
    async with sessions() as db:
        stop = await oms.place(
            db,
            uid,
            buy(2, None, order_type=OrderType.SL_M, stop_price="1460.00"),
            actor=ACTOR,
        )
    await broker.reload()
    await broker.on_quote(quote("1441.80"))  # ask above the IOC's limit: nothing fills
    async with sessions() as db:
        gone = await oms.get(db, ioc.order.id, uid)
        waiting = await oms.get(db, stop.order.id, uid)
    assert gone.status == OrderStatus.CANCELLED and gone.held_amount == 0
    assert waiting.status == OrderStatus.OPEN and not waiting.triggered
    await broker.on_quote(quote("1460.00"))  # last reaches the stop: triggers, fills at ask
    async with sessions() as db:
        done = await oms.get(db, stop.order.id, uid)
        events = [e.action for e in await oms.events(db, stop.order.id)]
    assert done.status == OrderStatus.FILLED and done.triggered
    assert events == ["ACCEPT", "TRIGGER", "FILL"]
    assert done.filled_value == Decimal("1460.10") * 2


@pytest.mark.usefixtures("universe")
async def test_market_protection_cancels_instead_of_filling_beyond_the_hold(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    oms = Oms(settings)
    broker = PaperBroker(sessions, oms)
    uid = await new_user(sessions, "100000")
    async with sessions() as db:
        placed = await oms.place(db, uid, buy(3, None, order_type=OrderType.MARKET), actor=ACTOR)
    assert placed.order.hold_price == Decimal("1513.90")  # 1441.80 + 5%, up to the tick
    await broker.reload()
    await broker.on_quote(quote("1600.00"))
    async with sessions() as db:
        row = await oms.get(db, placed.order.id, uid)
        w = (await wallet_service.wallet(db, uid))["INR"]
    assert row.status == OrderStatus.CANCELLED and row.filled_quantity == 0
    assert (w.available, w.held) == (Decimal(100000), Decimal(0))


# --- property: random fills keep positions and the ledger right ------------------------------

TICKS = st.integers(min_value=14000, max_value=14800)  # prices 1400.0 .. 1480.0 on a 0.10 tick
ORDERS = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(min_value=1, max_value=30),
        TICKS,
        st.lists(st.integers(min_value=1, max_value=10), min_size=1, max_size=3),
        st.booleans(),  # cancel what is left after the fills
    ),
    min_size=1,
    max_size=6,
)


async def _random_fills(db_url: str, orders: list[tuple[Side, int, int, list[int], bool]]) -> None:
    engine = create_engine(db_url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as db:
            await seed_demo_universe(db)
        cfg = make_settings(db_url, Path(tempfile.gettempdir()))
        oms = Oms(cfg)
        uid = await new_user(sessions, "10000000")
        at = datetime.now(UTC)
        for n, (side, qty, ticks, parts, cancel_rest) in enumerate(orders):
            price = Decimal(ticks) / 10
            req = PlaceRequest(
                INFY, side, OrderType.LIMIT, qty, Product.MIS, limit_price=f"{price:.2f}"
            )
            async with sessions() as db:
                order = (await oms.place(db, uid, req, actor=None)).order
            left = qty
            for k, part in enumerate(parts):
                fill_qty = min(part, left)
                if fill_qty == 0:
                    break
                at += timedelta(seconds=1)
                async with sessions() as db:
                    await oms.apply_fill(db, order.id, fill_qty, price, f"prop:{order.id}:{k}", at)
                left -= fill_qty
            if left and cancel_rest:
                async with sessions() as db:
                    await oms.cancel(db, order.id, owner_id=uid, actor=None)

        async with sessions() as db:
            trades = (
                (
                    await db.execute(
                        select(TradeRow).where(TradeRow.user_id == uid).order_by(TradeRow.at)
                    )
                )
                .scalars()
                .all()
            )
            stored = (
                await db.execute(select(PositionRow).where(PositionRow.user_id == uid))
            ).scalar_one()
            live = (
                (
                    await db.execute(
                        select(OrderRow).where(
                            OrderRow.user_id == uid,
                            OrderRow.status.in_(["OPEN", "PARTIALLY_FILLED"]),
                        )
                    )
                )
                .scalars()
                .all()
            )
            w = (await wallet_service.wallet(db, uid))["INR"]
            report = await wallet_service.verify(db)
        folded = rebuild(
            INFY,
            [
                Fill(INFY, Side(t.side), t.quantity, t.price, t.fees, t.broker_trade_id)
                for t in trades
            ],
        )
        assert (stored.quantity, stored.open_cost) == (folded.quantity, folded.open_cost)
        assert (stored.realised_pnl, stored.fees) == (folded.realised_pnl, folded.fees)
        assert w.held == sum((o.held_amount for o in live), Decimal(0))
        assert w.available >= 0
        # Intraday: no notional moves, only margin (value / leverage, to the paisa, rounded in
        # the account's favour) and the realised P&L (settled per fill, to the paisa).
        assert w.margin == stored.margin
        exact_margin = abs(stored.open_cost) / cfg.mis_leverage
        assert exact_margin <= stored.margin <= exact_margin + Decimal("0.01") * len(trades)
        assert (stored.margin == 0) == (stored.quantity == 0)
        exact_total = Decimal(10000000) + folded.realised_pnl - folded.fees
        assert abs(w.total - exact_total) <= Decimal("0.005") * len(trades)
        assert report.ok, report.discrepancy
    finally:
        await engine.dispose()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders=ORDERS)
def test_random_fill_sequences_keep_positions_equal_to_their_trades_and_the_ledger_balanced(
    db_url: str, orders: list[tuple[Side, int, int, list[int], bool]]
) -> None:
    # Its own event loop in a worker thread: hypothesis drives a plain function.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(_random_fills(db_url, orders))).result()
