"""A CNC buy sold the same (India) day is charged as intraday, on both backends: the fills are
charged as delivery when they happen, and ONE adjusting ledger entry per CNC fill that changes
the day's classification brings the day to the intraday charges (quantity closed FIFO against
the day's earlier CNC buys; the rest stays delivery)."""

from __future__ import annotations

import asyncio
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.core.charges import CncFill, ExecutedOrder, Segment, default_calculator
from quantdesk.core.orders import OrderType, Product, Side
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.market.instruments import seed_demo_universe
from quantdesk.orders.models import OrderRow
from quantdesk.orders.same_day import adjustment_ref
from quantdesk.orders.service import Oms, PlaceRequest
from quantdesk.settings import Settings
from quantdesk.wallet import service as wallet_service
from quantdesk.wallet.models import JournalEntryRow, PostingRow
from tests.conftest import make_settings
from tests.integration.orders.conftest import verify_ok
from tests.integration.orders.test_oms_service import new_user

pytestmark = pytest.mark.usefixtures("universe")
D = Decimal
BEL = "NSE:BEL"  # demo universe: tick 0.05, lot 1, band 10%, last 403.95
DAY = date(2026, 11, 25)  # a Wednesday; 04:00 UTC is 09:30 in India
OPEN = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)


async def place(
    oms: Oms, sessions: async_sessionmaker[AsyncSession], uid: int, side: Side, qty: int, px: str
) -> OrderRow:
    req = PlaceRequest(BEL, side, OrderType.LIMIT, qty, Product.CNC, limit_price=px)
    async with sessions() as db:
        return (await oms.place(db, uid, req, actor=None)).order


async def fill(
    oms: Oms,
    sessions: async_sessionmaker[AsyncSession],
    order: OrderRow,
    qty: int,
    px: str,
    trade_id: str,
    at: datetime,
) -> bool:
    async with sessions() as db:
        return (await oms.apply_fill(db, order.id, qty, D(px), trade_id, at)).applied


async def adjustments(
    sessions: async_sessionmaker[AsyncSession], uid: int, day: date = DAY
) -> list[tuple[JournalEntryRow, dict[str, Decimal]]]:
    """The same-day adjustment entries of ``uid``'s BEL day, with their postings by account."""
    async with sessions() as db:
        entries = (
            (
                await db.execute(
                    select(JournalEntryRow)
                    .where(JournalEntryRow.ref == adjustment_ref(uid, BEL, day))
                    .order_by(JournalEntryRow.id)
                )
            )
            .scalars()
            .all()
        )
        out = []
        for e in entries:
            rows = await db.execute(
                select(PostingRow.account, PostingRow.amount).where(PostingRow.entry_id == e.id)
            )
            out.append((e, {a: D(amount) for a, amount in rows.all()}))
    return out


