"""Migration 0003 (ledger) on fresh SQLite and PostgreSQL databases: upgrade, downgrade to 0002
and upgrade again, with the migrated schema matching the models."""

from __future__ import annotations

from quantdesk.db.migrate import downgrade, upgrade
from tests.conftest import _in_thread
from tests.integration.market.test_instruments_migration import (  # noqa: F401 (fixture)
    _state,
    fresh_url,
    head,
)

LEDGER_TABLES = {"journal_entries", "postings", "account_balances"}


def test_ledger_tables_upgrade_downgrade_and_upgrade_again(fresh_url: str) -> None:  # noqa: F811
    _in_thread(lambda: upgrade(fresh_url))
    rev, tables, diff = _state(fresh_url)
    assert rev == head(fresh_url) and tables >= LEDGER_TABLES
    assert diff == []

    _in_thread(lambda: downgrade(fresh_url, "0002"))
    rev, tables, _ = _state(fresh_url)
    assert rev == "0002" and not tables & LEDGER_TABLES and "instruments" in tables

    _in_thread(lambda: upgrade(fresh_url))
    rev, tables, diff = _state(fresh_url)
    assert rev == head(fresh_url) and tables >= LEDGER_TABLES and diff == []
