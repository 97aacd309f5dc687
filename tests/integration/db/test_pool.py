"""The PostgreSQL pool without pre-ping: a checkout costs no transaction, and a pooled
connection the server closed is replaced, not handed to a request."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import event, text

from quantdesk.db.engine import create_engine
from tests.conftest import PG_ADMIN_DSN

pytestmark = pytest.mark.postgres


async def test_checkout_sends_nothing_and_a_killed_connection_is_replaced(
    pg_database: str,
) -> None:
    engine = create_engine(pg_database)
    statements: list[str] = []
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, stmt, *_a: statements.append(stmt),
    )
    try:
        async with engine.connect() as conn:
            first = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        statements.clear()
        async with engine.connect() as conn:  # the same pooled connection, no ping
            again = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again == first
        assert statements == ["SELECT pg_backend_pid()"]

        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        await asyncio.sleep(0.3)  # the pooled connection hears the server close it

        async with engine.connect() as conn:
            fresh = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert fresh != first
    finally:
        await engine.dispose()
