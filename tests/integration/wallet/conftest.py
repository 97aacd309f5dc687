"""Wallet test helpers: a session factory on the test's database and row counters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.observability.audit import AuditLog
from quantdesk.wallet.models import AccountBalance, JournalEntryRow, PostingRow


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(db_url)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


async def ledger_counts(sessions: async_sessionmaker[AsyncSession]) -> dict[str, object]:
    """Entry, posting and audit row counts and every cached balance: "nothing written" checks."""
    async with sessions() as db:
        out: dict[str, object] = {}
        for name, model in (
            ("entries", JournalEntryRow),
            ("postings", PostingRow),
            ("audit", AuditLog),
        ):
            out[name] = (await db.execute(select(func.count()).select_from(model))).scalar_one()
        rows = await db.execute(
            select(AccountBalance.account, AccountBalance.currency, AccountBalance.balance)
        )
        out["balances"] = {(a, c): b for a, c, b in rows.all()}
        return out
