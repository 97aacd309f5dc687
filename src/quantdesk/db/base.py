"""Declarative base and metadata with a constraint naming convention (stable migrations)."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def import_all_models() -> None:
    """Import every domain's tables so the metadata is complete (Alembic, tests)."""
    import quantdesk.alerts.inbox
    import quantdesk.auth.models
    import quantdesk.backtest.models
    import quantdesk.brokers.accounts
    import quantdesk.deploy.models
    import quantdesk.market.models
    import quantdesk.ml.models_db
    import quantdesk.observability.audit
    import quantdesk.orders.models
    import quantdesk.risk.models
    import quantdesk.wallet.models  # noqa: F401
