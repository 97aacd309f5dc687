"""WS /api/v1/ws over real sockets: authentication, subscriptions, private channels, slow
clients, heartbeats, token expiry, and fan-out across processes through Redis."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from quantdesk.auth.security import decode_access_token, encode_access_token
from quantdesk.core.market import Quote
from quantdesk.db.engine import create_sessionmaker
from quantdesk.market.instruments import seed_demo_universe
from quantdesk.settings import Settings
from quantdesk.stream.hub import user_channel
from tests.conftest import JWT_SECRET, AuthedUser
from tests.integration.stream.conftest import LiveServer

pytestmark = pytest.mark.e2e


def quote(symbol: str, last: str, volume: int = 100) -> dict[str, Any]:
    p = Decimal(last)
    return Quote(
        symbol, p, p - Decimal("0.05"), p + Decimal("0.05"), volume, datetime.now(UTC)
    ).to_json()


async def recv(ws: ClientConnection, wait: float = 5) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), wait))  # type: ignore[no-any-return]


async def recv_type(ws: ClientConnection, kind: str, wait: float = 5) -> dict[str, Any]:
    """The next frame of ``kind``, skipping heartbeats."""
    while True:
        msg = await recv(ws, wait)
        if msg["type"] == kind:
            return msg
        assert msg["type"] == "heartbeat", msg


async def connect(url: str, user: AuthedUser) -> ClientConnection:
    ws = await websockets.connect(f"{url}?token={user.access_token}")
    welcome = await recv(ws)
    assert welcome["type"] == "welcome" and welcome["user_id"] == user.id
    return ws


async def test_missing_or_bad_token_is_refused_with_4401(live_server: LiveServer) -> None:
    async with live_server() as (url, _):
        for target in (url, f"{url}?token=garbage"):
            async with websockets.connect(target) as ws:
                err = await recv(ws)
                assert err["type"] == "error" and err["code"].startswith("AUTH_")
                with pytest.raises(websockets.ConnectionClosed) as info:
                    await recv(ws)
                assert info.value.rcvd is not None and info.value.rcvd.code == 4401


async def test_subscribed_client_receives_published_quotes(
    live_server: LiveServer, trader: AuthedUser
) -> None:
    async with live_server() as (url, app):
        bus = app.state.qd.extras["bus"]
        ws = await connect(url, trader)
        await ws.send(json.dumps({"op": "subscribe", "channels": ["quotes:NSE:INFY"]}))
        assert (await recv_type(ws, "subscribed"))["channels"] == ["quotes:NSE:INFY"]
        await bus.publish("quotes:NSE:TCS", quote("NSE:TCS", "3500"))  # not subscribed
        await bus.publish("quotes:NSE:INFY", quote("NSE:INFY", "1500.05"))
        msg = await recv_type(ws, "quote")
        assert msg["channel"] == "quotes:NSE:INFY"
        assert msg["data"]["last"] == "1500.05"
        await ws.send(json.dumps({"op": "unsubscribe", "channels": ["quotes:NSE:INFY"]}))
        await recv_type(ws, "unsubscribed")
        await bus.publish("quotes:NSE:INFY", quote("NSE:INFY", "1501"))
        await ws.send(json.dumps({"op": "ping"}))
        assert (await recv_type(ws, "pong"))["type"] == "pong"
        await ws.close()


async def test_subscribe_sends_the_cached_latest_quote_first(
    live_server: LiveServer, trader: AuthedUser
) -> None:
    async with live_server() as (url, app):
        cache = app.state.qd.extras["quote_cache"]
        await cache.set(Quote.from_json(quote("NSE:SBIN", "812.35")))
        ws = await connect(url, trader)
        await ws.send(json.dumps({"op": "subscribe", "channels": ["quotes:NSE:SBIN"]}))
        await recv_type(ws, "subscribed")
        assert (await recv_type(ws, "quote"))["data"]["last"] == "812.35"
        await ws.close()


async def test_private_channels_only_carry_the_connected_users_events(
    live_server: LiveServer, trader: AuthedUser, viewer: AuthedUser
) -> None:
    async with live_server() as (url, app):
        bus = app.state.qd.extras["bus"]
        mine, other = await connect(url, trader), await connect(url, viewer)
        for ws in (mine, other):
            await ws.send(json.dumps({"op": "subscribe", "channels": ["orders", "wallet"]}))
            await recv_type(ws, "subscribed")
        await bus.publish(
            user_channel(trader.id, "orders"), {"type": "order", "id": "A1", "status": "OPEN"}
        )
        got = await recv_type(mine, "order")
        assert got["channel"] == "orders" and got["data"]["id"] == "A1"
        await other.send(json.dumps({"op": "ping"}))
        # The viewer's next non-heartbeat frame is its pong: it never saw the trader's order.
        assert (await recv_type(other, "pong"))["type"] == "pong"
        await mine.close()
        await other.close()


async def test_an_order_and_its_fill_reach_the_owners_orders_trades_positions_and_wallet(
    live_server: LiveServer, trader: AuthedUser, admin: AuthedUser
) -> None:
    async with live_server() as (url, app):
        async with create_sessionmaker(app.state.qd.engine)() as db:
            await seed_demo_universe(db)
        http = url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=http) as client:
            r = await client.post(
                f"/admin/users/{trader.id}/deposits",
                json={"amount": "100000"},
                headers=admin.headers,
            )
            assert r.status_code == 201, r.text
            ws = await connect(url, trader)
            channels = ["orders", "trades", "positions", "wallet"]
            await ws.send(json.dumps({"op": "subscribe", "channels": channels}))
            await recv_type(ws, "subscribed")
            body = {
                "symbol": "NSE:INFY",
                "side": "BUY",
                "quantity": 5,
                "order_type": "LIMIT",
                "limit_price": "1440.00",
                "product": "CNC",
            }
            r = await client.post("/orders", json=body, headers=trader.headers)
            assert r.status_code == 201, r.text
            order_id = r.json()["id"]
            placed = await recv_type(ws, "order")
            assert (placed["data"]["id"], placed["data"]["status"]) == (order_id, "OPEN")
            held = (await recv_type(ws, "wallet"))["data"]["balances"]["INR"]["held"]
            assert Decimal(held) > 5 * Decimal("1440.00")
            # A quote through the limit: the paper engine fills the order.
            bus = app.state.qd.extras["bus"]
            await bus.publish("quotes:NSE:INFY", quote("NSE:INFY", "1439.90"))
            seen: dict[str, dict[str, Any]] = {}
            while not {"order", "trade", "position", "wallet"} <= seen.keys() or (
                seen["order"]["data"]["status"] != "FILLED"
            ):
                msg = await recv(ws, wait=10)
                if msg["type"] != "heartbeat":
                    seen[msg["type"]] = msg
            assert seen["trade"]["data"]["order_id"] == order_id
            assert seen["trade"]["channel"] == "trades"
            assert (seen["position"]["data"]["symbol"], seen["position"]["data"]["quantity"]) == (
                "NSE:INFY",
                5,
            )
            assert seen["wallet"]["data"]["balances"]["INR"]["held"] == "0.00"
            await ws.close()


async def test_position_and_order_frames_carry_day_pnl_and_reason_as_the_rest_views_do(
    live_server: LiveServer, trader: AuthedUser, admin: AuthedUser
) -> None:
    async with live_server() as (url, app):
        async with create_sessionmaker(app.state.qd.engine)() as db:
            await seed_demo_universe(db)
        http = url.replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient(base_url=http) as client:
            r = await client.post(
                f"/admin/users/{trader.id}/deposits",
                json={"amount": "100000"},
                headers=admin.headers,
            )
            assert r.status_code == 201, r.text
            ws = await connect(url, trader)
            await ws.send(json.dumps({"op": "subscribe", "channels": ["orders", "positions"]}))
            await recv_type(ws, "subscribed")
            body = {
                "symbol": "NSE:INFY",
                "side": "BUY",
                "quantity": 3,
                "order_type": "LIMIT",
                "limit_price": "1440.00",
                "product": "CNC",
            }
            r = await client.post("/orders", json=body, headers=trader.headers)
            assert r.status_code == 201, r.text
            assert (await recv_type(ws, "order"))["data"]["reason"] == "accepted"
            await app.state.qd.extras["bus"].publish(
                "quotes:NSE:INFY", quote("NSE:INFY", "1439.90")
            )
            msg = await recv(ws, wait=10)
            while msg["type"] != "position":  # the fill's order frame comes first
                assert msg["type"] in ("order", "heartbeat"), msg
                msg = await recv(ws, wait=10)
            frame = msg["data"]
            rest = (await client.get("/positions", headers=trader.headers)).json()
            [view] = [p for p in rest if (p["symbol"], p["product"]) == ("NSE:INFY", "CNC")]
            # Bought today at 1440.00, marked at the last close 1441.80: 3 x 1.80.
            assert frame["day_pnl"] == view["day_pnl"] == "5.40"
            assert frame == {"type": "position", **view}

            r = await client.post("/orders", json=body, headers=trader.headers)
            order_id = r.json()["id"]
            assert (await recv_type(ws, "order"))["data"]["id"] == order_id
            await client.delete(f"/orders/{order_id}", headers=trader.headers)
            cancelled = (await recv_type(ws, "order"))["data"]
            one = (await client.get(f"/orders/{order_id}", headers=trader.headers)).json()
            assert cancelled["status"] == one["status"] == "CANCELLED"
            assert cancelled["reason"] == one["reason"] == "cancelled by user"
            await ws.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "WS_BAD_MESSAGE"),
        ('{"op": "subscribe", "channels": ["quotes:bad symbol"]}', "WS_BAD_CHANNEL"),
        ('{"op": "subscribe", "channels": ["user:1:orders"]}', "WS_UNKNOWN_CHANNEL"),
        ('{"op": "subscribe", "channels": []}', "WS_BAD_MESSAGE"),
        ('{"op": "dance"}', "WS_UNKNOWN_OP"),
    ],
)
async def test_bad_frames_get_an_error_and_the_connection_stays_open(
    live_server: LiveServer, trader: AuthedUser, frame: str, code: str
) -> None:
    async with live_server() as (url, _):
        ws = await connect(url, trader)
        await ws.send(frame)
        assert (await recv_type(ws, "error"))["code"] == code
        await ws.send(json.dumps({"op": "ping"}))
        await recv_type(ws, "pong")
        await ws.close()


async def test_idle_connection_gets_heartbeats(live_server: LiveServer, trader: AuthedUser) -> None:
    async with live_server(ws_heartbeat_seconds=0.2) as (url, _):
        ws = await connect(url, trader)
        assert (await recv(ws, wait=2))["type"] == "heartbeat"
        await ws.close()


async def test_connection_closes_when_its_token_expires(
    live_server: LiveServer, trader: AuthedUser, settings: Settings
) -> None:
    claims = decode_access_token(
        trader.access_token, key=JWT_SECRET, algorithm="HS256", issuer="quantdesk"
    )
    async with live_server(ws_heartbeat_seconds=0.2) as (url, _):
        # Minted once the server is up: a slow start must not spend the token's 3 seconds.
        short, _ = encode_access_token(
            user_id=trader.id,
            role="trader",
            session_id=claims.session_id,
            key=JWT_SECRET,
            algorithm="HS256",
            issuer="quantdesk",
            ttl=timedelta(seconds=3),
        )
        ws = await websockets.connect(f"{url}?token={short}")
        assert (await recv(ws))["type"] == "welcome"
        err = await recv_type(ws, "error", wait=10)
        assert err["code"] == "AUTH_TOKEN_EXPIRED"
        with pytest.raises(websockets.ConnectionClosed) as info:
            await recv(ws)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4401


async def test_a_slow_client_does_not_stall_others_and_gets_the_latest_quote(
    live_server: LiveServer, trader: AuthedUser, viewer: AuthedUser
) -> None:
    # An overall deadline: heartbeats (every 2 s) must not keep a receive loop alive forever.
    async with live_server(ws_heartbeat_seconds=2.0) as (url, app), asyncio.timeout(90):
        bus, hub = app.state.qd.extras["bus"], app.state.qd.extras["hub"]
        slow = await websockets.connect(f"{url}?token={viewer.access_token}", max_queue=1)
        assert (await recv(slow))["type"] == "welcome"
        fast = await connect(url, trader)
        # Both subscriptions are confirmed before publishing starts: otherwise, on a loaded
        # machine, the slow client's subscribe could land after the last quote was published.
        for ws in (slow, fast):
            await ws.send(json.dumps({"op": "subscribe", "channels": ["quotes:NSE:INFY"]}))
            await recv_type(ws, "subscribed")
        last = None
        for i in range(3000):  # the slow client reads nothing meanwhile
            last = quote("NSE:INFY", f"{1000 + i * 0.05:.2f}", volume=i)
            await bus.publish("quotes:NSE:INFY", last)
            if i % 500 == 0:
                await asyncio.sleep(0)
        # The fast client reaches the final quote promptly.
        while True:
            msg = await recv_type(fast, "quote", wait=5)
            if msg["data"]["volume"] == last["volume"]:
                break
        # Every connection's backlog is bounded: at most one pending quote per symbol.
        conns = {c for cs in hub._by_channel.values() for c in cs}
        assert all(len(c.outbox._quotes) <= 1 for c in conns)
        # The slow client, reading at last, gets the newest quote, having skipped most of the
        # intermediate ones (latest wins) rather than queueing all 3000.
        received = 0
        while True:
            msg = await recv(slow, wait=5)
            if msg["type"] == "quote":
                received += 1
                if msg["data"]["volume"] == last["volume"]:
                    break
        assert received < 3000
        await slow.close()
        await fast.close()


@pytest.mark.redis
async def test_quotes_published_in_one_process_reach_clients_of_another_through_redis(
    live_server: LiveServer, trader: AuthedUser, redis_url: str, redis_prefix: str
) -> None:
    async with (
        live_server(redis_url=redis_url, redis_prefix=redis_prefix) as (url_a, app_a),
        live_server(redis_url=redis_url, redis_prefix=redis_prefix) as (_url_b, app_b),
    ):
        ws = await connect(url_a, trader)
        await ws.send(json.dumps({"op": "subscribe", "channels": ["quotes:NSE:TCS", "orders"]}))
        await recv_type(ws, "subscribed")
        bus_b = app_b.state.qd.extras["bus"]
        await bus_b.publish("quotes:NSE:TCS", quote("NSE:TCS", "3456.70"))
        assert (await recv_type(ws, "quote"))["data"]["last"] == "3456.70"
        await bus_b.publish(user_channel(trader.id, "orders"), {"type": "order", "id": "X"})
        assert (await recv_type(ws, "order"))["data"]["id"] == "X"
        assert app_a is not app_b
        await ws.close()
