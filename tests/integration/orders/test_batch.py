"""Baskets over HTTP on both backends: ``POST /orders/batch`` answers one result per order in
the request's order; a rejected order holds nothing and never blocks the rest; resubmitting
the basket places nothing twice; a malformed batch (over 100 orders, a duplicate or missing
client id, mixed accounts) is refused as a whole naming the index, and nothing is placed; a
basket of market orders fills on the next quote and the ledger verifies."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.brokers.paper import PaperBroker
from quantdesk.core.market import quote_channel
from quantdesk.errors import AppError
from quantdesk.orders.batch import BatchIn, check_batch
from quantdesk.stream.hub import user_channel
from tests.conftest import AuthedUser, UserFactory
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
BATCH = f"{ORDERS}/batch"


def market(coid: str, qty: int = 1, side: str = "BUY", **extra: object) -> dict[str, object]:
    return {
        "client_order_id": coid,
        "symbol": INFY,
        "side": side,
        "quantity": qty,
        "order_type": "MARKET",
        **extra,
    }


async def orders_of(client: httpx.AsyncClient, user: AuthedUser) -> list[dict[str, Any]]:
    r = await client.get(ORDERS, params={"limit": 500}, headers=user.headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_a_basket_answers_each_order_in_order_and_a_rejection_blocks_nothing(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    await fund(client, admin, trader, "30000")
    body = {
        "orders": [
            limit_buy(10, client_order_id="b-0"),  # 14,400 held
            limit_buy(10, price="1440.05", client_order_id="b-1"),  # off the 0.10 tick: 422
            limit_buy(100, client_order_id="b-2"),  # 144,000: more than is left
            {**limit_buy(5, client_order_id="b-3"), "symbol": "NSE:NOPE"},
            limit_buy(10, client_order_id="b-4"),  # 14,400 more: fits in what is left
        ]
    }
    r = await client.post(BATCH, json=body, headers=trader.headers)
    assert r.status_code == 200, r.text
    out = r.json()
    results = out["results"]
    assert [x["index"] for x in results] == [0, 1, 2, 3, 4]
    assert [x["client_order_id"] for x in results] == [f"b-{i}" for i in range(5)]
    assert [x["status"] for x in results] == [
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert (out["accepted"], out["rejected"]) == (2, 3)
    codes = [x["error"]["code"] if x["error"] else None for x in results]
    assert codes == [
        None,
        "ORDER_PRICE_OFF_TICK",
        "ORDER_INSUFFICIENT_FUNDS",
        "ORDER_UNKNOWN_SYMBOL",
        None,
    ]
    assert [x["error"]["status"] for x in results if x["error"]] == [422, 409, 422]
    assert results[0]["created"] and results[0]["order"]["status"] == "OPEN"
    # What the rejections would have held was never held; only the accepted orders exist.
    w = await wallet_of(client, trader)
    held = sum(Decimal(x["order"]["held_amount"]) for x in results if x["order"])
    assert w["held"] == held > 0 and w["available"] == Decimal(30000) - held
    assert sorted(o["client_order_id"] for o in await orders_of(client, trader)) == ["b-0", "b-4"]

    # The same basket again places nothing twice: the accepted ones come back as they were.
    again = (await client.post(BATCH, json=body, headers=trader.headers)).json()["results"]
    assert [x["status"] for x in again] == [x["status"] for x in results]
    assert again[0]["order"]["id"] == results[0]["order"]["id"] and not again[0]["created"]
    assert len(await orders_of(client, trader)) == 2
    assert (await wallet_of(client, trader))["held"] == held


async def test_a_basket_of_market_orders_fills_on_the_next_quote(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    paper: PaperBroker,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fund(client, admin, trader, "1000000")
    bus = app.state.qd.extras["bus"]
    body = {"orders": [market(f"basket-{i}", qty=1 + i % 3) for i in range(50)]}
    r = await client.post(BATCH, json=body, headers=trader.headers)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 50
    async with bus.subscribe(user_channel(trader.id, "trades")) as sub:
        await bus.publish(quote_channel(INFY), quote("1441.80").to_json())
        seen: set[str] = set()
        while len(seen) < 50:
            _, message = await sub.get(timeout=20)
            seen.add(message["order_id"])
    listed = await orders_of(client, trader)
    assert len(listed) == 50 and {o["status"] for o in listed} == {"FILLED"}
    assert (await wallet_of(client, trader))["held"] == 0
    await verify_ok(sessions)


async def test_a_malformed_batch_is_refused_naming_the_index_and_places_nothing(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser, make_user: UserFactory
) -> None:
    await fund(client, admin, trader, "1000000")
    other = await make_user()
    cases: list[tuple[dict[str, object], int, str, int | None]] = [
        ({"orders": [market(f"x-{i}") for i in range(101)]}, 422, "ORDER_BATCH_TOO_LARGE", 100),
        (
            {"orders": [market("a"), market("b"), market("a")]},
            422,
            "ORDER_BATCH_DUPLICATE_CLIENT_ID",
            2,
        ),
        (
            {"orders": [market("a"), market("b", user_id=other.id)]},
            422,
            "ORDER_BATCH_MIXED_OWNERS",
            1,
        ),
        ({"orders": [market("a", user_id=other.id)]}, 403, "ORDERS_OTHER_USER", 0),
        ({"orders": []}, 422, "ORDER_BATCH_EMPTY", 0),
    ]
    for body, status, code, index in cases:
        r = await client.post(BATCH, json=body, headers=trader.headers)
        assert r.status_code == status, (code, r.text)
        error = r.json()["error"]
        assert error["code"] == code, r.text
        assert error["details"]["index"] == index, r.text
    # A missing client id and a malformed order are the generic validation error, located.
    no_id = {k: v for k, v in market("z").items() if k != "client_order_id"}
    r = await client.post(BATCH, json={"orders": [market("a"), no_id]}, headers=trader.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "1" in json_locs(r.json())
    assert await orders_of(client, trader) == []
    assert (await wallet_of(client, trader))["held"] == 0
    # A quantity or price the schema rules out makes the batch malformed, naming the index.
    for bad, code in (
        (market("b", qty=0), "ORDER_BAD_QUANTITY"),
        (limit_buy(1, price="AAA", client_order_id="b"), "ORDER_BAD_PRICE"),
    ):
        r = await client.post(BATCH, json={"orders": [market("a"), bad]}, headers=trader.headers)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["details"]["index"] == 1
    assert await orders_of(client, trader) == []


def json_locs(doc: dict[str, Any]) -> str:
    return str(doc["error"].get("details"))


async def test_an_admin_places_a_basket_for_one_account_and_a_viewer_cannot(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser, viewer: AuthedUser
) -> None:
    await fund(client, admin, trader, "100000")
    body = {"orders": [market("adm-1", user_id=trader.id), market("adm-2", user_id=trader.id)]}
    r = await client.post(BATCH, json=body, headers=admin.headers)
    assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
    assert {o["user_id"] for o in await orders_of(client, trader)} == {trader.id}
    r = await client.post(BATCH, json={"orders": [market("v-1")]}, headers=viewer.headers)
    assert r.status_code == 403


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    coids=st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), min_size=1, max_size=8),
    owners=st.lists(st.sampled_from([None, 1, 2]), min_size=8, max_size=8),
    caller=st.sampled_from([1, 2]),
    is_admin=st.booleans(),
)
def test_check_batch_refuses_exactly_the_malformed_batches(
    coids: list[str], owners: list[int | None], caller: int, is_admin: bool
) -> None:
    body = BatchIn.model_validate(
        {
            "orders": [
                {**market(c), "user_id": owner}
                for c, owner in zip(coids, owners[: len(coids)], strict=True)
            ]
        }
    )
    accounts = {owner or caller for owner in owners[: len(coids)]}
    duplicate = len(set(coids)) != len(coids)
    if duplicate:
        expected = "ORDER_BATCH_DUPLICATE_CLIENT_ID"
    elif len(accounts) > 1:
        expected = "ORDER_BATCH_MIXED_OWNERS"
    elif accounts != {caller} and not is_admin:
        expected = "ORDERS_OTHER_USER"
    else:
        assert check_batch(body, caller, is_admin) == accounts.pop()
        return
    with pytest.raises(AppError) as caught:
        check_batch(body, caller, is_admin)
    assert caught.value.code == expected
