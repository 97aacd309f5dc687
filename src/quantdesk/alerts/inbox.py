"""The alert inbox: every alert the service accepts, kept per user with its read state.

The table (``alert_inbox``), the writer the :class:`~quantdesk.alerts.AlertService` hands each
accepted alert to (one INSERT, in the service's background task, never on the caller's stack),
and the queries behind ``GET /api/v1/alerts`` and marking alerts read.

Who sees a row: its owner (``user_id``). A platform-wide alert (``user_id`` NULL: a system
error, a failing background task) is the admins' shared inbox: every admin sees it and one
admin marking it read marks it read for all of them; traders and viewers never see it (the
dashboard never showed them, as there is no stream of such alerts for them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from quantdesk.alerts.model import Delivery
from quantdesk.db.base import Base
from quantdesk.db.types import UTCDateTime
from quantdesk.errors import NotFound

log = structlog.get_logger("quantdesk.alerts")

SessionMaker = async_sessionmaker[AsyncSession]
Now = Callable[[], datetime]

TITLE_MAX = 200
BODY_MAX = 4000  # a Telegram message's worth; the rest stays in the log line
PRUNE_EVERY_SECONDS = 3600.0

# BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements there).
_BigId = BigInteger().with_variant(Integer(), "sqlite")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AlertRow(Base):
    """One alert as delivered to a user (``user_id`` NULL: platform-wide, the admins')."""

    __tablename__ = "alert_inbox"
    __table_args__ = (
        Index("ix_alert_inbox_user_id_id", "user_id", "id"),
        Index("ix_alert_inbox_created_at", "created_at"),
        CheckConstraint(
            "severity IN ('info', 'warning', 'error', 'critical')", name="severity_known"
        ),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    body: Mapped[str] = mapped_column(Text)
    similar: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# --- the writer ---------------------------------------------------------------------------


class AlertInbox:
    """Stores accepted alerts (the service's :class:`~quantdesk.alerts.model.AlertStore`).

    ``add`` is one INSERT. With ``retention_days`` > 0, rows older than that are deleted at
    most once every ``prune_every`` seconds, in a task of their own (a slow DELETE never holds
    up the next alert)."""

    def __init__(
        self,
        sessionmaker: SessionMaker,
        *,
        retention_days: int = 90,
        prune_every: float = PRUNE_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Now = _utcnow,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.retention_days = retention_days
        self.prune_every = prune_every
        self.clock = clock
        self.now = now
        self._next_prune: float | None = None  # the first add prunes
        self._pruning: asyncio.Task[None] | None = None

    async def add(self, delivery: Delivery) -> int:
        alert = delivery.alert
        stmt = (
            insert(AlertRow)
            .values(
                user_id=alert.user_id,
                kind=alert.kind.value,
                severity=alert.severity.value,
                title=_clip(alert.title, TITLE_MAX),
                body=_clip(alert.body, BODY_MAX),
                similar=delivery.similar,
                created_at=alert.ts,
            )
            .returning(AlertRow.id)
        )
        async with self.sessionmaker() as db:
            alert_id = (await db.execute(stmt)).scalar_one()
            await db.commit()
        self._schedule_prune()
        return int(alert_id)

    def _schedule_prune(self) -> None:
        if self.retention_days <= 0 or (self._pruning is not None and not self._pruning.done()):
            return
        now = self.clock()
        if self._next_prune is not None and now < self._next_prune:
            return
        self._next_prune = now + self.prune_every
        self._pruning = asyncio.create_task(self._prune_logged(), name="alerts-inbox-prune")

    async def _prune_logged(self) -> None:
        try:
            deleted = await self.prune()
        except Exception as exc:  # retention is housekeeping: never an error for anyone
            log.warning("alert_inbox_prune_failed", error=type(exc).__name__)
            return
        if deleted:
            log.info("alert_inbox_pruned", deleted=deleted, retention_days=self.retention_days)

    async def prune(self) -> int:
        """Delete the rows older than the retention; returns how many (0 when it is off)."""
        if self.retention_days <= 0:
            return 0
        cutoff = self.now() - timedelta(days=self.retention_days)
        async with self.sessionmaker() as db:
            done = await db.execute(delete(AlertRow).where(AlertRow.created_at < cutoff))
            await db.commit()
        return int(done.rowcount)  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        """Wait for a prune in flight (the engine is disposed after the service stops)."""
        task, self._pruning = self._pruning, None
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=5)
            task.cancel()


# --- the reader's side: queries -----------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """Whose inbox: a user, and whether they also see platform-wide alerts (admins do)."""

    user_id: int
    sees_platform: bool = False


@dataclass(frozen=True)
class AlertPage:
    items: list[AlertRow]
    next_cursor: int | None
    unread_count: int


def _visible(reader: Reader) -> ColumnElement[bool]:
    mine = AlertRow.user_id == reader.user_id
    return or_(mine, AlertRow.user_id.is_(None)) if reader.sees_platform else mine


async def list_alerts(
    db: AsyncSession,
    reader: Reader,
    *,
    unread: bool = False,
    cursor: int | None = None,
    limit: int = 50,
) -> AlertPage:
    """The reader's alerts, newest first (id order: the order they were accepted in), in
    keyset pages: pass ``next_cursor`` back as ``cursor``. ``unread_count`` counts all of the
    reader's unread alerts, whatever the page."""
    q = select(AlertRow).where(_visible(reader))
    if unread:
        q = q.where(AlertRow.read_at.is_(None))
    if cursor is not None:
        q = q.where(AlertRow.id < cursor)
    rows = list((await db.execute(q.order_by(AlertRow.id.desc()).limit(limit + 1))).scalars())
    page = rows[:limit]
    next_cursor = page[-1].id if len(rows) > limit else None
    return AlertPage(page, next_cursor, await unread_count(db, reader))


async def unread_count(db: AsyncSession, reader: Reader) -> int:
    q = select(func.count()).where(_visible(reader), AlertRow.read_at.is_(None))
    return int((await db.execute(q)).scalar_one())


async def mark_read(db: AsyncSession, reader: Reader, alert_id: int, now: datetime) -> AlertRow:
    """Mark one alert read (again: a no-op that keeps the first ``read_at``). Another user's
    alert answers exactly like a missing one, so ids reveal nothing."""
    row = (
        await db.execute(select(AlertRow).where(AlertRow.id == alert_id, _visible(reader)))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("No such alert.", code="ALERT_NOT_FOUND", details={"id": alert_id})
    if row.read_at is None:
        row.read_at = now
        await db.commit()
    return row


async def mark_all_read(
    db: AsyncSession, reader: Reader, now: datetime, *, max_id: int | None = None
) -> int:
    """Mark the reader's unread alerts read (only those up to ``max_id`` when given, so an
    alert that arrived after the client last looked stays unread); returns how many."""
    q = update(AlertRow).where(_visible(reader), AlertRow.read_at.is_(None))
    if max_id is not None:
        q = q.where(AlertRow.id <= max_id)
    done = await db.execute(q.values(read_at=now).execution_options(synchronize_session=False))
    await db.commit()
    return int(done.rowcount)  # type: ignore[attr-defined]
