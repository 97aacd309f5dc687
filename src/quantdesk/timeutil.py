"""Time helpers shared by the services: UTC inside, and no naive datetimes from clients."""

from __future__ import annotations

from datetime import UTC, datetime

from quantdesk.errors import ValidationFailed


def require_aware(
    ts: datetime | None, name: str, *, code: str = "VALIDATION_ERROR"
) -> datetime | None:
    """``ts`` in UTC; a 422 naming the parameter when it has no time zone."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        raise ValidationFailed(
            f"{name} needs a time zone (e.g. 2026-01-02T09:15:00+05:30 or ...Z).", code=code
        )
    return ts.astimezone(UTC)
