"""Intraday (MIS) margin, the DP charge, and the paper engine's session deadlines on both
backends: DAY orders expire at the close, MIS positions are squared off before it, and the
start's reconciliation cancels IOC orders left live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.brokers.paper import PaperBroker
from quantdesk.core.charges import ExecutedOrder, Segment, default_calculator
from quantdesk.core.orders import OrderStatus, OrderType, Product, Side, TimeInForce
from quantdesk.errors import AppError
from quantdesk.market.calendars import get_calendar
from quantdesk.orders.models import OrderRow, PositionRow
from quantdesk.orders.service import Oms, PlaceRequest
from quantdesk.settings import Settings
from quantdesk.wallet import service as wallet_service
from quantdesk.wallet.models import PostingRow
from tests.conftest import AuthedUser, make_settings
from tests.integration.orders.conftest import INFY, ORDERS, fund, quote, verify_ok, wallet_of
from tests.integration.orders.test_oms_service import ACTOR, new_user

pytestmark = pytest.mark.usefixtures("universe")
D = Decimal


def req(
    side: Side,
    qty: int,
    price: str | None = None,
    *,
    product: Product = Product.MIS,
    tif: TimeInForce = TimeInForce.DAY,
) -> PlaceRequest:
    kind = OrderType.MARKET if price is None else OrderType.LIMIT
    return PlaceRequest(INFY, side, kind, qty, product, tif, limit_price=price)


class Clock:
    """A settable clock for the OMS: the tests walk it through a real NSE session."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def fill_at(broker: PaperBroker, clock: Clock, last: str) -> int:
    return await broker.on_quote(quote(last, ts=clock.at))


# --- MIS margin -------------------------------------------------------------------------------


