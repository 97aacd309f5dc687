"""The wallet over HTTP: admin deposits and withdrawals, the wallet, the ledger, access rules
and bad input (refused with 422, nothing written)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.stream.hub import user_channel
from tests.conftest import AuthedUser
from tests.integration.wallet.conftest import ledger_counts

WALLET = "/api/v1/wallet"
LEDGER = "/api/v1/wallet/ledger"


def deposits(user_id: int) -> str:
    return f"/api/v1/admin/users/{user_id}/deposits"


def withdrawals(user_id: int) -> str:
    return f"/api/v1/admin/users/{user_id}/withdrawals"


async def test_deposit_shows_in_the_wallet_and_the_ledger_with_its_postings(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    r = await client.post(
        deposits(trader.id), json={"amount": "2500.50", "note": "opening"}, headers=admin.headers
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["wallet"]["balances"]["INR"] == {
        "available": "2500.50",
        "held": "0.00",
        "margin": "0.00",
        "total": "2500.50",
    }

    w = await client.get(WALLET, headers=trader.headers)
    assert w.status_code == 200, w.text
    assert w.json() == {
        "user_id": trader.id,
        "balances": {
            "INR": {"available": "2500.50", "held": "0.00", "margin": "0.00", "total": "2500.50"}
        },
    }

    page = (await client.get(LEDGER, headers=trader.headers)).json()
    assert page["next_cursor"] is None
    [entry] = page["items"]
    assert entry["id"] == body["entry_id"]
    assert entry["kind"] == "DEPOSIT" and entry["memo"] == "opening"
    assert entry["created_by"] == admin.id
    assert sorted((p["account"], p["amount"]) for p in entry["postings"]) == [
        ("external:deposits", "-2500.50"),
        (f"user:{trader.id}:cash", "2500.50"),
    ]
    audit = await client.get(
        "/api/v1/admin/audit",
        params={"action": "wallet.deposit", "target_id": str(trader.id)},
        headers=admin.headers,
    )
    [row] = audit.json()["items"]
    assert row["actor_id"] == admin.id
    assert row["changes"]["amount"] == "2500.50" and row["changes"]["entry_id"] == entry["id"]


async def test_withdrawal_within_available_is_paid_out(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    await client.post(deposits(trader.id), json={"amount": "1000"}, headers=admin.headers)
    r = await client.post(withdrawals(trader.id), json={"amount": "400.25"}, headers=admin.headers)
    assert r.status_code == 201, r.text
    assert r.json()["wallet"]["balances"]["INR"]["available"] == "599.75"
    kinds = [e["kind"] for e in (await client.get(LEDGER, headers=trader.headers)).json()["items"]]
    assert kinds == ["WITHDRAWAL", "DEPOSIT"]


async def test_withdrawal_beyond_available_is_refused_and_writes_nothing(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await client.post(deposits(trader.id), json={"amount": "100.00"}, headers=admin.headers)
    before = await ledger_counts(sessions)
    r = await client.post(withdrawals(trader.id), json={"amount": "100.01"}, headers=admin.headers)
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "WALLET_INSUFFICIENT_FUNDS"
    assert err["details"] == {"currency": "INR", "available": "100.00", "required": "100.01"}
    assert await ledger_counts(sessions) == before


async def test_withdrawal_from_an_empty_wallet_writes_no_balance_rows(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = await ledger_counts(sessions)
    r = await client.post(withdrawals(trader.id), json={"amount": "1"}, headers=admin.headers)
    assert r.status_code == 409
    assert await ledger_counts(sessions) == before


BAD_AMOUNTS = [
    pytest.param("0", id="zero"),
    pytest.param("0.00", id="zero with places"),
    pytest.param("-5", id="negative"),
    pytest.param("10.123", id="3 decimals in INR"),
    pytest.param("NaN", id="NaN"),
    pytest.param("Infinity", id="Infinity"),
    pytest.param("1e400", id="exponent"),
    pytest.param("1e2", id="small exponent"),
    pytest.param("abc", id="non-numeric"),
    pytest.param("", id="empty"),
    pytest.param("1.2.3", id="two points"),
    pytest.param("1000000000000.01", id="above the maximum"),
    pytest.param(100, id="a JSON number"),
    pytest.param(None, id="null"),
]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
async def test_bad_amounts_are_refused_with_422_and_write_nothing(
    client: httpx.AsyncClient,
    admin: AuthedUser,
    trader: AuthedUser,
    sessions: async_sessionmaker[AsyncSession],
    amount: object,
) -> None:
    before = await ledger_counts(sessions)
    for url in (deposits(trader.id), withdrawals(trader.id)):
        r = await client.post(url, json={"amount": amount}, headers=admin.headers)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] in ("WALLET_BAD_AMOUNT", "VALIDATION_ERROR")
    assert await ledger_counts(sessions) == before


@pytest.mark.parametrize("currency", ["inr", "IN", "INRR", "1NR", "", "IN\u0000"])
async def test_bad_currency_codes_are_refused_with_422(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser, currency: str
) -> None:
    r = await client.post(
        deposits(trader.id), json={"amount": "10", "currency": currency}, headers=admin.headers
    )
    assert r.status_code == 422, r.text


async def test_unknown_fields_and_nul_in_the_note_are_refused(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    for body in ({"amount": "10", "extra": 1}, {"amount": "10", "note": "a\u0000b"}):
        r = await client.post(deposits(trader.id), json=body, headers=admin.headers)
        assert r.status_code == 422, r.text


async def test_other_currencies_keep_their_own_balances_and_decimal_places(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    r = await client.post(
        deposits(trader.id), json={"amount": "12.5", "currency": "USD"}, headers=admin.headers
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        deposits(trader.id), json={"amount": "1.5", "currency": "JPY"}, headers=admin.headers
    )
    assert r.status_code == 422  # yen has no decimal places
    balances = (await client.get(WALLET, headers=trader.headers)).json()["balances"]
    assert balances["USD"]["available"] == "12.50"
    assert balances["INR"]["available"] == "0.00"


async def test_deposit_to_an_unknown_user_is_404(
    client: httpx.AsyncClient, admin: AuthedUser, sessions: async_sessionmaker[AsyncSession]
) -> None:
    before = await ledger_counts(sessions)
    r = await client.post(deposits(2_000_000_000), json={"amount": "10"}, headers=admin.headers)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "USER_NOT_FOUND"
    assert await ledger_counts(sessions) == before


async def test_only_admins_move_money(
    client: httpx.AsyncClient, trader: AuthedUser, viewer: AuthedUser
) -> None:
    for who in (trader, viewer):
        for url in (deposits(trader.id), withdrawals(trader.id)):
            r = await client.post(url, json={"amount": "10"}, headers=who.headers)
            assert r.status_code == 403
            assert r.json()["error"]["code"] == "FORBIDDEN_ROLE"


async def test_wallet_of_another_user_is_for_admins_only(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser, viewer: AuthedUser
) -> None:
    await client.post(deposits(trader.id), json={"amount": "75"}, headers=admin.headers)
    mine = await client.get(WALLET, headers=viewer.headers)
    assert mine.status_code == 200 and mine.json()["user_id"] == viewer.id
    own = await client.get(WALLET, params={"user_id": viewer.id}, headers=viewer.headers)
    assert own.status_code == 200
    for url in (WALLET, LEDGER):
        r = await client.get(url, params={"user_id": trader.id}, headers=viewer.headers)
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "WALLET_OTHER_USER"
    seen = await client.get(WALLET, params={"user_id": trader.id}, headers=admin.headers)
    assert seen.json()["balances"]["INR"]["available"] == "75.00"
    entries = await client.get(LEDGER, params={"user_id": trader.id}, headers=admin.headers)
    assert len(entries.json()["items"]) == 1
    missing = await client.get(WALLET, params={"user_id": 2_000_000_000}, headers=admin.headers)
    assert missing.status_code == 404


async def test_ledger_pages_with_a_cursor_and_filters_by_kind_and_time(
    client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    for amount in ("10", "20", "30"):
        await client.post(deposits(trader.id), json={"amount": amount}, headers=admin.headers)
    await client.post(withdrawals(trader.id), json={"amount": "5"}, headers=admin.headers)

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = (await client.get(LEDGER, params=params, headers=trader.headers)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 4 and seen == sorted(seen, reverse=True)

    r = await client.get(LEDGER, params={"kind": "DEPOSIT"}, headers=trader.headers)
    assert [e["kind"] for e in r.json()["items"]] == ["DEPOSIT"] * 3
    r = await client.get(LEDGER, params={"since": start.isoformat()}, headers=trader.headers)
    assert len(r.json()["items"]) == 4
    r = await client.get(LEDGER, params={"until": start.isoformat()}, headers=trader.headers)
    assert r.json()["items"] == []
    for bad in (
        {"kind": "BOGUS"},
        {"since": "1700000000"},
        {"since": "2026-01-01T00:00:00"},  # no time zone
        {"cursor": 0},
        {"limit": 501},
    ):
        r = await client.get(LEDGER, params=bad, headers=trader.headers)
        assert r.status_code == 422, (bad, r.text)


async def test_a_deposit_is_published_on_the_users_wallet_channel(
    app: FastAPI, client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    bus = app.state.qd.extras["bus"]
    async with bus.subscribe(user_channel(trader.id, "wallet")) as sub:
        r = await client.post(deposits(trader.id), json={"amount": "42"}, headers=admin.headers)
        assert r.status_code == 201
        channel, message = await asyncio.wait_for(sub.get(), 5)
    assert channel == user_channel(trader.id, "wallet")
    assert message["type"] == "wallet"
    assert message["balances"]["INR"]["available"] == "42.00"


async def test_a_failing_bus_does_not_fail_the_deposit(
    app: FastAPI, client: httpx.AsyncClient, admin: AuthedUser, trader: AuthedUser
) -> None:
    class Broken:
        async def publish(self, channel: str, message: object) -> None:
            raise ConnectionError("bus down")

    extras = app.state.qd.extras
    real, extras["bus"] = extras["bus"], Broken()
    try:
        r = await client.post(deposits(trader.id), json={"amount": "1"}, headers=admin.headers)
    finally:
        extras["bus"] = real
    assert r.status_code == 201, r.text
