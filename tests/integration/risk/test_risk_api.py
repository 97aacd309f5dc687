"""Risk over the API on both backends: limits at their boundaries, bad input, kill switches
(with concurrent placement), halts from the monitor and their re-arm, restarts, audit and
metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.api import create_app
from quantdesk.brokers.paper import PaperBroker
from quantdesk.core.risk import HaltKind
from quantdesk.observability.audit import AuditLog
from quantdesk.orders.models import OrderRow
from quantdesk.risk.control import RiskControl
from quantdesk.settings import Settings
from tests.conftest import AuthedUser, client_for
from tests.integration.orders.conftest import ORDERS, fund, limit_buy, quote, verify_ok

pytestmark = pytest.mark.usefixtures("universe")
LIMITS = "/api/v1/risk/limits"
KILL = "/api/v1/risk/kill-switch"
D = Decimal


async def set_limits(
    client: httpx.AsyncClient, admin: AuthedUser, user: AuthedUser | None, **limits: Any
) -> None:
    params = {} if user is None else {"user_id": user.id}
    r = await client.put(LIMITS, json=limits, params=params, headers=admin.headers)
    assert r.status_code == 200, r.text


async def post_order(
    client: httpx.AsyncClient, user: AuthedUser, **overrides: object
) -> httpx.Response:
    return await client.post(ORDERS, json=limit_buy(**overrides), headers=user.headers)  # type: ignore[arg-type]


def control_of(app: FastAPI) -> RiskControl:
    control = app.state.qd.extras["risk"]
    assert isinstance(control, RiskControl)
    return control


# --- limits at their boundaries ---------------------------------------------------------------

# INFY in the demo universe: last 1441.80, tick 0.10. A limit buy of 10 @ 1440.00 is worth 14,400.
BOUNDARIES: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any], int, str]] = [
    ({"max_order_quantity": 10}, {"qty": 10}, {"qty": 11}, 422, "RISK_MAX_ORDER_QUANTITY"),
    (
        {"max_order_value": "14400"},
        {"qty": 10},
        {"qty": 10, "price": "1440.10"},
        422,
        "RISK_MAX_ORDER_VALUE",
    ),
    # 1% of 1441.80 is 14.418: 1456.20 is 0.9988% away, 1456.30 is 1.0057%.
    ({"fat_finger_pct": "1"}, {"price": "1456.20"}, {"price": "1456.30"}, 422, "RISK_FAT_FINGER"),
    # The position after the order, at the mark 1441.80: 10 shares are worth 14,418.
    (
        {"max_position_value": "14418"},
        {"qty": 10},
        {"qty": 11},
        409,
        "RISK_MAX_POSITION_VALUE",
    ),
    ({"max_gross_exposure": "14418"}, {"qty": 10}, {"qty": 11}, 409, "RISK_MAX_GROSS_EXPOSURE"),
    ({"allowed_products": ["CNC"]}, {}, {"product": "MIS"}, 422, "RISK_PRODUCT_NOT_ALLOWED"),
]


@pytest.mark.parametrize(
    ("limits", "at", "over", "status", "code"),
    BOUNDARIES,
    ids=[b[-1].lower() for b in BOUNDARIES],
)
async def test_a_limit_lets_an_order_exactly_at_it_through_and_refuses_one_just_over(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    limits: dict[str, Any],
    at: dict[str, Any],
    over: dict[str, Any],
    status: int,
    code: str,
) -> None:
    await fund(client, admin, trader, "1000000")
    await set_limits(client, admin, trader, **limits)
    ok = await post_order(client, trader, **at)
    assert ok.status_code == 201, ok.text
    # The accepted order must not count against the next one: cancel it first.
    r = await client.delete(f"{ORDERS}/{ok.json()['id']}", headers=trader.headers)
    assert r.status_code == 200, r.text
    before = (await client.get("/api/v1/wallet", headers=trader.headers)).json()
    refused = await post_order(client, trader, **over)
    assert refused.status_code == status, refused.text
    err = refused.json()["error"]
    assert err["code"] == code
    assert set(err["details"]) == {"limit", "value", "allowed"}
    # Nothing written: no order row beyond the cancelled one, no hold.
    assert (await client.get("/api/v1/wallet", headers=trader.headers)).json() == before
    listed = (await client.get(ORDERS, headers=trader.headers)).json()["items"]
    assert [o["status"] for o in listed] == ["CANCELLED"]


async def test_only_allowed_exchanges_trade(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    await fund(client, admin, trader, "1000000")
    await set_limits(client, admin, trader, allowed_exchanges=["BSE"])
    r = await post_order(client, trader, qty=1)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "RISK_EXCHANGE_NOT_ALLOWED")
    assert r.json()["error"]["details"] == {
        "limit": "allowed_exchanges",
        "value": "NSE",
        "allowed": "BSE",
    }
    await set_limits(client, admin, trader, allowed_exchanges=["BSE", "NSE"])
    assert (await post_order(client, trader, qty=1)).status_code == 201


async def test_open_orders_and_order_rate_limits(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser, make_user: Any
) -> None:
    await fund(client, admin, trader, "1000000")
    await set_limits(client, admin, trader, max_open_orders=2)
    for _ in range(2):
        assert (await post_order(client, trader, qty=1)).status_code == 201
    r = await post_order(client, trader, qty=1)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "RISK_MAX_OPEN_ORDERS")

    other = await make_user()
    await fund(client, admin, other, "1000000")
    await set_limits(client, admin, other, max_orders_per_minute=3)
    for _ in range(3):
        assert (await post_order(client, other, qty=1)).status_code == 201
    r = await post_order(client, other, qty=1)
    assert (r.status_code, r.json()["error"]["code"]) == (429, "RISK_ORDER_RATE")


async def test_defaults_apply_to_every_account_and_an_override_wins(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser, make_user: Any
) -> None:
    other = await make_user()
    for u in (trader, other):
        await fund(client, admin, u, "1000000")
    try:
        await set_limits(client, admin, None, max_order_quantity=5)
        await set_limits(client, admin, other, max_order_quantity=50)
        assert (await post_order(client, trader, qty=6)).status_code == 422
        assert (await post_order(client, other, qty=6)).status_code == 201
        r = await client.get(LIMITS, headers=trader.headers)
        body = r.json()
        assert body["effective"]["max_order_quantity"] == 5
        assert body["defaults"]["max_order_quantity"] == 5 and body["override"] is None
    finally:
        await set_limits(client, admin, None)  # no platform limits for the other tests
    assert (await post_order(client, trader, qty=6)).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"max_order_quantity": 0},
        {"max_order_quantity": -5},
        {"max_order_value": "-1"},
        {"max_order_value": "0"},
        {"max_order_value": "1e5"},
        {"fat_finger_pct": "101"},
        {"max_drawdown_pct": "0"},
        {"allowed_exchanges": ["NYSE"]},
        {"allowed_products": []},
        {"max_leverage": 3},
        {"daily_loss_limit": "NaN"},
    ],
)
async def test_nonsensical_limits_are_refused_and_change_nothing(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser, body: dict[str, Any]
) -> None:
    await set_limits(client, admin, trader, max_order_quantity=7)
    before = (await client.get(LIMITS, params={"user_id": trader.id}, headers=admin.headers)).json()
    r = await client.put(LIMITS, json=body, params={"user_id": trader.id}, headers=admin.headers)
    assert r.status_code == 422, r.text
    after = (await client.get(LIMITS, params={"user_id": trader.id}, headers=admin.headers)).json()
    assert after == before


async def test_traders_cannot_change_limits_and_unknown_accounts_are_404(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    r = await client.put(LIMITS, json={"max_order_quantity": 1}, headers=trader.headers)
    assert r.status_code == 403
    r = await client.put(
        LIMITS, json={"max_order_quantity": 1}, params={"user_id": 999999}, headers=admin.headers
    )
    assert (r.status_code, r.json()["error"]["code"]) == (404, "USER_NOT_FOUND")
    r = await client.get(LIMITS, params={"user_id": admin.id}, headers=trader.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "RISK_OTHER_USER")


# --- kill switches ----------------------------------------------------------------------------


async def test_an_account_kill_switch_cancels_open_orders_and_blocks_new_ones(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fund(client, admin, trader, "100000")
    open_ids = [(await post_order(client, trader, qty=2)).json()["id"] for _ in range(3)]
    engage = {"scope": "account", "engaged": True, "reason": "strategy misbehaving"}
    r = await client.post(KILL, json=engage, headers=trader.headers)
    assert r.status_code == 200, r.text
    assert r.json()["cancelled_orders"] == 3 and r.json()["state"]["kill_switch"]
    for oid in open_ids:
        assert (await client.get(f"{ORDERS}/{oid}", headers=trader.headers)).json()[
            "status"
        ] == "CANCELLED"
    refused = await post_order(client, trader, qty=1)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "RISK_KILL_SWITCH"
    assert "strategy misbehaving" in refused.json()["error"]["message"]
    w = (await client.get("/api/v1/wallet", headers=trader.headers)).json()["balances"]["INR"]
    assert w["held"] == "0.00"
    state = (await client.get("/api/v1/risk/state", headers=trader.headers)).json()
    assert state["account"]["kill_switch"] and not state["trading_allowed"]
    # Engaging twice is a conflict; the trader who engaged it may release it.
    r = await client.post(KILL, json=engage, headers=trader.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "RISK_KILL_SWITCH_UNCHANGED")
    release = {"scope": "account", "engaged": False, "reason": "fixed"}
    assert (await client.post(KILL, json=release, headers=trader.headers)).status_code == 200
    assert (await post_order(client, trader, qty=1)).status_code == 201
    await verify_ok(sessions)


async def test_an_admin_engaged_switch_cannot_be_released_by_the_trader_nor_the_global_one(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser, viewer: AuthedUser
) -> None:
    engage = {"scope": "account", "user_id": trader.id, "engaged": True, "reason": "review"}
    assert (await client.post(KILL, json=engage, headers=admin.headers)).status_code == 200
    release = {"scope": "account", "engaged": False, "reason": "mine"}
    r = await client.post(KILL, json=release, headers=trader.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "RISK_KILL_SWITCH_LOCKED")
    glob = {"scope": "global", "engaged": True, "reason": "x"}
    r = await client.post(KILL, json=glob, headers=trader.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "RISK_GLOBAL_KILL_ADMIN_ONLY")
    assert (await client.post(KILL, json=engage, headers=viewer.headers)).status_code == 403
    other = {"scope": "account", "user_id": admin.id, "engaged": True, "reason": "x"}
    assert (await client.post(KILL, json=other, headers=trader.headers)).status_code == 403
    state = (await client.get("/api/v1/risk/state", headers=trader.headers)).json()
    assert state["account"]["kill_switch"] and not state["global"]["kill_switch"]
    release["user_id"] = trader.id
    assert (await client.post(KILL, json=release, headers=admin.headers)).status_code == 200


async def test_the_global_kill_switch_stops_everyone_persists_across_a_restart_and_is_audited(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fund(client, admin, trader, "100000")
    oid = (await post_order(client, trader, qty=1)).json()["id"]
    glob = {"scope": "global", "engaged": True, "reason": "exchange outage"}
    try:
        r = await client.post(KILL, json=glob, headers=admin.headers)
        assert r.status_code == 200, r.text
        assert r.json()["cancelled_orders"] >= 1
        order = (await client.get(f"{ORDERS}/{oid}", headers=trader.headers)).json()
        assert order["status"] == "CANCELLED"
        # A new process on the same database still refuses orders.
        restarted = create_app(settings)
        async with restarted.router.lifespan_context(restarted), client_for(restarted) as again:
            refused = await again.post(ORDERS, json=limit_buy(1), headers=trader.headers)
            assert refused.status_code == 409
            assert refused.json()["error"]["code"] == "RISK_KILL_SWITCH"
            state = (await again.get("/api/v1/risk/state", headers=trader.headers)).json()
            assert state["global"]["kill_switch"]
            assert state["global"]["kill_reason"] == "exchange outage"
            metrics = (await again.get("/metrics")).text
    finally:
        off = {"scope": "global", "engaged": False, "reason": "resolved"}
        assert (await client.post(KILL, json=off, headers=admin.headers)).status_code == 200
    assert (await post_order(client, trader, qty=1)).status_code == 201
    async with sessions() as db:
        actions = [
            a.action
            for a in (
                await db.execute(select(AuditLog).where(AuditLog.target_id == "global"))
            ).scalars()
        ]
    assert actions[-2:] == ["risk.kill_switch.engage", "risk.kill_switch.release"]
    assert "RISK_KILL_SWITCH" in metrics  # the restarted app counted its rejection
    live = (await client.get("/metrics")).text
    assert 'quantdesk_kill_switch_engaged{scope="global"} 0.0' in live


async def test_no_order_placed_while_the_kill_switch_is_engaged_slips_through(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fund(client, admin, trader, "10000000")

    async def place(n: int) -> int:
        r = await client.post(
            ORDERS, json=limit_buy(1, client_order_id=f"race-{n}"), headers=trader.headers
        )
        return r.status_code

    async def engage() -> int:
        await asyncio.sleep(0.01)
        body = {"scope": "account", "engaged": True, "reason": "race"}
        return (await client.post(KILL, json=body, headers=trader.headers)).status_code

    results = await asyncio.gather(engage(), *(place(n) for n in range(120)))
    assert results[0] == 200
    assert set(results[1:]) <= {201, 409}
    async with sessions() as db:
        statuses = [
            s
            for (s,) in (
                await db.execute(select(OrderRow.status).where(OrderRow.user_id == trader.id))
            ).all()
        ]
    # Every order that got in was cancelled by the switch: none is left live.
    assert statuses and set(statuses) == {"CANCELLED"}
    assert statuses.count("CANCELLED") == results[1:].count(201)
    w = (await client.get("/api/v1/wallet", headers=trader.headers)).json()["balances"]["INR"]
    assert w["held"] == "0.00"
    await verify_ok(sessions)


# --- halts ------------------------------------------------------------------------------------


async def buy_and_fill_mis(
    client: httpx.AsyncClient, trader: AuthedUser, paper: PaperBroker, qty: int = 10
) -> None:
    r = await post_order(client, trader, qty=qty, product="MIS")
    assert r.status_code == 201, r.text
    await paper.on_quote(quote("1439.90"))  # ask 1440.00: fills at the limit


async def mark(paper: PaperBroker, last: str) -> None:
    assert paper.oms.quotes is not None
    await paper.oms.quotes.set(quote(last))


async def test_a_daily_loss_halts_the_account_cancels_squares_off_and_resets_next_session(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    app: FastAPI,
    paper: PaperBroker,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fund(client, admin, trader, "100000")
    await set_limits(client, admin, trader, daily_loss_limit="150", square_off_on_halt=True)
    await buy_and_fill_mis(client, trader, paper)
    resting = (await post_order(client, trader, qty=1, price="1300.00")).json()["id"]
    control = control_of(app)
    await mark(paper, "1430.00")  # -100 unrealised and the charges: still above -150
    assert await control.evaluate(trader.id) is None
    await mark(paper, "1420.00")  # -200
    bus = app.state.qd.extras["bus"]
    async with bus.subscribe(f"user:{trader.id}:alerts") as alerts:
        assert await control.evaluate(trader.id) is HaltKind.DAILY_LOSS
        # The halt is alerted: on the owner's alerts channel (and Telegram/e-mail when set).
        _, alert = await asyncio.wait_for(anext(aiter(alerts)), 10)
    assert (alert["type"], alert["kind"]) == ("alert", "risk_halt")
    assert await control.evaluate(trader.id) is None  # already halted: once
    assert (await client.get(f"{ORDERS}/{resting}", headers=trader.headers)).json()[
        "status"
    ] == "CANCELLED"
    refused = await post_order(client, trader, qty=1)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "RISK_ACCOUNT_HALTED")
    orders = (await client.get(ORDERS, headers=trader.headers)).json()["items"]
    square = [o for o in orders if o["client_order_id"].startswith("risk:")]
    assert len(square) == 1 and (square[0]["side"], square[0]["quantity"]) == ("SELL", 10)
    state = (await client.get("/api/v1/risk/state", headers=trader.headers)).json()
    assert state["account"]["halt_kind"] == "daily_loss" and not state["trading_allowed"]
    assert (
        'quantdesk_risk_halts_total{kind="daily_loss"} 1.0' in (await client.get("/metrics")).text
    )
    # The next session the halt no longer applies.
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    real_clock: Callable[[], datetime] = control.oms.clock
    control.oms.clock = lambda: tomorrow
    try:
        state = (await client.get("/api/v1/risk/state", headers=trader.headers)).json()
    finally:
        control.oms.clock = real_clock
    assert state["trading_allowed"] and not state["account"]["halted"]
    await verify_ok(sessions)


async def test_a_drawdown_halts_survives_a_restart_and_holds_until_an_admin_rearms(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    app: FastAPI,
    paper: PaperBroker,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fund(client, admin, trader, "20000")
    await set_limits(client, admin, trader, max_drawdown_pct="2")
    await buy_and_fill_mis(client, trader, paper)  # 14,400 of INFY on 2,880 of margin
    control = control_of(app)
    await mark(paper, "1440.00")
    await control.evaluate(trader.id)  # the peak: about 20,000 less the charges
    await mark(paper, "1410.00")  # -300 on ~20,000 = -1.5%: within 2%
    assert await control.evaluate(trader.id) is None
    await mark(paper, "1390.00")  # -500: -2.5%
    assert await control.evaluate(trader.id) is HaltKind.DRAWDOWN
    refused = await post_order(client, trader, qty=1)
    assert refused.json()["error"]["code"] == "RISK_ACCOUNT_HALTED"
    # The halt is in the database: a restarted process keeps it.
    restarted = create_app(settings)
    async with restarted.router.lifespan_context(restarted), client_for(restarted) as again:
        state = (await again.get("/api/v1/risk/state", headers=trader.headers)).json()
        assert state["account"]["halt_kind"] == "drawdown" and not state["trading_allowed"]
    # A deposit is not a gain and does not lift the halt; traders cannot re-arm.
    await fund(client, admin, trader, "5000")
    r = await client.post("/api/v1/risk/rearm", json={"user_id": trader.id}, headers=trader.headers)
    assert r.status_code == 403
    r = await client.post("/api/v1/risk/rearm", json={"user_id": trader.id}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert r.json()["trading_allowed"]
    assert (await post_order(client, trader, qty=1)).status_code == 201
    r = await client.post("/api/v1/risk/rearm", json={"user_id": trader.id}, headers=admin.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "RISK_NOT_HALTED")
    # Every risk state change is in the audit log: who, what, when.
    async with sessions() as db:
        rows = (
            (
                await db.execute(
                    select(AuditLog)
                    .where(AuditLog.target_id.in_([f"user:{trader.id}"]))
                    .order_by(AuditLog.id)
                )
            )
            .scalars()
            .all()
        )
    assert [a.action for a in rows] == ["risk.limits", "risk.halt", "risk.rearm"]
    assert rows[0].actor_id == admin.id and rows[2].actor_id == admin.id
    assert rows[1].actor_id is None  # the system halted it
