"""Orders over HTTP and the paper broker, on both backends: holds, fills, cancels, modifies,
idempotency, access rules and bad input (refused with a code, nothing written)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.api import create_app
from quantdesk.brokers.paper import PaperBroker
from quantdesk.core.market import quote_channel
from quantdesk.orders.models import OrderEventRow, OrderRow, TradeRow
from quantdesk.orders.service import Oms
from quantdesk.stream.hub import user_channel
from quantdesk.wallet.models import JournalEntryRow
from tests.conftest import AuthedUser, client_for, make_settings
from tests.integration.orders.conftest import (
    INFY,
    ORDERS,
    fund,
    limit_buy,
    quote,
    verify_ok,
    wallet_of,
)

pytestmark = pytest.mark.usefixtures("universe")


async def place(
    client: httpx.AsyncClient, user: AuthedUser, body: dict[str, object], expect: int = 201
) -> dict[str, object]:
    r = await client.post(ORDERS, json=body, headers=user.headers)
    assert r.status_code == expect, r.text
    result: dict[str, object] = r.json()
    return result


async def get_order(client: httpx.AsyncClient, user: AuthedUser, oid: object) -> dict[str, object]:
    r = await client.get(f"{ORDERS}/{oid}", headers=user.headers)
    assert r.status_code == 200, r.text
    result: dict[str, object] = r.json()
    return result


async def test_limit_buy_holds_funds_and_fills_on_a_quote_through_the_limit(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    paper: PaperBroker,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fund(client, admin, trader, "100000")
    order = await place(client, trader, limit_buy(10, "1440.00"))
    assert order["status"] == "OPEN"
    held = Decimal(str(order["held_amount"]))
    assert held > Decimal("14400")  # the worst-case cost plus estimated charges
    w = await wallet_of(client, trader)
    assert (w["held"], w["available"]) == (held, Decimal(100000) - held)

    await paper.reload()
    # The paper broker's book holds every live order in the database, other tests' too.
    await paper.on_quote(quote("1441.00"))  # ask 1441.10: above the limit
    assert (await get_order(client, trader, order["id"]))["status"] == "OPEN"
    await paper.on_quote(quote("1439.80"))  # ask 1439.90: fills at the touch

    filled = await get_order(client, trader, order["id"])
    assert filled["status"] == "FILLED"
    assert (filled["filled_quantity"], filled["average_price"]) == (10, "1439.90")
    assert filled["held_amount"] == "0.00"
    assert [e["action"] for e in filled["events"]] == ["ACCEPT", "FILL"]  # type: ignore[index]

    trades = (await client.get("/api/v1/trades", headers=trader.headers)).json()["items"]
    assert len(trades) == 1
    trade = trades[0]
    assert (trade["quantity"], trade["price"], trade["order_id"]) == (10, "1439.90", order["id"])
    fees = Decimal(trade["fees"])
    assert fees > 0

    positions = (await client.get("/api/v1/positions", headers=trader.headers)).json()
    assert len(positions) == 1
    pos = positions[0]
    assert (pos["symbol"], pos["quantity"], pos["average_price"]) == (INFY, 10, "1439.90")
    assert pos["fees"] == trade["fees"]
    # Marked to the latest quote when one is cached, else the last close.
    assert pos["unrealised_pnl"] is not None

    w = await wallet_of(client, trader)
    assert w["held"] == 0
    assert w["available"] == Decimal(100000) - Decimal("14399.00") - fees

    async with sessions() as db:
        kinds = (
            await db.execute(select(JournalEntryRow.kind).where(JournalEntryRow.ref == order["id"]))
        ).scalars()
        kinds_list = sorted(kinds)
    assert kinds_list.count("HOLD") == 1 and kinds_list.count("TRADE") == 1
    assert {"FEE", "TAX"} <= set(kinds_list)
    await verify_ok(sessions)


async def test_a_quote_on_the_bus_fills_a_market_order(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    paper: PaperBroker,
) -> None:
    await fund(client, admin, trader, "50000")
    bus = app.state.qd.extras["bus"]
    order = await place(
        client, trader, {"symbol": INFY, "side": "BUY", "quantity": 5, "order_type": "MARKET"}
    )
    async with bus.subscribe(user_channel(trader.id, "trades")) as sub:
        await bus.publish(quote_channel(INFY), quote("1441.80").to_json())
        _channel, message = await sub.get(timeout=10)
    assert message["type"] == "trade" and message["order_id"] == order["id"]
    filled = await get_order(client, trader, order["id"])
    assert filled["status"] == "FILLED" and filled["average_price"] == "1441.90"
    assert (await wallet_of(client, trader))["held"] == 0


async def test_partial_fill_then_cancel_releases_exactly_the_rest(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    oms: Oms,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fund(client, admin, trader, "100000")
    order = await place(client, trader, limit_buy(10, "1440.00"))
    async with sessions() as db:
        done = await oms.apply_fill(
            db, str(order["id"]), 4, Decimal("1439.50"), "test:partial:1", datetime.now(UTC)
        )
    assert done.applied
    part = await get_order(client, trader, order["id"])
    assert (part["status"], part["filled_quantity"]) == ("PARTIALLY_FILLED", 4)
    fees = Decimal(
        (await client.get("/api/v1/trades", headers=trader.headers)).json()["items"][0]["fees"]
    )
    spent = Decimal("1439.50") * 4 + fees
    assert Decimal(str(part["held_amount"])) == Decimal(str(order["held_amount"])) - spent
    assert (await wallet_of(client, trader))["held"] == Decimal(str(part["held_amount"]))

    r = await client.delete(f"{ORDERS}/{order['id']}", headers=trader.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["held_amount"]) == ("CANCELLED", "0.00")
    w = await wallet_of(client, trader)
    assert (w["held"], w["available"]) == (Decimal(0), Decimal(100000) - spent)
    again = await client.delete(f"{ORDERS}/{order['id']}", headers=trader.headers)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "ORDER_NOT_LIVE")
    await verify_ok(sessions)


async def test_modify_moves_the_hold_to_exactly_what_the_changed_order_needs(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fund(client, admin, trader, "200000")
    order = await place(client, trader, limit_buy(10, "1440.00"))
    twenty = await place(client, trader, limit_buy(20, "1445.00"))
    five = await place(client, trader, limit_buy(5, "1445.00"))

    r = await client.patch(
        f"{ORDERS}/{order['id']}",
        json={"quantity": 20, "limit_price": "1445.00"},
        headers=trader.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["held_amount"] == twenty["held_amount"]
    r = await client.patch(f"{ORDERS}/{order['id']}", json={"quantity": 5}, headers=trader.headers)
    assert r.json()["held_amount"] == five["held_amount"]
    total_held = sum(Decimal(str(o["held_amount"])) for o in (twenty, five)) + Decimal(
        r.json()["held_amount"]
    )
    assert (await wallet_of(client, trader))["held"] == total_held

    r = await client.patch(f"{ORDERS}/{order['id']}", json={}, headers=trader.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "ORDER_NOTHING_TO_MODIFY")
    r = await client.patch(
        f"{ORDERS}/{order['id']}", json={"limit_price": "1440.05"}, headers=trader.headers
    )
    assert (r.status_code, r.json()["error"]["code"]) == (422, "ORDER_PRICE_OFF_TICK")
    r = await client.patch(
        f"{ORDERS}/{order['id']}", json={"quantity": 10_000}, headers=trader.headers
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "ORDER_INSUFFICIENT_FUNDS")
    assert (await wallet_of(client, trader))["held"] == total_held
    await verify_ok(sessions)


async def test_insufficient_funds_rejects_the_order_and_holds_nothing(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    await fund(client, admin, trader, "1000")
    r = await client.post(ORDERS, json=limit_buy(10), headers=trader.headers)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "ORDER_INSUFFICIENT_FUNDS"
    w = await wallet_of(client, trader)
    assert (w["available"], w["held"]) == (Decimal(1000), Decimal(0))
    listed = (await client.get(ORDERS, headers=trader.headers)).json()
    assert listed["items"] == []


async def test_resubmitting_a_client_order_id_returns_the_original(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    await fund(client, admin, trader, "100000")
    first = await place(client, trader, limit_buy(10, client_order_id="strat-1:abc"))
    again = await place(client, trader, limit_buy(7, client_order_id="strat-1:abc"), expect=200)
    assert again["id"] == first["id"] and again["quantity"] == 10
    assert (await wallet_of(client, trader))["held"] == Decimal(str(first["held_amount"]))
    assert len((await client.get(ORDERS, headers=trader.headers)).json()["items"]) == 1


async def test_concurrent_resubmits_of_one_client_order_id_make_one_order(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    await fund(client, admin, trader, "100000")
    body = limit_buy(3, client_order_id="race-1")
    rs = await asyncio.gather(
        *(client.post(ORDERS, json=body, headers=trader.headers) for _ in range(8))
    )
    assert sorted(r.status_code for r in rs) == [200] * 7 + [201]
    assert len({r.json()["id"] for r in rs}) == 1
    assert len((await client.get(ORDERS, headers=trader.headers)).json()["items"]) == 1


async def test_two_hundred_concurrent_orders_over_http_never_overdraw_the_account(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Enough for a handful of the 200: each request races the others for the same wallet.
    await fund(client, admin, trader, "10000")
    rs = await asyncio.gather(
        *(
            client.post(
                ORDERS, json=limit_buy(1, client_order_id=f"burst-{n}"), headers=trader.headers
            )
            for n in range(200)
        )
    )
    codes = [r.status_code for r in rs]
    assert set(codes) == {201, 409}, codes
    refused = {r.json()["error"]["code"] for r in rs if r.status_code == 409}
    assert refused == {"ORDER_INSUFFICIENT_FUNDS"}
    accepted = [r.json() for r in rs if r.status_code == 201]
    hold = Decimal(accepted[0]["held_amount"])
    assert len(accepted) == int(Decimal(10000) // hold)  # as many as fit, and no more
    w = await wallet_of(client, trader)
    assert w["held"] == hold * len(accepted)
    assert Decimal(0) <= w["available"] < hold
    listed = (await client.get(ORDERS, params={"limit": 200}, headers=trader.headers)).json()
    assert len(listed["items"]) == len(accepted)
    await verify_ok(sessions)


async def test_the_same_broker_fill_delivered_concurrently_is_applied_once(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    oms: Oms,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fund(client, admin, trader, "100000")
    order = await place(client, trader, limit_buy(10))
    at = datetime.now(UTC)

    async def deliver() -> bool:
        async with sessions() as db:
            return (
                await oms.apply_fill(db, str(order["id"]), 4, Decimal("1440.00"), "twice:1", at)
            ).applied

    outcomes = await asyncio.gather(*(deliver() for _ in range(6)))
    assert sorted(outcomes) == [False] * 5 + [True]
    r = await client.get(f"{ORDERS}/{order['id']}", headers=trader.headers)
    assert r.json()["filled_quantity"] == 4
    await verify_ok(sessions)


async def test_a_broker_trade_id_delivered_twice_is_applied_once(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    oms: Oms,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fund(client, admin, trader, "100000")
    order = await place(client, trader, limit_buy(10))
    at = datetime.now(UTC)
    async with sessions() as db:
        first = await oms.apply_fill(db, str(order["id"]), 3, Decimal("1440.00"), "dup:1", at)
    before = await wallet_of(client, trader)
    async with sessions() as db:
        second = await oms.apply_fill(db, str(order["id"]), 3, Decimal("1440.00"), "dup:1", at)
    assert first.applied and not second.applied
    assert second.order.filled_quantity == 3
    assert await wallet_of(client, trader) == before
    async with sessions() as db:
        n = await db.execute(
            select(func.count()).select_from(TradeRow).where(TradeRow.order_id == order["id"])
        )
        assert n.scalar_one() == 1
    await verify_ok(sessions)


async def test_cnc_sell_needs_holdings_but_an_mis_short_is_allowed(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    await fund(client, admin, trader, "10000")
    sell = {
        "symbol": INFY,
        "side": "SELL",
        "quantity": 5,
        "order_type": "LIMIT",
        "limit_price": "1445.00",
    }
    r = await client.post(ORDERS, json={**sell, "product": "CNC"}, headers=trader.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "ORDER_INSUFFICIENT_HOLDINGS")
    short = await place(client, trader, {**sell, "product": "MIS"})
    assert short["status"] == "OPEN"


async def test_cnc_sell_of_held_shares_and_its_fill_realise_pnl(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    paper: PaperBroker,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fund(client, admin, trader, "100000")
    await place(client, trader, limit_buy(10, "1440.00"))
    await paper.reload()
    await paper.on_quote(quote("1430.00"))
    sell = {
        "symbol": INFY,
        "side": "SELL",
        "quantity": 6,
        "order_type": "LIMIT",
        "limit_price": "1450.00",
        "product": "CNC",
    }
    await place(client, trader, sell)
    r = await client.post(ORDERS, json={**sell, "quantity": 5}, headers=trader.headers)
    assert r.json()["error"]["code"] == "ORDER_INSUFFICIENT_HOLDINGS"  # 4 left uncovered
    await paper.reload()
    await paper.on_quote(quote("1451.00"))  # bid 1450.90 >= 1450
    pos = (await client.get("/api/v1/positions", headers=trader.headers)).json()[0]
    assert pos["quantity"] == 4
    assert Decimal(pos["realised_pnl"]) == (Decimal("1450.90") - Decimal("1430.10")) * 6
    await verify_ok(sessions)


BAD = [
    ("zero quantity", {"quantity": 0}, 422, "ORDER_BAD_QUANTITY"),
    ("negative quantity", {"quantity": -5}, 422, "ORDER_BAD_QUANTITY"),
    ("huge quantity", {"quantity": 10**30}, 422, "ORDER_BAD_QUANTITY"),
    ("fractional quantity", {"quantity": 1.5}, 422, "VALIDATION_ERROR"),
    ("quantity as text", {"quantity": "10"}, 422, "VALIDATION_ERROR"),
    ("off-tick price", {"limit_price": "1440.05"}, 422, "ORDER_PRICE_OFF_TICK"),
    ("NaN price", {"limit_price": "NaN"}, 422, "ORDER_BAD_PRICE"),
    ("exponent price", {"limit_price": "1.44e3"}, 422, "ORDER_BAD_PRICE"),
    ("zero price", {"limit_price": "0"}, 422, "ORDER_BAD_PRICE"),
    ("price outside the band", {"limit_price": "2000.00"}, 422, "ORDER_OUTSIDE_BAND"),
    ("unknown symbol", {"symbol": "NSE:NOSUCH"}, 422, "ORDER_UNKNOWN_SYMBOL"),
    ("malformed symbol", {"symbol": "INFY"}, 422, "ORDER_UNKNOWN_SYMBOL"),
    ("limit without a price", {"limit_price": None}, 422, "ORDER_PRICE_MISSING"),
    ("market with a price", {"order_type": "MARKET"}, 422, "ORDER_PRICE_NOT_ALLOWED"),
    ("unknown field", {"leverage": 5}, 422, "VALIDATION_ERROR"),
    ("bad side", {"side": "HOLD"}, 422, "VALIDATION_ERROR"),
]


@pytest.mark.parametrize(("case", "change", "status", "code"), BAD, ids=[b[0] for b in BAD])
async def test_bad_input_is_refused_with_a_code_and_nothing_is_written(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    sessions: async_sessionmaker[AsyncSession],
    case: str,
    change: dict[str, object],
    status: int,
    code: str,
) -> None:
    await fund(client, admin, trader, "100000")
    before = await wallet_of(client, trader)
    r = await client.post(ORDERS, json={**limit_buy(), **change}, headers=trader.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert await wallet_of(client, trader) == before
    async with sessions() as db:
        n = await db.execute(select(func.count()).where(OrderRow.user_id == trader.id))
        assert n.scalar_one() == 0


async def test_nan_quantity_in_the_json_is_refused(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    raw = json.dumps(limit_buy()).replace('"quantity": 10', '"quantity": NaN')
    r = await client.post(
        ORDERS, content=raw, headers={**trader.headers, "Content-Type": "application/json"}
    )
    assert r.status_code in (400, 422) and r.json()["error"]["code"] in (
        "VALIDATION_ERROR",
        "MALFORMED_JSON",
    )


async def test_another_users_order_is_not_found_but_an_admin_sees_it(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    make_user: object,
) -> None:
    from quantdesk.auth.roles import Role

    other = await make_user(Role.TRADER)  # type: ignore[operator]
    await fund(client, admin, trader, "100000")
    order = await place(client, trader, limit_buy(2))
    url = f"{ORDERS}/{order['id']}"
    for method, kwargs in (("GET", {}), ("PATCH", {"json": {"quantity": 1}}), ("DELETE", {})):
        r = await client.request(method, url, headers=other.headers, **kwargs)  # type: ignore[arg-type]
        assert (r.status_code, r.json()["error"]["code"]) == (404, "ORDER_NOT_FOUND"), method
    missing = await client.get(f"{ORDERS}/{'0' * 32}", headers=trader.headers)
    assert missing.status_code == 404
    assert (await client.get(url, headers=admin.headers)).status_code == 200
    listed = await client.get(ORDERS, params={"user_id": trader.id}, headers=other.headers)
    assert listed.status_code == 403
    assert (await client.get(ORDERS, headers=other.headers)).json()["items"] == []
    by_admin = await client.get(ORDERS, params={"user_id": trader.id}, headers=admin.headers)
    assert [o["id"] for o in by_admin.json()["items"]] == [order["id"]]


async def test_a_viewer_cannot_place_orders(client: httpx.AsyncClient, viewer: AuthedUser) -> None:
    r = await client.post(ORDERS, json=limit_buy(), headers=viewer.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "FORBIDDEN_ROLE")


async def test_orders_list_filters_by_status_and_pages_with_a_cursor(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    await fund(client, admin, trader, "100000")
    ids = [(await place(client, trader, limit_buy(1)))["id"] for _ in range(3)]
    await client.delete(f"{ORDERS}/{ids[0]}", headers=trader.headers)
    page1 = (await client.get(ORDERS, params={"limit": 2}, headers=trader.headers)).json()
    assert [o["id"] for o in page1["items"]] == [ids[2], ids[1]]
    page2 = (
        await client.get(
            ORDERS, params={"limit": 2, "cursor": page1["next_cursor"]}, headers=trader.headers
        )
    ).json()
    assert [o["id"] for o in page2["items"]] == [ids[0]] and page2["next_cursor"] is None
    open_only = (await client.get(ORDERS, params={"status": "OPEN"}, headers=trader.headers)).json()
    assert {o["id"] for o in open_only["items"]} == {ids[1], ids[2]}
    bad = await client.get(ORDERS, params={"cursor": "nonsense"}, headers=trader.headers)
    assert bad.status_code == 422


async def test_orders_list_filters_by_several_statuses_and_names_an_unknown_one(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    await fund(client, admin, trader, "100000")
    ids = [(await place(client, trader, limit_buy(1)))["id"] for _ in range(3)]
    await client.delete(f"{ORDERS}/{ids[0]}", headers=trader.headers)

    async def listed(query: str) -> set[object]:
        r = await client.get(f"{ORDERS}?{query}", headers=trader.headers)
        assert r.status_code == 200, r.text
        return {o["id"] for o in r.json()["items"]}

    assert await listed("status=OPEN&status=CANCELLED") == set(ids)
    assert await listed("status=CANCELLED&status=FILLED") == {ids[0]}
    assert await listed("status=FILLED&status=EXPIRED") == set()
    assert await listed("status=OPEN&status=OPEN") == {ids[1], ids[2]}
    assert await listed("") == set(ids)
    bad = await client.get(f"{ORDERS}?status=OPEN&status=SHIPPED", headers=trader.headers)
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert error["code"] == "ORDER_BAD_STATUS" and "'SHIPPED'" in error["message"]
    assert error["details"]["status"] == "SHIPPED"
    assert "CANCELLED" in error["details"]["allowed"]
    spec = (await client.get("/api/v1/openapi.json")).json()
    [param] = [
        p for p in spec["paths"]["/api/v1/orders"]["get"]["parameters"] if p["name"] == "status"
    ]
    assert param["schema"]["type"] == "array"
    assert param["schema"]["items"] == {"$ref": "#/components/schemas/OrderStatus"}


async def test_an_order_carries_its_last_transitions_reason_without_a_query_per_order(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser, app: FastAPI
) -> None:
    await fund(client, admin, trader, "100000")
    placed = [await place(client, trader, limit_buy(1)) for _ in range(3)]
    assert {o["reason"] for o in placed} == {"accepted"}
    again = await place(
        client, trader, {**limit_buy(1), "client_order_id": placed[0]["client_order_id"]}, 200
    )
    assert again["reason"] == "accepted"
    r = await client.patch(
        f"{ORDERS}/{placed[1]['id']}", json={"quantity": 2}, headers=trader.headers
    )
    assert r.json()["reason"] == "modified"
    r = await client.delete(f"{ORDERS}/{placed[2]['id']}", headers=trader.headers)
    assert (r.json()["status"], r.json()["reason"]) == ("CANCELLED", "cancelled by user")

    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    engine = app.state.qd.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        page = (await client.get(ORDERS, headers=trader.headers)).json()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    reasons = {o["id"]: o["reason"] for o in page["items"]}
    assert reasons == {
        placed[0]["id"]: "accepted",
        placed[1]["id"]: "modified",
        placed[2]["id"]: "cancelled by user",
    }
    # The reasons come with the page: one statement reads order_events, not one per order.
    assert sum("order_events" in s for s in statements) == 1
    detail = await get_order(client, trader, placed[2]["id"])
    assert detail["reason"] == detail["events"][-1]["reason"] == "cancelled by user"


async def test_every_transition_is_stored_with_time_and_reason(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fund(client, admin, trader, "100000")
    order = await place(client, trader, limit_buy(2))
    await client.patch(f"{ORDERS}/{order['id']}", json={"quantity": 3}, headers=trader.headers)
    await client.delete(f"{ORDERS}/{order['id']}", headers=trader.headers)
    async with sessions() as db:
        rows = (
            (
                await db.execute(
                    select(OrderEventRow)
                    .where(OrderEventRow.order_id == order["id"])
                    .order_by(OrderEventRow.id)
                )
            )
            .scalars()
            .all()
        )
    assert [(e.action, e.from_status, e.to_status) for e in rows] == [
        ("ACCEPT", "NEW", "OPEN"),
        ("MODIFY", "OPEN", "OPEN"),
        ("CANCEL", "OPEN", "CANCELLED"),
    ]
    assert all(e.at.tzinfo is not None and e.reason for e in rows)


async def test_with_the_random_feed_a_market_order_fills_on_the_next_quote(
    db_url: str, tmp_path: Path, admin: AuthedUser, trader: AuthedUser
) -> None:
    # The demo set-up: `serve` with QUANTDESK_FEED=random (the universe is seeded by then).
    demo = make_settings(db_url, tmp_path / "demo", feed="random", feed_interval_seconds=0.05)
    application = create_app(demo)
    async with application.router.lifespan_context(application), client_for(application) as c:
        await fund(c, admin, trader, "50000")
        body = {"symbol": INFY, "side": "BUY", "quantity": 2, "order_type": "MARKET"}
        order = await place(c, trader, body)
        for _ in range(100):
            current = await get_order(c, trader, order["id"])
            if current["status"] == "FILLED":
                break
            await asyncio.sleep(0.05)
        assert current["status"] == "FILLED", current
        assert (await wallet_of(c, trader))["held"] == 0
        positions = (await c.get("/api/v1/positions", headers=trader.headers)).json()
        assert positions[0]["quantity"] == 2 and positions[0]["last_price"] is not None
