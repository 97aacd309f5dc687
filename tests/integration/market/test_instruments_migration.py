"""Migration 0002 (instruments) on fresh SQLite and PostgreSQL databases: upgrade, downgrade to
0001 and upgrade again, with the migrated schema matching the model."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from quantdesk.db.base import Base, import_all_models
from quantdesk.db.migrate import alembic_config, current, downgrade, upgrade
from tests.conftest import PG_ADMIN_DSN, _admin_execute, _in_thread, _pg_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"qd_mig_{secrets.token_hex(4)}"
    _in_thread(lambda: asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"')))
    try:
        yield _pg_url(PG_ADMIN_DSN, name)
    finally:
        _in_thread(
            lambda: asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        )


def _state(url: str) -> tuple[str | None, set[str], list[object]]:
    """(revision, tables, differences between the migrated schema and the models)."""
    import_all_models()

    def compare(sync_conn: Connection) -> tuple[set[str], list[object]]:
        ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return set(inspect(sync_conn).get_table_names()), list(compare_metadata(ctx, Base.metadata))

    async def read() -> tuple[str | None, set[str], list[object]]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                tables, diff = await conn.run_sync(compare)
        finally:
            await engine.dispose()
        return await current(url), tables, diff

    return cast(tuple[str | None, set[str], list[object]], _in_thread(lambda: asyncio.run(read())))


def head(url: str) -> str | None:
    """The latest revision (later migrations stack on 0002)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def test_upgrade_downgrade_and_upgrade_again(fresh_url: str) -> None:
    _in_thread(lambda: upgrade(fresh_url))
    rev, tables, diff = _state(fresh_url)
    assert rev == head(fresh_url) and "instruments" in tables
    assert diff == []

    _in_thread(lambda: downgrade(fresh_url, "0001"))
    rev, tables, _ = _state(fresh_url)
    assert rev == "0001" and "instruments" not in tables and "users" in tables

    _in_thread(lambda: upgrade(fresh_url))
    rev, tables, diff = _state(fresh_url)
    assert rev == head(fresh_url) and "instruments" in tables and diff == []