async def test_an_mis_round_trip_blocks_margin_then_settles_only_the_pnl(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    oms = Oms(settings)
    broker = PaperBroker(sessions, oms)
    uid = await new_user(sessions, "10000")  # a CNC buy of 10 INFY (14,400) would not fit
    async with sessions() as db:
        buy = await oms.place(db, uid, req(Side.BUY, 10, "1440.00"), actor=ACTOR)
        w = (await wallet_service.wallet(db, uid))["INR"]
    # Held: the margin of the worst case (14,400 / leverage 5) plus the charges.
    assert settings.mis_leverage == 5
    charges = buy.order.held_amount - D("2880.00")
    assert D(0) < charges < D(30)
    assert (w.available, w.held) == (D(10000) - buy.order.held_amount, buy.order.held_amount)

    await broker.reload()
    await fill_at(broker, Clock(datetime.now(UTC)), "1439.90")  # ask 1440.00: fills at 1440
    async with sessions() as db:
        w = (await wallet_service.wallet(db, uid))["INR"]
        pos = (await db.execute(select(PositionRow).where(PositionRow.user_id == uid))).scalar_one()
    assert (pos.product, pos.quantity, pos.margin) == ("MIS", 10, D("2880.00"))
    assert w.margin == D("2880.00") and w.held == 0
    buy_fees = D(10000) - w.total
    assert D(0) < buy_fees <= charges  # the hold's rest came back

    async with sessions() as db:
        await oms.place(db, uid, req(Side.SELL, 10, "1450.00"), actor=ACTOR)
    await broker.reload()
    await fill_at(broker, Clock(datetime.now(UTC)), "1450.10")  # bid 1450.00
    async with sessions() as db:
        w = (await wallet_service.wallet(db, uid))["INR"]
        pos = (await db.execute(select(PositionRow).where(PositionRow.user_id == uid))).scalar_one()
    assert (pos.quantity, pos.margin, pos.realised_pnl) == (0, D(0), D(100))
    assert w.margin == 0 and w.held == 0
    # Only the P&L and the charges moved: no notional went through cash.
    assert w.total == w.available == D(10000) + D(100) - pos.fees
    await verify_ok(sessions)


async def test_an_mis_short_blocks_margin_and_its_proceeds_are_not_spendable(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    oms = Oms(settings)
    broker = PaperBroker(sessions, oms)
    uid = await new_user(sessions, "5000")
    async with sessions() as db:
        await oms.place(db, uid, req(Side.SELL, 10, "1440.00"), actor=ACTOR)
    await broker.reload()
    await fill_at(broker, Clock(datetime.now(UTC)), "1440.10")  # bid 1440.00
    async with sessions() as db:
        w = (await wallet_service.wallet(db, uid))["INR"]
        pos = (await db.execute(select(PositionRow).where(PositionRow.user_id == uid))).scalar_one()
    assert (pos.quantity, pos.margin) == (-10, D("2880.00"))
    assert w.available < D(5000) - D("2880.00")  # margin and fees out; no 14,400 of proceeds
    # A second short the remaining cash cannot margin is refused.
    async with sessions() as db:
        with pytest.raises(AppError) as err:
            await oms.place(db, uid, req(Side.SELL, 10, "1440.00"), actor=ACTOR)
    assert err.value.code == "ORDER_INSUFFICIENT_FUNDS"
    # Covering higher realises the loss from the margin it unblocks.
    async with sessions() as db:
        await oms.place(db, uid, req(Side.BUY, 10, "1450.00"), actor=ACTOR)
    await broker.reload()
    await fill_at(broker, Clock(datetime.now(UTC)), "1449.90")  # ask 1450.00
    async with sessions() as db:
        w = (await wallet_service.wallet(db, uid))["INR"]
        pos = (await db.execute(select(PositionRow).where(PositionRow.user_id == uid))).scalar_one()
    assert (pos.quantity, pos.margin, pos.realised_pnl) == (0, D(0), D(-100))
    assert w.total == w.available == D(5000) - D(100) - pos.fees
    await verify_ok(sessions)


async def test_leverage_is_configurable_and_cnc_and_mis_positions_stay_apart(
    db_url: str, tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    oms = Oms(make_settings(db_url, tmp_path, mis_leverage="2"))
    broker = PaperBroker(sessions, oms)
    uid = await new_user(sessions, "100000")
    async with sessions() as db:
        await oms.place(db, uid, req(Side.BUY, 10, "1440.00"), actor=ACTOR)
        await oms.place(db, uid, req(Side.BUY, 5, "1440.00", product=Product.CNC), actor=ACTOR)
    await broker.reload()
    await fill_at(broker, Clock(datetime.now(UTC)), "1439.90")
    async with sessions() as db:
        rows = (
            (await db.execute(select(PositionRow).where(PositionRow.user_id == uid)))
            .scalars()
            .all()
        )
        w = (await wallet_service.wallet(db, uid))["INR"]
    by_product = {r.product: (r.quantity, r.margin) for r in rows}
    assert by_product == {"MIS": (10, D("7200.00")), "CNC": (5, D(0))}
    assert w.margin == D("7200.00")
    # The CNC holding is what a CNC sell may sell: the MIS quantity does not count.
    async with sessions() as db:
        with pytest.raises(AppError) as err:
            await oms.place(db, uid, req(Side.SELL, 6, "1440.00", product=Product.CNC), actor=ACTOR)
    assert err.value.code == "ORDER_INSUFFICIENT_HOLDINGS"
    await verify_ok(sessions)


# --- the DP charge ----------------------------------------------------------------------------


async def test_the_dp_charge_is_posted_once_per_scrip_per_day_on_the_first_delivery_sell(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    oms = Oms(settings)
    broker = PaperBroker(sessions, oms)
    uid = await new_user(sessions, "100000")
    async with sessions() as db:  # other tests' DP charges in the shared database
        before = (
            await db.execute(select(func.count()).where(PostingRow.account == "fees:dp_charge"))
        ).scalar_one()
        bought = await oms.place(
            db, uid, req(Side.BUY, 10, "1440.00", product=Product.CNC), actor=ACTOR
        )
    # Bought the day before: today's sells are delivery (a same-day buy sold would be
    # intraday, with no DP charge: test_cnc_same_day.py).
    yesterday = datetime.now(UTC) - timedelta(days=1)
    async with sessions() as db:
        await oms.apply_fill(db, bought.order.id, 10, D("1440.00"), f"dp:{uid}", yesterday)
    now = datetime.now(UTC)
    dp = default_calculator().dp_charges(now.date()).total
    assert dp > 0
    sells = []
    for _ in range(2):
        async with sessions() as db:
            placed = await oms.place(
                db, uid, req(Side.SELL, 5, "1440.00", product=Product.CNC), actor=ACTOR
            )
        sells.append(placed.order)
        # The sell's hold covers its charges and a possible DP charge.
        assert placed.order.held_amount > dp
        await broker.reload()
        await fill_at(broker, Clock(datetime.now(UTC)), "1440.10")
    async with sessions() as db:
        dp_postings = (
            (
                await db.execute(
                    select(PostingRow.amount)
                    .where(PostingRow.account == "fees:dp_charge")
                    .order_by(PostingRow.id)
                )
            )
            .scalars()
            .all()[before:]
        )
        rows = [await oms.get(db, o.id, uid) for o in sells]
    assert dp_postings == [dp]  # once, though two delivery sells traded
    calc = default_calculator()
    sell = ExecutedOrder.start(Segment.EQUITY_DELIVERY, "NSE", Side.SELL, now.date()).fill(
        D("1440.00"), 5
    )
    assert all(r.status == OrderStatus.FILLED and r.held_amount == 0 for r in rows)
    async with sessions() as db:
        wallet = (await wallet_service.wallet(db, uid))["INR"]
    buy = ExecutedOrder.start(Segment.EQUITY_DELIVERY, "NSE", Side.BUY, yesterday.date()).fill(
        D("1440.00"), 10
    )
    expected = D(100000) - calc.order_charges(buy).total - 2 * calc.order_charges(sell).total - dp
    assert wallet.total == wallet.available == expected
    await verify_ok(sessions)


# --- session deadlines ------------------------------------------------------------------------


def nse_session() -> tuple[datetime, datetime]:
    """The open and close (UTC) of a real NSE session."""
    cal = get_calendar("NSE")
    session = cal.session(datetime(2026, 11, 25).date())  # a Wednesday session
    assert session is not None
    return session.open, session.close


async def test_day_orders_expire_at_the_close_and_mis_positions_are_squared_off_before_it(
    db_url: str, tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    opened, close = nse_session()
    clock = Clock(opened + timedelta(hours=1))
    cfg = make_settings(db_url, tmp_path, paper_session="calendar", mis_square_off_minutes=10)
    oms = Oms(cfg, clock=clock)
    broker = PaperBroker(sessions, oms)
    uid = await new_user(sessions, "100000")
    async with sessions() as db:
        await oms.place(db, uid, req(Side.BUY, 10, "1440.00"), actor=ACTOR)  # fills
        mis_rest = await oms.place(db, uid, req(Side.BUY, 3, "1300.00"), actor=ACTOR)
        cnc_rest = await oms.place(
            db, uid, req(Side.BUY, 4, "1300.00", product=Product.CNC), actor=ACTOR
        )
    await broker.reload()
    assert await fill_at(broker, clock, "1439.90") == 1

    # Before the square-off time nothing happens.
    # (The database is shared with other tests: a sweep acts on every user's orders and
    # positions, so the checks below look at this user's.)
    clock.at = close - timedelta(minutes=11)
    await broker.sweep()
    async with sessions() as db:
        assert not await oms.count_client_ids(db, uid, "squareoff:")

    # From 10 minutes before the close: live MIS orders cancelled, the position closed at market,
    # and users can no longer open MIS orders; CNC DAY orders keep working.
    clock.at = close - timedelta(minutes=9)
    assert (await broker.sweep()).squared_off >= 1
    await broker.sweep()  # the square-off order is still working: no second one
    async with sessions() as db:
        with pytest.raises(AppError) as err:
            await oms.place(db, uid, req(Side.BUY, 1, "1440.00"), actor=ACTOR)
        assert err.value.code == "ORDER_MIS_CUTOFF"
        orders = {
            r.client_order_id: r
            for r in (await db.execute(select(OrderRow).where(OrderRow.user_id == uid))).scalars()
        }
    assert orders[mis_rest.order.client_order_id].status == OrderStatus.CANCELLED
    assert orders[cnc_rest.order.client_order_id].status == OrderStatus.OPEN
    square = [r for coid, r in orders.items() if coid.startswith("squareoff:2026-11-25:NSE:INFY")]
    assert len(square) == 1
    assert (square[0].side, square[0].order_type, square[0].quantity) == ("SELL", "MARKET", 10)

    assert await fill_at(broker, clock, "1445.10") >= 1  # bid 1445.00
    async with sessions() as db:
        mis = (
            await db.execute(
                select(PositionRow).where(PositionRow.user_id == uid, PositionRow.product == "MIS")
            )
        ).scalar_one()
        w = (await wallet_service.wallet(db, uid))["INR"]
    assert (mis.quantity, mis.margin, mis.realised_pnl) == (0, D(0), D(50))
    assert w.margin == 0

    # After the close the CNC DAY order expires and its hold comes back.
    clock.at = close + timedelta(minutes=1)
    assert (await broker.sweep()).expired >= 1
    async with sessions() as db:
        expired = await oms.get(db, cnc_rest.order.id, uid)
        events = await oms.events(db, cnc_rest.order.id)
        w = (await wallet_service.wallet(db, uid))["INR"]
    assert expired.status == OrderStatus.EXPIRED and expired.held_amount == 0
    assert (events[-1].action, events[-1].reason) == ("EXPIRE", "DAY order: the session closed")
    assert w.held == 0
    await verify_ok(sessions)


async def test_the_always_open_session_has_no_deadlines(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _, close = nse_session()
    oms = Oms(settings, clock=Clock(close + timedelta(hours=2)))
    broker = PaperBroker(sessions, oms)
    uid = await new_user(sessions, "100000")
    async with sessions() as db:
        placed = await oms.place(db, uid, req(Side.BUY, 3, "1300.00"), actor=ACTOR)
    await broker.reload()
    report = await broker.sweep()
    assert (report.expired, report.squared_off) == (0, 0)
    assert placed.order.id in broker.book[INFY]


async def test_start_reconciliation_cancels_live_iocs_and_expires_stale_day_orders(
    db_url: str, tmp_path: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    opened, close = nse_session()
    clock = Clock(opened + timedelta(hours=2))
    oms = Oms(make_settings(db_url, tmp_path, paper_session="calendar"), clock=clock)
    uid = await new_user(sessions, "100000")
    async with sessions() as db:
        ioc = await oms.place(
            db, uid, req(Side.BUY, 2, "1300.00", tif=TimeInForce.IOC), actor=ACTOR
        )
        day = await oms.place(db, uid, req(Side.BUY, 2, "1300.00"), actor=ACTOR)
    # The engine was down; it starts the next morning.
    clock.at = close + timedelta(hours=14)
    broker = PaperBroker(sessions, oms)
    await broker.reload()
    report = await broker.reconcile()
    assert report.cancelled >= 1 and report.expired >= 1
    assert ioc.order.id not in broker.book.get(INFY, {})
    assert day.order.id not in broker.book.get(INFY, {})
    async with sessions() as db:
        statuses = {(await oms.get(db, o.order.id, uid)).status for o in (ioc, day)}
        w = (await wallet_service.wallet(db, uid))["INR"]
    assert statuses == {OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    assert (w.available, w.held) == (D(100000), D(0))
    await verify_ok(sessions)


# --- the API view -----------------------------------------------------------------------------


async def test_positions_api_shows_product_margin_and_day_pnl(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    paper: PaperBroker,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fund(client, admin, trader, "100000")
    order = {
        "symbol": INFY,
        "side": "BUY",
        "quantity": 10,
        "order_type": "LIMIT",
        "limit_price": "1440.00",
        "product": "MIS",
    }
    r = await client.post(ORDERS, json=order, headers=trader.headers)
    assert r.status_code == 201, r.text
    await paper.on_quote(quote("1439.90"))
    assert paper.oms.quotes is not None
    await paper.oms.quotes.set(quote("1450.00"))
    r = await client.get("/api/v1/positions", headers=trader.headers)
    assert r.status_code == 200, r.text
    [pos] = r.json()
    assert (pos["product"], pos["quantity"], pos["margin"]) == ("MIS", 10, "2880.00")
    mark = D(pos["last_price"])
    # Bought today: the day P&L is the unrealised P&L at the mark.
    assert D(pos["day_pnl"]) == D(pos["unrealised_pnl"]) == (mark - D("1440.00")) * 10
    w = await wallet_of(client, trader)
    assert w["margin"] == D("2880.00")
    assert w["total"] == w["available"] + w["held"] + w["margin"]


async def test_resync_adds_live_orders_the_engine_never_heard_of_and_drops_ended_ones(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    oms = Oms(settings)  # no bus: the engine hears nothing
    broker = PaperBroker(sessions, oms)
    await broker.reload()
    uid = await new_user(sessions, "100000")
    async with sessions() as db:
        unheard = await oms.place(db, uid, req(Side.BUY, 2, "1300.00"), actor=ACTOR)
    assert unheard.order.id not in broker.book.get(INFY, {})
    assert await broker.resync() >= 1
    assert unheard.order.id in broker.book[INFY]
    async with sessions() as db:
        await oms.cancel(db, unheard.order.id, owner_id=uid, actor=ACTOR)
    await broker.resync()
    assert unheard.order.id not in broker.book.get(INFY, {})
