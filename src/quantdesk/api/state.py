"""Process-wide resources created at start-up and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from quantdesk.auth.service import AuthContext
from quantdesk.observability.metrics import Metrics
from quantdesk.settings import Settings


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    metrics: Metrics
    auth: AuthContext
    redis: Redis | None = None
    # Later domains (bus, feed, quote cache, brokers) hang their resources here.
    extras: dict[str, Any] = field(default_factory=dict)
