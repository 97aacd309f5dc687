"""kill -9 of a real ``quantdesk serve`` under order load, then a restart (DESIGN invariant 9).

The server runs on a fresh PostgreSQL database with the random feed (quotes every 50 ms, so
market orders fill) and Redis as its event bus, so the test can also publish a quote of its own
to the restarted paper engine. Several traders fire market and limit buys, cancels and modifies
concurrently; after about 2 s of that the server gets SIGKILL with requests in flight. Then:

- ``quantdesk ledger verify`` passes on what the crash left;
- after a restart, every market order reaches a terminal status (the engine reloaded the live
  orders from the database and filled them);
- the limit orders left live are still OPEN, each wallet's ``held`` equals the sum of its live
  orders' ``held_amount``, a cancel through the API releases exactly what the order held, and
  a quote through the limits fills every remaining one (the engine knows each of them);
- ``ledger verify`` passes again at the end.

A second test checks, without a crash, that an order accepted while the engine is busy still
reaches its book. (It once did not: the engine's one bus subscription dropped its oldest
messages, order events included, when more than 1024 queued up, and the orders they announced
stayed OPEN, holding funds, until a restart reloaded the book. Order events now have their own
queue that does not drop them, and the book is re-synced with the database periodically.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import secrets
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from quantdesk.auth import users as users_service
from quantdesk.auth.roles import Role
from quantdesk.core.market import Quote, quote_channel
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.db.migrate import upgrade
from quantdesk.market.instruments import ImportReport, demo_universe, upsert_rows
from quantdesk.observability.audit import Actor
from tests.conftest import JWT_SECRET, PG_ADMIN_DSN, TEST_PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

QD = [sys.executable, "-m", "quantdesk.cli"]
SYMBOL = "NSE:INFY"  # the only instrument loaded: the random feed quotes just this one
FAR_BELOW = Decimal("0.92")  # limit buys this far under the market never fill by themselves
TERMINAL = {"FILLED", "CANCELLED", "REJECTED", "EXPIRED"}
LIVE = {"NEW", "OPEN", "PARTIALLY_FILLED"}
TRADERS = 4
WORKERS_PER_TRADER = 4
LOAD_SECONDS = 2.0
READY_TIMEOUT = 90.0  # a loaded 2-core CI machine starts Python slowly
SETTLE_TIMEOUT = 60.0


# --- database and server ----------------------------------------------------------------------


async def _admin_sql(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def crash_db() -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database with NSE:INFY and an admin; dropped afterwards."""
    name = f"qd_crash_{os.getpid()}_{secrets.token_hex(3)}"
    await _admin_sql(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    url = f"{url}/{name}"
    try:
        await asyncio.to_thread(upgrade, url)  # alembic runs its own event loop
        engine = create_engine(url)
        try:
            async with create_sessionmaker(engine)() as db:
                rows = [r for r in demo_universe() if str(r.ref) == SYMBOL]
                await upsert_rows(db, rows, ImportReport())
                await db.commit()
                await users_service.create_user(
                    db,
                    Actor(None, "test", None, None),
                    username="crashadmin",
                    password=TEST_PASSWORD,
                    role=Role.ADMIN,
                    bcrypt_rounds=4,
                )
        finally:
            await engine.dispose()
        yield url
    finally:
        await _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def env(crash_db: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("QUANTDESK_")}
    e.update(
        QUANTDESK_DATABASE_URL=crash_db,
        QUANTDESK_DATA_DIR=str(tmp_path / "var"),
        QUANTDESK_UI_DIR=str(tmp_path / "no-ui"),
        QUANTDESK_JWT_SECRET=JWT_SECRET,
        QUANTDESK_BCRYPT_ROUNDS="4",
        QUANTDESK_REDIS_URL=redis_url,
        QUANTDESK_REDIS_PREFIX=redis_prefix,
        QUANTDESK_FEED="random",
        QUANTDESK_FEED_INTERVAL_SECONDS="0.05",
        QUANTDESK_PAPER_SESSION="always",
        QUANTDESK_AUTO_MIGRATE="false",
        QUANTDESK_LOG_LEVEL="WARNING",
        QUANTDESK_ACCESS_TOKEN_TTL_SECONDS="3600",
    )
    return e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log_file(path: Path) -> IO[bytes]:
    return path.open("ab")


@dataclass
class Server:
    base: str
    proc: asyncio.subprocess.Process
    log: Path


@dataclass
class Servers:
    """Every server started by the test, so teardown kills what a failure left running."""

    env: dict[str, str]
    cwd: Path
    started: list[Server] = field(default_factory=list)

    async def start(self) -> Server:
        port = _free_port()
        log = self.cwd / f"serve-{len(self.started)}.log"
        with _log_file(log) as fh:
            proc = await asyncio.create_subprocess_exec(
                *QD,
                "serve",
                "--port",
                str(port),
                "--no-demo",
                env=self.env,
                cwd=self.cwd,
                stdout=fh,
                stderr=fh,
            )
        server = Server(f"http://127.0.0.1:{port}", proc, log)
        self.started.append(server)
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=2) as c:
            while time.monotonic() < deadline and proc.returncode is None:
                with contextlib.suppress(httpx.HTTPError):
                    if (await c.get(f"{server.base}/readyz")).status_code == 200:
                        return server
                await asyncio.sleep(0.2)
        pytest.fail(f"server did not become ready:\n{log.read_text(errors='replace')}")

    async def stop_all(self) -> None:
        for s in self.started:
            if s.proc.returncode is None:
                s.proc.terminate()
                try:
                    await asyncio.wait_for(s.proc.wait(), 30)
                except TimeoutError:
                    s.proc.kill()
                    await s.proc.wait()


