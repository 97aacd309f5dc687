"""The ML jobs table: one row per training run or feature build requested over the API.

(``quantdesk.ml.models`` is the package of machine-learning models; this module holds the
database table.) A row is written only for a request that passed validation (DESIGN invariant
8). The row keeps the status, the progress, the request, the training result (the document
``quantdesk ml train --json`` prints: small) and the error; the model itself, its plots and the
signal backtest's equity curve are in the MLflow run the result names.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from quantdesk.db.base import Base
from quantdesk.db.types import UTCDateTime


class MLRunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


LIVE_STATUSES = (MLRunStatus.QUEUED, MLRunStatus.RUNNING)
"""A run in one of these can still change (and be cancelled); the others are final."""

TRAIN = "train"
"""The job kind of a training run."""
FEATURES = "features"
"""The job kind of a feature build (the offline store over a range of stored bars)."""
KINDS = (TRAIN, FEATURES)


class MLRunRow(Base):
    """One ML job. ``progress`` is 0..1 (1 once it succeeded) and ``stage`` the pipeline's last
    report ``{stage, done, total}``; ``result`` is ``TrainResult.to_json()`` once it succeeded,
    ``error`` ``{code, message, trace?}`` once it failed."""

    __tablename__ = "ml_runs"
    __table_args__ = (
        Index("ix_ml_runs_user_id_created_at", "user_id", "created_at", "id"),
        Index("ix_ml_runs_created_at_id", "created_at", "id"),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="status_known",
        ),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_fraction"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16), default=TRAIN)
    status: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
