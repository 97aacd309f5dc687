"""Deployments: a strategy running as a user on the paper broker (later, a live broker)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from quantdesk.db.base import Base
from quantdesk.db.types import UTCDateTime


class DeploymentStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FAILED = "failed"


ACTIVE = (DeploymentStatus.RUNNING.value, DeploymentStatus.PAUSED.value)
"""Restarted with the server (a paused one stays paused)."""


class DeploymentRow(Base):
    """``seq`` is the number of orders the deployment has sent (its order ids continue from it
    after a restart); ``error`` is ``{code, message, trace?}`` when it stopped on its own."""

    __tablename__ = "deployments"
    __table_args__ = (
        Index("ix_deployments_user_id_created_at", "user_id", "created_at", "id"),
        CheckConstraint(
            "status IN ('running', 'paused', 'stopped', 'failed')", name="status_known"
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    strategy: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    symbols: Mapped[list[str]] = mapped_column(JSON)
    interval: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), index=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    bars: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
