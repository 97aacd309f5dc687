"""The backtest jobs table: one row per run requested over the API.

A row is written only for a request that passed validation (DESIGN invariant 8). Small things
live in the row (status, progress, the request, the summary with its metrics, the error); the
large results (fills, round trips, the equity curve, the HTML report) are files under
``<data_dir>/backtests/<id>/`` (see :mod:`quantdesk.backtest.artifacts`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from quantdesk.db.base import Base
from quantdesk.db.types import UTCDateTime


class BacktestStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


LIVE_STATUSES = (BacktestStatus.QUEUED, BacktestStatus.RUNNING)
"""A run in one of these can still change (and be cancelled); the others are final."""


class BacktestRunRow(Base):
    """One backtest job. ``progress`` is 0..1 (1 once it succeeded); ``error`` is
    ``{code, message, trace?}`` for a failed run."""

    __tablename__ = "backtest_runs"
    __table_args__ = (
        Index("ix_backtest_runs_user_id_created_at", "user_id", "created_at", "id"),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="status_known",
        ),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_fraction"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