@pytest.fixture
async def servers(env: dict[str, str], tmp_path: Path) -> AsyncIterator[Servers]:
    s = Servers(env, tmp_path)
    try:
        yield s
    finally:
        await s.stop_all()


async def ledger_verify(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *QD,
        "ledger",
        "verify",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def order_counts(url: str) -> dict[str, int]:
    """``{"MARKET OPEN": n, ...}`` straight from the database."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT order_type, status, count(*) AS n FROM orders GROUP BY order_type, status"
        )
    finally:
        await conn.close()
    return {f"{r['order_type']} {r['status']}": int(r["n"]) for r in rows}


# --- the API ----------------------------------------------------------------------------------


@dataclass
class Trader:
    id: int
    username: str
    token: str = ""
    limit_ids: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_traders(base: str, n: int) -> list[Trader]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        r = await c.post(
            "/api/v1/auth/login", json={"username": "crashadmin", "password": TEST_PASSWORD}
        )
        assert r.status_code == 200, r.text
        admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
        traders = []
        for i in range(n):
            name = f"crash{i}"
            r = await c.post(
                "/api/v1/admin/users",
                json={"username": name, "password": TEST_PASSWORD, "role": "trader"},
                headers=admin,
            )
            assert r.status_code == 201, r.text
            t = Trader(int(r.json()["id"]), name)
            r = await c.post(
                f"/api/v1/admin/users/{t.id}/deposits",
                json={"amount": "50000000.00", "currency": "INR"},
                headers=admin,
            )
            assert r.status_code == 201, r.text
            traders.append(t)
    return traders


async def login(c: httpx.AsyncClient, t: Trader) -> None:
    r = await c.post("/api/v1/auth/login", json={"username": t.username, "password": TEST_PASSWORD})
    assert r.status_code == 200, r.text
    t.token = r.json()["access_token"]


async def all_orders(c: httpx.AsyncClient, t: Trader) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        r = await c.get("/api/v1/orders", params=params, headers=t.headers)
        assert r.status_code == 200, r.text
        page = r.json()
        out.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return out


async def held(c: httpx.AsyncClient, t: Trader) -> Decimal:
    r = await c.get("/api/v1/wallet", headers=t.headers)
    assert r.status_code == 200, r.text
    return Decimal(r.json()["balances"]["INR"]["held"])


async def market_price(c: httpx.AsyncClient, t: Trader) -> Decimal:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        r = await c.get("/api/v1/market/quotes", params={"symbols": SYMBOL}, headers=t.headers)
        if r.status_code == 200 and r.json()["quotes"]:
            return Decimal(r.json()["quotes"][0]["last"])
        await asyncio.sleep(0.1)
    pytest.fail(f"no quote for {SYMBOL}")


# --- the load ---------------------------------------------------------------------------------


@dataclass
class Load:
    far_limit: Decimal
    killed: asyncio.Event = field(default_factory=asyncio.Event)
    first_accept: asyncio.Event = field(default_factory=asyncio.Event)
    counter: itertools.count[int] = field(default_factory=itertools.count)
    sent: Counter[str] = field(default_factory=Counter)  # "<request> <status code>"
    unanswered: list[tuple[Trader, dict[str, Any]]] = field(default_factory=list)
    cut_off: int = 0  # requests that failed because the server died under them

    def coid(self, kind: str) -> str:
        return f"{kind}{next(self.counter)}"


async def worker(base: str, t: Trader, load: Load, seed: int) -> None:
    """Market buys, far limit buys, cancels and modifies of this trader's limits, until the
    server dies under a request."""
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=t.headers) as c:
        while True:
            roll = rng.random()
            body: dict[str, Any] | None = None
            try:
                if roll < 0.35 or (roll >= 0.65 and not t.limit_ids):
                    kind = "market"
                    body = {
                        "client_order_id": load.coid("m"),
                        "symbol": SYMBOL,
                        "side": "BUY",
                        "quantity": rng.randint(1, 3),
                        "order_type": "MARKET",
                    }
                    r = await c.post("/api/v1/orders", json=body)
                elif roll < 0.65:
                    kind = "limit"
                    price = load.far_limit - Decimal("0.10") * rng.randint(0, 50)
                    body = {
                        "client_order_id": load.coid("l"),
                        "symbol": SYMBOL,
                        "side": "BUY",
                        "quantity": rng.randint(1, 5),
                        "order_type": "LIMIT",
                        "limit_price": f"{price:.2f}",
                    }
                    r = await c.post("/api/v1/orders", json=body)
                    if r.status_code == 201:
                        t.limit_ids.append(r.json()["id"])
                elif roll < 0.85:
                    kind = "cancel"
                    order_id = t.limit_ids.pop(rng.randrange(len(t.limit_ids)))
                    r = await c.delete(f"/api/v1/orders/{order_id}")
                else:
                    kind = "modify"
                    price = load.far_limit - Decimal("0.10") * rng.randint(0, 50)
                    r = await c.patch(
                        f"/api/v1/orders/{rng.choice(t.limit_ids)}",
                        json={"quantity": rng.randint(1, 6), "limit_price": f"{price:.2f}"},
                    )
            except httpx.TransportError:
                if not load.killed.is_set():
                    raise
                load.cut_off += 1
                if body is not None:  # committed or not: the restart will tell
                    load.unanswered.append((t, body))
                return
            load.sent[f"{kind} {r.status_code}"] += 1
            if kind in ("market", "limit") and r.status_code == 201:
                load.first_accept.set()
            # Refusals under load are fine (409 for an order that ended meanwhile); a 5xx is not.
            assert r.status_code < 500, r.text


# --- the test ---------------------------------------------------------------------------------


async def test_kill_9_under_load_then_restart_keeps_the_ledger_and_loses_no_order(
    servers: Servers, env: dict[str, str], redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    first = await servers.start()
    traders = await make_traders(first.base, TRADERS)
    async with httpx.AsyncClient(base_url=first.base, timeout=30) as c:
        for t in traders:
            await login(c, t)
        price = await market_price(c, traders[0])
    load = Load(far_limit=(price * FAR_BELOW).quantize(Decimal("0.1")))

    # Load, then SIGKILL with requests in flight.
    tasks = [
        asyncio.create_task(worker(first.base, t, load, seed=i * 100 + j))
        for i, t in enumerate(traders)
        for j in range(WORKERS_PER_TRADER)
    ]
    await asyncio.wait_for(load.first_accept.wait(), SETTLE_TIMEOUT)
    await asyncio.sleep(LOAD_SECONDS)
    load.killed.set()
    first.proc.kill()
    await first.proc.wait()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    assert load.cut_off > 0, "the kill interrupted no request: the load was not running"

    code, out = await ledger_verify(env, tmp_path)
    assert code == 0, f"ledger verify after kill -9:\n{out}"
    left_by_crash = await order_counts(env["QUANTDESK_DATABASE_URL"])
    print(f"requests: {dict(load.sent)}; cut off by the kill: {load.cut_off}")
    print(f"orders in the database after the kill: {left_by_crash}")

    # Restart on the same database: the engine reloads the live orders and fills the markets.
    second = await servers.start()
    async with httpx.AsyncClient(base_url=second.base, timeout=30) as c:
        for t in traders:
            await login(c, t)
        # A client that lost its answer resubmits: the original order if it was committed
        # (200), else a new one (201); never two orders for one client order id.
        for t, body in load.unanswered:
            r = await c.post("/api/v1/orders", json=body, headers=t.headers)
            assert r.status_code in (200, 201), r.text
            assert r.json()["client_order_id"] == body["client_order_id"]
        orders: dict[int, list[dict[str, Any]]] = {}
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            orders = {t.id: await all_orders(c, t) for t in traders}
            live_markets = [
                o
                for os_ in orders.values()
                for o in os_
                if o["order_type"] == "MARKET" and o["status"] not in TERMINAL
            ]
            if not live_markets or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        assert not live_markets, (
            f"{len(live_markets)} market orders still live {SETTLE_TIMEOUT:.0f} s after the "
            f"restart, e.g. {live_markets[:3]}"
        )
        everything = [o for v in orders.values() for o in v]
        assert everything
        coids = [(o["user_id"], o["client_order_id"]) for o in everything]
        assert len(coids) == len(set(coids)), "a client order id was placed twice"
        statuses = {o["status"] for o in everything}
        assert statuses <= TERMINAL | {"OPEN"}, statuses

        live_limits: dict[int, list[dict[str, Any]]] = {}
        for t in traders:
            live = [o for o in orders[t.id] if o["status"] in LIVE]
            assert all(o["order_type"] == "LIMIT" and o["status"] == "OPEN" for o in live), live
            r = await c.get(
                "/api/v1/orders", params={"status": "OPEN", "limit": 500}, headers=t.headers
            )
            assert r.status_code == 200, r.text
            assert {o["id"] for o in r.json()["items"]} == {o["id"] for o in live}
            live_limits[t.id] = live
            # The wallet holds exactly what the live orders hold.
            assert await held(c, t) == sum((Decimal(o["held_amount"]) for o in live), Decimal(0))

        # A cancel through the API releases exactly what the order held.
        for t in traders:
            for o in live_limits[t.id][:2]:
                before = await held(c, t)
                r = await c.delete(f"/api/v1/orders/{o['id']}", headers=t.headers)
                assert r.status_code == 200, r.text
                assert r.json()["status"] == "CANCELLED"
                assert before - await held(c, t) == Decimal(o["held_amount"])
            live_limits[t.id] = live_limits[t.id][2:]

        # A quote through every limit: the restarted engine must fill each remaining order,
        # which it can only do if it has it in its book (it loaded them at start: nothing has
        # told it about them since, resubmissions apart).
        remaining = [o for v in live_limits.values() for o in v]
        if remaining:
            low = min(Decimal(o["limit_price"]) for o in remaining) - Decimal("0.10")
            quote = Quote(SYMBOL, low, low - Decimal("0.10"), low, 10**9, datetime.now(UTC))
            redis = Redis.from_url(redis_url)
            try:
                deadline = time.monotonic() + SETTLE_TIMEOUT
                while True:
                    await redis.publish(
                        redis_prefix + quote_channel(SYMBOL), json.dumps(quote.to_json())
                    )
                    by_id = {o["id"]: o for t in traders for o in await all_orders(c, t)}
                    left = [
                        by_id[o["id"]] for o in remaining if by_id[o["id"]]["status"] != "FILLED"
                    ]
                    if not left or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.5)
            finally:
                await redis.aclose()
            assert not left, (
                f"{len(left)} of {len(remaining)} live limit orders did not fill on a quote "
                f"through their limits: the restarted engine does not know them, e.g. {left[:3]}"
            )
        for t in traders:
            assert await held(c, t) == Decimal(0)

    code, out = await ledger_verify(env, tmp_path)
    assert code == 0, f"ledger verify at the end:\n{out}"
    logged = second.log.read_text(errors="replace").splitlines()
    assert not [ln for ln in logged if '"level": "error"' in ln], "\n".join(logged)


async def test_an_order_accepted_while_the_engine_is_busy_still_reaches_its_book(
    servers: Servers, env: dict[str, str], redis_url: str, redis_prefix: str
) -> None:
    """No crash at all: what the restart above repairs must not happen in the first place.

    Trader A's resting limit order is matched by a quote while the test holds A's order row
    locked, so the engine (one task, one transaction per fill) waits inside that fill. Trader B
    places market orders meanwhile, and more than 1024 quotes arrive on the bus before the
    engine is let go. Every one of B's orders must still fill on the quotes that follow.
    """
    server = await servers.start()
    a, b = await make_traders(server.base, 2)
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as c:
        for t in (a, b):
            await login(c, t)
        low = (await market_price(c, a) * FAR_BELOW).quantize(Decimal("0.1"))
        r = await c.post(
            "/api/v1/orders",
            json={
                "symbol": SYMBOL,
                "side": "BUY",
                "quantity": 1,
                "order_type": "LIMIT",
                "limit_price": f"{low:.2f}",
            },
            headers=a.headers,
        )
        assert r.status_code == 201, r.text
        a_order = r.json()["id"]

        url = env["QUANTDESK_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
        lock = await asyncpg.connect(url, timeout=10)
        redis = Redis.from_url(redis_url)
        try:
            tx = lock.transaction()
            await tx.start()
            await lock.execute("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE", a_order)
            through = Quote(SYMBOL, low, low - Decimal("0.10"), low, 10**9, datetime.now(UTC))
            await redis.publish(redis_prefix + quote_channel(SYMBOL), json.dumps(through.to_json()))
            # The engine is now stuck in A's fill; wait until it is (its UPDATE waits on us).
            deadline = time.monotonic() + SETTLE_TIMEOUT
            while not await lock.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ):
                assert time.monotonic() < deadline, "the engine never tried to fill A's order"
                await asyncio.sleep(0.05)

            b_orders = []
            for i in range(5):
                r = await c.post(
                    "/api/v1/orders",
                    json={
                        "client_order_id": f"b{i}",
                        "symbol": SYMBOL,
                        "side": "BUY",
                        "quantity": 1,
                        "order_type": "MARKET",
                    },
                    headers=b.headers,
                )
                assert r.status_code == 201, r.text
                b_orders.append(r.json()["id"])
            # Quotes of an instrument nobody trades: cheap for the engine, but they queue.
            flood = Quote("NSE:FLOODTEST", Decimal(100), Decimal(100), Decimal(100), 1, through.ts)
            async with redis.pipeline(transaction=False) as pipe:
                for _ in range(2000):
                    pipe.publish(
                        redis_prefix + quote_channel(flood.symbol), json.dumps(flood.to_json())
                    )
                await pipe.execute()
            # Give the bus time to deliver them all (it says so at once when it drops some).
            deadline = time.monotonic() + 5
            while "bus subscriber is too slow" not in server.log.read_text(errors="replace"):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
        finally:
            await lock.close()  # rolls back: the engine's fill of A goes through
            await redis.aclose()

        deadline = time.monotonic() + 10  # 200 quotes: any order in the book fills at once
        while True:
            orders = {o["id"]: o for o in await all_orders(c, b)}
            open_ = [orders[i] for i in b_orders if orders[i]["status"] != "FILLED"]
            if not open_ or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        assert not open_, (
            f"{len(open_)} of B's {len(b_orders)} market orders are still "
            f"{sorted({o['status'] for o in open_})} 10 s after the engine was let go, holding "
            f"{await held(c, b)} INR: the engine never got them into its book"
        )