async def test_a_cnc_buy_sold_the_same_day_is_recharged_as_intraday_worked_example(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # Worked by hand (NSE, schedule of 2026-03-01: STT and stamp duty to the rupee, the rest
    # to the paisa, half up; GST on the rounded brokerage + exchange charge + SEBI fee):
    #   buy 100 BEL @ 400.00 CNC (turnover 40,000), sell 100 @ 404.00 CNC (40,400), same day.
    #
    #   charged at fill time, as delivery    buy      sell     | as intraday     buy    sell
    #   brokerage (0 / min(0.03%, Rs 20))     0.00     0.00    |                12.00  12.12
    #   STT (0.1% both sides / 0.025% sell)  40.00    40.00    | 40.40 -> 40     0.00  10.00
    #                                                          |  (10.10 -> 10)
    #   exchange 0.00307%                     1.23     1.24    |                 1.23   1.24
    #     (1.228 -> 1.23; 1.24028 -> 1.24)
    #   SEBI 0.0001%                          0.04     0.04    |                 0.04   0.04
    #   stamp (0.015% / 0.003% of the buy)    6.00     0.00    | (1.20 -> 1)     1.00   0.00
    #   GST 18% of brokerage + exch + SEBI    0.23     0.23    | 13.27, 13.40 -> 2.39   2.41
    #     (delivery: 18% x 1.27 = 0.2286, 18% x 1.28 = 0.2304)
    #   DP charge (per scrip per day)         0.00    15.34    |                 0.00   0.00
    #   total                                47.50    56.85    |                16.66  25.81
    #
    #   delivery 104.35, intraday 42.47: the adjustment is -61.88, by component
    #   brokerage +24.12, STT -70.00, stamp duty -5.00, GST +4.34, DP charge -15.34
    #   (exchange charge and SEBI fee unchanged), the user's cash +61.88.
    oms = Oms(settings)
    uid = await new_user(sessions, "100000")
    buy = await place(oms, sessions, uid, Side.BUY, 100, "400.00")
    assert await fill(oms, sessions, buy, 100, "400.00", f"sd:{uid}:b", OPEN)
    assert await adjustments(sessions, uid) == []  # nothing sold yet: plain delivery
    sell = await place(oms, sessions, uid, Side.SELL, 100, "404.00")
    assert await fill(oms, sessions, sell, 100, "404.00", f"sd:{uid}:s", OPEN + timedelta(hours=2))

    [(entry, postings)] = await adjustments(sessions, uid)
    assert entry.kind == "ADJUSTMENT"
    assert "100 bought and sold that day charged as intraday" in entry.memo
    assert postings == {
        f"user:{uid}:cash": D("61.88"),
        "fees:brokerage": D("24.12"),
        "taxes:stt": D("-70.00"),
        "taxes:stamp_duty": D("-5.00"),
        "taxes:gst": D("4.34"),
        "fees:dp_charge": D("-15.34"),
    }
    async with sessions() as db:
        w = (await wallet_service.wallet(db, uid))["INR"]
    # 100,000 + 400 of gross P&L - the intraday charges (16.66 + 25.81).
    assert w.total == w.available == D("100000") + D("400") - D("42.47")

    # The sell delivered again is applied once: no second adjustment, the wallet unchanged.
    assert not await fill(
        oms, sessions, sell, 100, "404.00", f"sd:{uid}:s", OPEN + timedelta(hours=2)
    )
    assert len(await adjustments(sessions, uid)) == 1
    async with sessions() as db:
        assert (await wallet_service.wallet(db, uid))["INR"] == w
    await verify_ok(sessions)


async def test_only_the_same_day_quantity_is_intraday_and_partial_fills_adjust_step_by_step(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # Held from the day before: 50. That day: buy 100 @ 400.00, sell 120 @ 404.00 in two fills
    # (70, then 50). FIFO: the sell closes the day's 100 first (intraday), 20 come from the
    # holding (delivery, so the DP charge stays). By hand, as in the worked example:
    #   delivery: buy 47.50; sell of 48,480: STT 48.48 -> 48, exchange 1.488336 -> 1.49,
    #     SEBI 0.05, GST 18% x 1.54 -> 0.28, DP 15.34 = 65.16. Together 112.66.
    #   reclassified: buy 16.66 (all intraday); the sell's intraday part (40,400) 25.81; its
    #     delivery part (8,080): STT 8.08 -> 8, exchange 0.25, SEBI 0.01, GST 0.05 = 8.31;
    #     DP 15.34. Together 66.12.
    #   adjustment -46.54: brokerage +24.12, STT (10 + 8) - (40 + 48) = -70, stamp duty -5,
    #     GST (2.39 + 2.41 + 0.05) - (0.23 + 0.28) = +4.34; exchange, SEBI and DP unchanged.
    oms = Oms(settings)
    uid = await new_user(sessions, "100000")
    held = await place(oms, sessions, uid, Side.BUY, 50, "400.00")
    assert await fill(oms, sessions, held, 50, "400.00", f"sd:{uid}:h", OPEN - timedelta(days=1))
    buy = await place(oms, sessions, uid, Side.BUY, 100, "400.00")
    assert await fill(oms, sessions, buy, 100, "400.00", f"sd:{uid}:b", OPEN)
    sell = await place(oms, sessions, uid, Side.SELL, 120, "404.00")
    assert await fill(oms, sessions, sell, 70, "404.00", f"sd:{uid}:s1", OPEN + timedelta(hours=1))
    first = await adjustments(sessions, uid)
    assert len(first) == 1 and "70 bought and sold" in first[0][0].memo
    assert await fill(oms, sessions, sell, 50, "404.00", f"sd:{uid}:s2", OPEN + timedelta(hours=2))

    entries = await adjustments(sessions, uid)
    assert len(entries) == 2 and "100 bought and sold" in entries[1][0].memo
    total: dict[str, Decimal] = {}
    for _, postings in entries:
        for account, amount in postings.items():
            total[account] = total.get(account, D(0)) + amount
    assert {a: v for a, v in total.items() if v} == {
        f"user:{uid}:cash": D("46.54"),
        "fees:brokerage": D("24.12"),
        "taxes:stt": D("-70.00"),
        "taxes:stamp_duty": D("-5.00"),
        "taxes:gst": D("4.34"),
    }
    async with sessions() as db:
        w = (await wallet_service.wallet(db, uid))["INR"]
    # Yesterday's 50 cost 20,000 + their delivery charges (STT 20, exchange 0.61, SEBI 0.02,
    # stamp 3, GST 18% x 0.63 -> 0.11 = 23.74); 30 of them are left, 120 sold at 404.
    spent = D("20000") + D("23.74") + D("40000") - D("120") * D("404.00") + D("66.12")
    assert w.total == w.available == D("100000") - spent
    await verify_ok(sessions)


async def test_a_sell_of_holdings_before_the_days_buy_stays_delivery(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    oms = Oms(settings)
    uid = await new_user(sessions, "100000")
    held = await place(oms, sessions, uid, Side.BUY, 10, "400.00")
    assert await fill(oms, sessions, held, 10, "400.00", f"sd:{uid}:h", OPEN - timedelta(days=1))
    sell = await place(oms, sessions, uid, Side.SELL, 10, "404.00")
    assert await fill(oms, sessions, sell, 10, "404.00", f"sd:{uid}:s", OPEN)
    buy = await place(oms, sessions, uid, Side.BUY, 10, "400.00")
    assert await fill(oms, sessions, buy, 10, "400.00", f"sd:{uid}:b", OPEN + timedelta(hours=1))
    # The sell closed no same-day buy (it sold the holding); the buy is a new holding.
    assert await adjustments(sessions, uid) == []
    await verify_ok(sessions)


# --- property: a same-day round trip costs the intraday schedule ------------------------------

TICKS = st.integers(min_value=7400, max_value=8800)  # 370.00 .. 440.00 on BEL's 0.05 tick
LOTS = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=400),  # shares bought, then sold, in this lot
        TICKS,  # buy price
        TICKS,  # sell price
        st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=3),  # buy fills
        st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=3),  # sell fills
    ),
    min_size=1,
    max_size=3,
)


