"""Property: any sequence of deposits, withdrawals, holds and releases through the posting
service keeps every cached balance equal to the sum of its postings, and available and held
never below zero (refused operations change nothing)."""

from __future__ import annotations

import asyncio
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from quantdesk.core import ledger as core
from quantdesk.core.errors import InvalidState
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.wallet import service
from quantdesk.wallet.models import AccountBalance, PostingRow

_ids = itertools.count(1_700_000_000 + (os.getpid() % 1000) * 100_000)

OPS = st.lists(
    st.tuples(
        st.sampled_from(["deposit", "withdraw", "hold", "release"]),
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal("3000"), places=2),
    ),
    min_size=1,
    max_size=15,
)


async def _apply(db_url: str, ops: list[tuple[str, Decimal]]) -> None:
    uid = next(_ids)
    cash, held = core.user_cash(uid), core.user_held(uid)
    model = {"available": Decimal(0), "held": Decimal(0)}
    engine = create_engine(db_url)
    sessions = create_sessionmaker(engine)
    try:
        for n, (op, amount) in enumerate(ops):
            ref = f"prop:{uid}:{n}"
            async with sessions() as db:
                try:
                    if op == "deposit":
                        await service.post(db, core.deposit(uid, amount, "INR", ref=ref))
                        model["available"] += amount
                    elif op == "withdraw":
                        # Built without the core's check: the service must refuse an overdraft.
                        entry = core.withdrawal(uid, amount, "INR", available=amount, ref=ref)
                        await service.post(db, entry)
                        model["available"] -= amount
                    elif op == "hold":
                        locked = await service.lock_wallet(db, uid, "INR")
                        entry = core.hold(uid, amount, "INR", available=locked.available, ref=ref)
                        await service.post(db, entry, lock=False)
                        model["available"] -= amount
                        model["held"] += amount
                    else:
                        await service.post(db, core.release(uid, amount, "INR", ref=ref))
                        model["available"] += amount
                        model["held"] -= amount
                    await db.commit()
                except (InvalidState, service.InsufficientFunds, service.InsufficientHeld):
                    await db.rollback()
            async with sessions() as db:
                w = (await service.wallet(db, uid))["INR"]
            assert (w.available, w.held) == (model["available"], model["held"]), (op, amount)
            assert w.available >= 0 and w.held >= 0

        async with sessions() as db:
            sums: dict[str, Decimal] = {}
            rows = await db.execute(
                select(PostingRow.account, PostingRow.amount).where(
                    PostingRow.account.in_([cash, held])
                )
            )
            for account, amount in rows.all():
                sums[account] = sums.get(account, Decimal(0)) + amount
            cached = await db.execute(
                select(AccountBalance.account, AccountBalance.balance).where(
                    AccountBalance.account.in_([cash, held])
                )
            )
            for account, balance in cached.all():
                assert balance == sums.get(account, Decimal(0)), account
                assert balance >= 0
            report = await service.verify(db)
            assert report.ok, report.discrepancy
    finally:
        await engine.dispose()


@settings(max_examples=20, deadline=None)
@given(ops=OPS)
def test_random_wallet_activity_keeps_balances_equal_to_postings_and_never_negative(
    db_url: str, ops: list[tuple[str, Decimal]]
) -> None:
    # Its own event loop in a worker thread: hypothesis drives a plain function.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(_apply(db_url, ops))).result()
