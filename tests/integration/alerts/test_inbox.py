"""The alert inbox on SQLite and PostgreSQL: what the service stores (after deduplication,
whatever Telegram does), what each user lists and marks read, pagination, bad input, retention
and the migration."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from sqlalchemy import func, inspect, select

from quantdesk.alerts import Alert, AlertKind, AlertService, Delivery, Severity
from quantdesk.alerts.inbox import AlertInbox, AlertRow
from quantdesk.auth.roles import Role
from quantdesk.bus.base import EventBus
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.db.migrate import current, downgrade, upgrade
from quantdesk.settings import Settings
from tests.conftest import (
    PG_ADMIN_DSN,
    AuthedUser,
    UserFactory,
    _admin_execute,
    _in_thread,
    _pg_url,
    make_settings,
)
from tests.integration.alerts.conftest import BOT_TOKEN, BotApi

URL = "/api/v1/alerts"


@pytest.fixture
def settings(db_url: str, tmp_path: Path, bot_api: BotApi) -> Settings:
    """The app of every test here has a Telegram channel (a local stand-in) whose bucket
    holds one message and never refills: the second alert of a test is rate-limited."""
    return make_settings(
        db_url,
        tmp_path,
        alert_telegram_bot_token=BOT_TOKEN,
        alert_telegram_chat_id="42",
        alert_telegram_api_url=bot_api.base_url,
        alert_timeout_seconds=2,
        alert_rate_burst=1,
        alert_rate_per_minute=0.001,
    )


def service_of(app: FastAPI) -> AlertService:
    service = app.state.qd.extras["alerts"]
    assert isinstance(service, AlertService)
    return service


async def raise_alerts(app: FastAPI, *alerts: Alert) -> None:
    service = service_of(app)
    for a in alerts:
        service.notify(a)
    assert await service.flush(10)


def alert(user_id: int | None, title: str, **kw: Any) -> Alert:
    kw.setdefault("kind", AlertKind.ORDER_REJECTED)
    kw.setdefault("severity", Severity.WARNING)
    return Alert(title=title, user_id=user_id, **kw)


async def listing(client: httpx.AsyncClient, who: AuthedUser, **params: Any) -> dict[str, Any]:
    r = await client.get(URL, params=params, headers=who.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def titles(page: dict[str, Any]) -> list[str]:
    return [item["title"] for item in page["items"]]


async def rows_titled(app: FastAPI, title: str) -> int:
    async with app.state.qd.sessionmaker() as db:
        q = select(func.count()).select_from(AlertRow).where(AlertRow.title == title)
        return int((await db.execute(q)).scalar_one())


def metric(app: FastAPI, name: str, **labels: str) -> float:
    value = service_of(app).metrics.registry.get_sample_value(name, labels)
    return value or 0.0


# --- storing ------------------------------------------------------------------------------


async def test_an_accepted_alert_is_stored_once_for_its_owner_and_listed(
    app: FastAPI, client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)  # within the retention
    halt = Alert(
        AlertKind.RISK_HALT,
        Severity.CRITICAL,
        "Daily loss limit hit",
        "Trading halted.",
        user_id=trader.id,
        dedup_key=f"halt:{trader.id}",
        ts=ts,
    )
    await raise_alerts(app, halt, halt, halt)  # the repeats are deduplicated: not stored

    page = await listing(client, trader)
    assert page["unread_count"] == 1
    assert page["next_cursor"] is None
    [item] = page["items"]
    assert item == {
        "id": item["id"],
        "user_id": trader.id,
        "kind": "risk_halt",
        "severity": "critical",
        "title": "Daily loss limit hit",
        "body": "Trading halted.",
        "similar": 0,
        "created_at": ts.isoformat().replace("+00:00", "Z"),
        "read_at": None,
    }
    assert metric(app, "quantdesk_alerts_suppressed_total", reason="dedup") == 2
    assert metric(app, "quantdesk_alerts_sent_total", channel="inbox", kind="risk_halt") == 1


async def test_a_rate_limited_alert_is_stored_once_and_a_failing_telegram_loses_no_row(
    app: FastAPI, client: httpx.AsyncClient, trader: AuthedUser, bot_api: BotApi
) -> None:
    service = service_of(app)
    service.retries, service.backoff = 1, 0.01
    bot_api.script = [(500, {"ok": False, "description": "down"})] * 2  # both attempts fail
    await raise_alerts(app, alert(trader.id, "first"), alert(trader.id, "second"))

    assert len(bot_api.requests) == 2  # "first", tried twice; "second" found the bucket empty
    assert metric(app, "quantdesk_alerts_failed_total", channel="telegram", kind="order_rejected")
    assert metric(app, "quantdesk_alerts_suppressed_total", reason="rate") == 1
    assert titles(await listing(client, trader)) == ["second", "first"]
    assert await rows_titled(app, "first") == 1
    assert await rows_titled(app, "second") == 1


async def test_the_live_alert_carries_the_stored_rows_id(
    app: FastAPI, client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    bus: EventBus = app.state.qd.extras["bus"]
    async with bus.subscribe(f"user:{trader.id}:alerts") as sub:
        await raise_alerts(app, alert(trader.id, "live"))
        _, message = await sub.get(timeout=5)
    [item] = (await listing(client, trader))["items"]
    assert message["id"] == item["id"]
    assert message["title"] == "live"


async def test_an_alert_the_database_refuses_is_logged_and_still_published_without_an_id(
    app: FastAPI,
) -> None:
    bus: EventBus = app.state.qd.extras["bus"]
    ghost = 2_000_000_000  # no such user: the foreign key refuses the row
    async with bus.subscribe(f"user:{ghost}:alerts") as sub:
        with structlog.testing.capture_logs() as logs:
            service_of(app).notify(alert(ghost, "nobody's"))  # returns: never raises
            assert await service_of(app).flush(10)
        _, message = await sub.get(timeout=5)
    assert message["id"] is None and message["title"] == "nobody's"
    [failed] = [e for e in logs if e["event"] == "alert_store_failed"]
    assert failed["log_level"] == "warning" and failed["user_id"] == ghost
    assert "IntegrityError" in failed["error"]
    assert metric(app, "quantdesk_alerts_failed_total", channel="inbox", kind="order_rejected")
    assert await rows_titled(app, "nobody's") == 0


# --- who sees what ------------------------------------------------------------------------


async def test_each_role_lists_only_its_own_alerts_and_admins_the_platform_wide_ones(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    viewer = await make_user(Role.VIEWER)
    trader = await make_user(Role.TRADER)
    admin = await make_user(Role.ADMIN)
    system = f"system {trader.id}"
    await raise_alerts(
        app,
        alert(viewer.id, "for the viewer"),
        alert(trader.id, "for the trader"),
        alert(admin.id, "for the admin"),
        alert(None, system, kind=AlertKind.SYSTEM_ERROR, severity=Severity.ERROR),
    )

    assert titles(await listing(client, viewer)) == ["for the viewer"]
    assert titles(await listing(client, trader)) == ["for the trader"]
    seen = await listing(client, admin)
    # (platform-wide alerts of other tests share this database: look at this test's)
    mine = [i for i in seen["items"] if i["title"] in (system, "for the admin")]
    assert [(i["title"], i["user_id"]) for i in mine] == [
        (system, None),
        ("for the admin", admin.id),
    ]
    assert "for the trader" not in titles(seen)


async def test_unread_filter_counts_and_marking_read(
    app: FastAPI, client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    await raise_alerts(app, *(alert(trader.id, f"a{i}") for i in range(3)))
    page = await listing(client, trader)
    ids = {item["title"]: item["id"] for item in page["items"]}
    assert page["unread_count"] == 3

    r = await client.post(f"{URL}/{ids['a1']}/read", headers=trader.headers)
    assert r.status_code == 200, r.text
    read_at = r.json()["read_at"]
    assert r.json()["id"] == ids["a1"] and read_at is not None

    unread = await listing(client, trader, unread="true")
    assert titles(unread) == ["a2", "a0"] and unread["unread_count"] == 2
    everything = await listing(client, trader)
    assert titles(everything) == ["a2", "a1", "a0"] and everything["unread_count"] == 2
    assert [i["read_at"] is not None for i in everything["items"]] == [False, True, False]

    again = await client.post(f"{URL}/{ids['a1']}/read", headers=trader.headers)
    assert again.status_code == 200 and again.json()["read_at"] == read_at  # the first one kept


async def test_read_all_marks_only_up_to_max_id_then_everything(
    app: FastAPI, client: httpx.AsyncClient, trader: AuthedUser, make_user: UserFactory
) -> None:
    other = await make_user(Role.TRADER)
    await raise_alerts(
        app, alert(trader.id, "old"), alert(trader.id, "seen"), alert(other.id, "theirs")
    )
    seen_id = (await listing(client, trader))["items"][0]["id"]
    await raise_alerts(app, alert(trader.id, "arrived meanwhile"))

    r = await client.post(f"{URL}/read-all", json={"max_id": seen_id}, headers=trader.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"marked": 2, "unread_count": 1}
    assert titles(await listing(client, trader, unread=True)) == ["arrived meanwhile"]

    r = await client.post(f"{URL}/read-all", headers=trader.headers)  # no body: all
    assert r.json() == {"marked": 1, "unread_count": 0}
    assert (await listing(client, other))["unread_count"] == 1  # not another user's


async def test_another_users_alert_is_a_404_like_a_missing_one_and_stays_unread(
    app: FastAPI, client: httpx.AsyncClient, make_user: UserFactory
) -> None:
    owner = await make_user(Role.TRADER)
    intruder = await make_user(Role.ADMIN)  # not even an admin marks a user's alert
    await raise_alerts(app, alert(owner.id, "private"))
    [item] = (await listing(client, owner))["items"]

    theirs = await client.post(f"{URL}/{item['id']}/read", headers=intruder.headers)
    missing = await client.post(f"{URL}/{2**62}/read", headers=intruder.headers)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "ALERT_NOT_FOUND"
    assert theirs.json()["error"]["message"] == missing.json()["error"]["message"]
    assert (await listing(client, owner))["unread_count"] == 1


async def test_pages_newest_first_with_the_cursor(
    app: FastAPI, client: httpx.AsyncClient, viewer: AuthedUser
) -> None:
    await raise_alerts(app, *(alert(viewer.id, f"p{i}") for i in range(5)))
    seen: list[str] = []
    cursor = None
    for expected in (["p4", "p3"], ["p2", "p1"], ["p0"]):
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = await listing(client, viewer, **params)
        assert titles(page) == expected and page["unread_count"] == 5
        seen += titles(page)
        cursor = page["next_cursor"]
    assert cursor is None and seen == ["p4", "p3", "p2", "p1", "p0"]

    # the cursor also pages the unread filter
    first = (await listing(client, viewer))["items"]
    r = await client.post(f"{URL}/{first[1]['id']}/read", headers=viewer.headers)  # p3
    assert r.status_code == 200
    page = await listing(client, viewer, unread=True, limit=2)
    assert titles(page) == ["p4", "p2"]
    assert titles(await listing(client, viewer, unread=True, cursor=page["next_cursor"])) == [
        "p1",
        "p0",
    ]


@pytest.mark.parametrize(
    ("method", "path", "kw"),
    [
        ("GET", URL, {"params": {"limit": 201}}),
        ("GET", URL, {"params": {"limit": 0}}),
        ("GET", URL, {"params": {"cursor": 0}}),
        ("GET", URL, {"params": {"cursor": "abc"}}),
        ("GET", URL, {"params": {"unread": "maybe"}}),
        ("GET", URL, {"params": {"unred": "true"}}),
        ("POST", f"{URL}/read-all", {"json": {"max_id": 0}}),
        ("POST", f"{URL}/read-all", {"json": {"max_id": "all"}}),
        ("POST", f"{URL}/read-all", {"json": {"everything": True}}),
        ("POST", f"{URL}/0/read", {}),
        ("POST", f"{URL}/abc/read", {}),
        ("POST", f"{URL}/{2**63}/read", {}),
    ],
)
async def test_bad_input_is_a_422_and_marks_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    trader: AuthedUser,
    method: str,
    path: str,
    kw: dict[str, Any],
) -> None:
    await raise_alerts(app, alert(trader.id, "stays unread"))
    r = await client.request(method, path, headers=trader.headers, **kw)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] in ("VALIDATION_ERROR", "UNKNOWN_QUERY_PARAMETER")
    assert (await listing(client, trader))["unread_count"] == 1


async def test_the_inbox_needs_a_token(client: httpx.AsyncClient) -> None:
    for method, path in (("GET", URL), ("POST", f"{URL}/read-all"), ("POST", f"{URL}/1/read")):
        r = await client.request(method, path)
        assert r.status_code == 401, (method, path, r.text)


# --- retention ----------------------------------------------------------------------------


async def test_retention_deletes_only_alerts_older_than_the_setting(
    app: FastAPI, trader: AuthedUser
) -> None:
    # In 2000: no other test's alert is that old, so every count here is this test's.
    now = datetime(2000, 3, 1, 12, 0, tzinfo=UTC)
    sessionmaker = app.state.qd.sessionmaker
    tag = f"ret-{trader.id}"

    def aged(days: int) -> Delivery:
        return Delivery(alert(trader.id, f"{tag} {days} days", ts=now - timedelta(days=days)))

    async def left() -> list[str]:
        async with sessionmaker() as db:
            q = select(AlertRow.title).where(AlertRow.title.startswith(tag)).order_by(AlertRow.id)
            return list((await db.execute(q)).scalars())

    store = AlertInbox(sessionmaker, retention_days=30, now=lambda: now)
    await store.add(aged(29))  # the first add of a process prunes, in a task of its own
    await store.aclose()
    await store.add(aged(31))  # the next prune is an hour away
    assert await left() == [f"{tag} 29 days", f"{tag} 31 days"]
    assert await store.prune() == 1
    assert await left() == [f"{tag} 29 days"]

    await AlertInbox(sessionmaker, retention_days=0).add(aged(45))  # 0: never prunes
    assert await left() == [f"{tag} 29 days", f"{tag} 45 days"]
    fresh = AlertInbox(sessionmaker, retention_days=30, now=lambda: now)
    await fresh.add(aged(1))  # its first add prunes the 45-day-old one
    await fresh.aclose()
    assert await left() == [f"{tag} 29 days", f"{tag} 1 days"]
    assert await AlertInbox(sessionmaker, retention_days=0).prune() == 0


# --- the migration ------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"qd_mig_alerts_{secrets.token_hex(4)}"
    _in_thread(lambda: asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"')))
    try:
        yield _pg_url(PG_ADMIN_DSN, name)
    finally:
        _in_thread(
            lambda: asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        )


def _tables(url: str) -> tuple[str | None, set[str]]:
    async def read() -> tuple[str | None, set[str]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        finally:
            await engine.dispose()
        return await current(url), tables

    result = _in_thread(lambda: asyncio.run(read()))
    assert isinstance(result, tuple)
    return result


def test_migration_0009_adds_and_drops_the_inbox_table(fresh_url: str) -> None:
    _in_thread(lambda: upgrade(fresh_url, "0009"))
    rev, tables = _tables(fresh_url)
    assert rev == "0009" and "alert_inbox" in tables

    _in_thread(lambda: downgrade(fresh_url, "0008"))
    rev, tables = _tables(fresh_url)
    assert rev == "0008" and "alert_inbox" not in tables and "ml_runs" in tables

    _in_thread(lambda: upgrade(fresh_url, "0009"))
    rev, tables = _tables(fresh_url)
    assert rev == "0009" and "alert_inbox" in tables


async def test_the_store_writes_through_a_sessionmaker_of_its_own(db_url: str) -> None:
    """The writer needs nothing of the app: an engine's sessionmaker (as the service gets)."""
    engine = create_engine(db_url)
    try:
        store = AlertInbox(create_sessionmaker(engine), retention_days=0)
        first = await store.add(Delivery(alert(None, "platform", kind=AlertKind.SYSTEM_ERROR)))
        second = await store.add(Delivery(alert(None, "platform again"), similar=4))
        assert second > first
        async with create_sessionmaker(engine)() as db:
            row = await db.get(AlertRow, second)
        assert row is not None and row.similar == 4 and row.user_id is None
        assert row.read_at is None and row.created_at.tzinfo is not None
    finally:
        await engine.dispose()