def _parts(qty: int, sizes: list[int]) -> list[int]:
    """``qty`` cut into fills of ``sizes`` (the last takes the rest)."""
    out, left = [], qty
    for size in sizes[:-1]:
        if left > size:
            out.append(size)
            left -= size
    return [*out, left]


async def _round_trips(db_url: str, lots: list[tuple[int, int, int, list[int], list[int]]]) -> None:
    engine = create_engine(db_url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as db:
            await seed_demo_universe(db)
        oms = Oms(make_settings(db_url, Path(tempfile.gettempdir())))
        uid = await new_user(sessions, "10000000")
        calc = default_calculator()
        at, n = OPEN, 0
        intraday_schedule = gross = D(0)
        for qty, buy_ticks, sell_ticks, buy_sizes, sell_sizes in lots:
            for side, ticks, sizes in (
                (Side.BUY, buy_ticks, buy_sizes),
                (Side.SELL, sell_ticks, sell_sizes),
            ):
                px = f"{D(ticks) / 20:.2f}"
                order = await place(oms, sessions, uid, side, qty, px)
                executed = ExecutedOrder.start(Segment.EQUITY_INTRADAY, "NSE", side, DAY)
                for part in _parts(qty, sizes):
                    at, n = at + timedelta(seconds=1), n + 1
                    assert await fill(oms, sessions, order, part, px, f"rt:{uid}:{n}", at)
                    executed = executed.fill(D(px), part)
                # What the same order costs as intraday (MIS) in the OMS: charges per order.
                intraday_schedule += calc.order_charges(executed).total
                gross += (1 if side is Side.SELL else -1) * qty * D(px)
        async with sessions() as db:
            w = (await wallet_service.wallet(db, uid))["INR"]
            report = await wallet_service.verify(db)
            trades = await oms.list_trades(db, uid, limit=500)
        assert report.ok, report.discrepancy  # every entry balanced, balances = postings
        assert (w.held, w.available >= 0) == (0, True)
        charged = D("10000000") + gross - w.total
        assert charged == intraday_schedule
        # The day's fills, as the core reclassifies them, say the same.
        fills = [
            CncFill(t.order_id, Side(t.side), t.quantity, t.price)
            for t in sorted(trades[0], key=lambda t: t.at)
        ]
        assert calc.cnc_day("NSE", DAY, fills).reclassified.total == intraday_schedule
    finally:
        await engine.dispose()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lots=LOTS)
def test_a_same_day_cnc_round_trip_costs_the_intraday_schedule_and_the_ledger_balances(
    db_url: str, lots: list[tuple[int, int, int, list[int], list[int]]]
) -> None:
    # Its own event loop in a worker thread: hypothesis drives a plain function.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(_round_trips(db_url, lots))).result()
