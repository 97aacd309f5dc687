"""The posting service on both backends: append-only tables, cached balances, the overdraft
rule under concurrency, idempotency keys, and ``ledger verify`` (service and command line)."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from quantdesk.cli import app as cli
from quantdesk.core import ledger as core
from quantdesk.observability.audit import Actor
from quantdesk.wallet import service
from quantdesk.wallet.models import AccountBalance, JournalEntryRow, PostingRow

ACTOR = Actor(None, "test", None, None)
# Ledger accounts need no user row: these ids are far beyond any the tests create.
_ids = itertools.count(1_500_000_000 + (os.getpid() % 1000) * 100_000)


def phantom_user() -> int:
    return next(_ids)


def ref() -> str:
    return uuid.uuid4().hex


async def fund(sessions: async_sessionmaker[AsyncSession], user_id: int, amount: str) -> None:
    async with sessions() as db:
        await service.post(db, core.deposit(user_id, Decimal(amount), "INR", ref=ref()))
        await db.commit()


async def test_post_updates_the_cached_balances_in_the_callers_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    uid = phantom_user()
    async with sessions() as db:
        await service.post(db, core.deposit(uid, Decimal("500"), "INR", ref=ref()))
        assert (await service.wallet(db, uid))["INR"].available == 500
        await db.rollback()  # the caller decides: nothing of it stays
    async with sessions() as db:
        assert (await service.wallet(db, uid))["INR"].total == 0
        n = await db.execute(
            select(func.count()).where(AccountBalance.account == core.user_cash(uid))
        )
        assert n.scalar_one() == 0


async def test_hold_and_release_move_cash_between_available_and_held(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    uid = phantom_user()
    await fund(sessions, uid, "1000")
    async with sessions() as db:
        locked = await service.lock_wallet(db, uid, "INR")
        hold = core.hold(uid, Decimal("600"), "INR", available=locked.available, ref="o1")
        await service.post(db, hold, lock=False)
        await service.post(db, core.release(uid, Decimal("250"), "INR", ref="o1"))
        await db.commit()
        w = (await service.wallet(db, uid))["INR"]
    assert (w.available, w.held, w.total) == (Decimal(650), Decimal(350), Decimal(1000))


async def test_post_refuses_an_entry_that_would_overdraw_even_if_built_without_the_check(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    uid = phantom_user()
    await fund(sessions, uid, "100")
    # A stale "available" passes the core's check; the service re-checks under the lock.
    stale = core.hold(uid, Decimal("150"), "INR", available=Decimal("1000"), ref="o2")
    async with sessions() as db:
        with pytest.raises(service.InsufficientFunds) as err:
            await service.post(db, stale)
        await db.rollback()
    assert err.value.status_code == 409
    assert err.value.details["available"] == "100.00"
    over_release = core.release(uid, Decimal("1"), "INR", ref="o2")
    async with sessions() as db:
        with pytest.raises(service.InsufficientHeld):
            await service.post(db, over_release)
        await db.rollback()


async def test_post_refuses_amounts_the_money_column_cannot_hold_exactly(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    uid = phantom_user()
    entry = core.deposit(uid, Decimal("0.000000001"), "INR", ref=ref())
    async with sessions() as db:
        with pytest.raises(service.ValidationFailed) as err:
            await service.post(db, entry)
        await db.rollback()
    assert err.value.code == "LEDGER_BAD_AMOUNT"


async def test_an_idempotency_key_posts_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    uid = phantom_user()
    key = f"trade:{ref()}"
    ids = []
    for _ in range(2):
        async with sessions() as db:
            entry = core.deposit(uid, Decimal("10"), "INR", ref="t")
            ids.append(await service.post(db, entry, idempotency_key=key))
            await db.commit()
    assert ids[0] == ids[1]
    async with sessions() as db:
        assert (await service.wallet(db, uid))["INR"].available == 10


async def test_post_many_locks_once_and_checks_each_entry_in_turn(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    uid = phantom_user()
    await fund(sessions, uid, "1000")
    trade = core.settle_fill(uid, core.Side.BUY, 2, Decimal("300"), "INR", venue="paper", ref="f1")
    fees = core.charges(uid, {"brokerage": Decimal("20"), "stt": Decimal("1")}, "INR", ref="f1")
    async with sessions() as db:
        ids = await service.post_many(db, [trade, *fees])
        await db.commit()
        assert len(ids) == 3 and ids == sorted(ids)
        assert (await service.wallet(db, uid))["INR"].available == Decimal("379")
    async with sessions() as db:
        too_much = core.settle_fill(
            uid, core.Side.BUY, 1, Decimal("300"), "INR", venue="paper", ref="f2"
        )
        with pytest.raises(service.InsufficientFunds):
            await service.post_many(db, [too_much, too_much])  # the second one overdraws
        await db.rollback()


@pytest.mark.parametrize("table", ["journal_entries", "postings"])
async def test_the_database_refuses_update_and_delete_on_the_journal(
    sessions: async_sessionmaker[AsyncSession], table: str
) -> None:
    await fund(sessions, phantom_user(), "1")
    model = JournalEntryRow if table == "journal_entries" else PostingRow
    column = model.memo if model is JournalEntryRow else model.account
    for stmt in (update(model).values({column: "tampered"}), delete(model)):
        async with sessions() as db:
            with pytest.raises((DBAPIError, IntegrityError, OperationalError)) as err:
                await db.execute(stmt)
            assert "append-only" in str(err.value)
            await db.rollback()
    async with sessions() as db:
        n = await db.execute(select(func.count()).select_from(model).where(column == "tampered"))
        assert n.scalar_one() == 0


async def test_verify_passes_after_activity(sessions: async_sessionmaker[AsyncSession]) -> None:
    uid = phantom_user()
    await fund(sessions, uid, "300")
    async with sessions() as db:
        report = await service.verify(db)
    assert report.ok, report.discrepancy
    assert report.entries >= 1 and report.postings >= 2 * report.entries
    assert report.accounts >= 2


def _cli(db_url: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        ["ledger", "verify"],
        env={"QUANTDESK_DATABASE_URL": db_url, "QUANTDESK_JWT_SECRET": "x" * 40},
    )
    return result.exit_code, result.output


async def test_ledger_verify_command_fails_naming_a_corrupted_cached_balance(
    db_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    uid = phantom_user()
    await fund(sessions, uid, "300")
    code, out = await asyncio.to_thread(_cli, db_url)
    assert code == 0, out
    assert "Ledger OK" in out and "entries" in out and "postings" in out and "accounts" in out

    cash = core.user_cash(uid)
    corrupt = text("UPDATE account_balances SET balance = :b WHERE account = :a").bindparams(
        a=cash, b="299.99" if db_url.startswith("sqlite") else Decimal("299.99")
    )
    async with sessions() as db:
        await db.execute(corrupt)
        await db.commit()
    try:
        code, out = await asyncio.to_thread(_cli, db_url)
        assert code == 1, out
        assert f"BALANCE_MISMATCH: {cash} INR: cached balance 299.99 != sum of postings 300" in out
        async with sessions() as db:
            report = await service.verify(db)
        assert report.discrepancy is not None and report.discrepancy.account == cash
    finally:
        async with sessions() as db:
            await db.execute(
                update(AccountBalance)
                .where(AccountBalance.account == cash)
                .values(balance=Decimal("300"))
            )
            await db.commit()
    code, out = await asyncio.to_thread(_cli, db_url)
    assert code == 0, out


async def test_fifty_concurrent_withdrawals_never_overdraw(
    sessions: async_sessionmaker[AsyncSession],
    make_user: object,
) -> None:
    """50 withdrawals of 100 against 2,000 at once: exactly 20 succeed (row locks on
    PostgreSQL, the write lock taken first on SQLite), available never below zero."""
    uid = (await make_user(login=False)).id  # type: ignore[operator]
    await fund(sessions, uid, "2000")
    lowest: list[Decimal] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            async with sessions() as db:
                lowest.append((await service.wallet(db, uid))["INR"].available)
            await asyncio.sleep(0.005)

    async def withdraw() -> bool:
        async with sessions() as db:
            try:
                await service.withdraw(db, ACTOR, uid, "100", "INR", "race")
            except service.InsufficientFunds:
                return False
            return True

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(*(withdraw() for _ in range(50)))
    done.set()
    await watcher
    assert results.count(True) == 20
    assert min(lowest) >= 0
    async with sessions() as db:
        assert (await service.wallet(db, uid))["INR"].available == 0
        report = await service.verify(db)
    assert report.ok, report.discrepancy
