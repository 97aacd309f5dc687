"""Migration 0010 (broker_accounts) goes down to 0009 and up again on SQLite and PostgreSQL."""

from __future__ import annotations

from quantdesk.db.migrate import downgrade, upgrade
from tests.conftest import _in_thread
from tests.integration.market.test_instruments_migration import _state, fresh_url

__all__ = ["fresh_url"]  # the fixture, re-used


def test_migration_0010_adds_and_drops_the_broker_accounts_table(fresh_url: str) -> None:
    _in_thread(lambda: upgrade(fresh_url, "0010"))
    rev, tables, _ = _state(fresh_url)
    assert rev == "0010" and "broker_accounts" in tables

    _in_thread(lambda: downgrade(fresh_url, "0009"))
    rev, tables, _ = _state(fresh_url)
    assert rev == "0009" and "broker_accounts" not in tables and "alert_inbox" in tables

    _in_thread(lambda: upgrade(fresh_url, "0010"))
    rev, tables, _ = _state(fresh_url)
    assert rev == "0010" and "broker_accounts" in tables
