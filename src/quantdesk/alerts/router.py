"""The alert inbox over HTTP: your alerts (newest first, unread filter, keyset pages) and
marking them read. Every role reads its own; admins also see the platform-wide alerts
(docs/alerts.md, "The inbox")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from quantdesk.alerts import inbox
from quantdesk.alerts.schemas import MAX_ID, AlertOut, AlertPageOut, ReadAllIn, ReadAllOut
from quantdesk.api.deps import CurrentUser, SessionDep
from quantdesk.auth.models import User
from quantdesk.auth.roles import Role
from quantdesk.openapi import error_responses

router = APIRouter(prefix="/alerts", tags=["alerts"])

MAX_LIMIT = 200
AlertId = Annotated[int, Path(ge=1, le=MAX_ID, description="The alert's id")]

_WHO = (
    "Your own alerts; an admin also sees the platform-wide ones (`user_id` null: system "
    "errors), which are shared by the admins: one admin marking one read marks it for all."
)


def _reader(user: User) -> inbox.Reader:
    return inbox.Reader(user.id, sees_platform=user.role == Role.ADMIN)


@router.get(
    "",
    response_model=AlertPageOut,
    responses=error_responses(401, 403, 422),
    summary="Your alerts, newest first, with your unread count (cursor pagination)",
    description=_WHO + " Pass `next_cursor` as `cursor` for older ones. Alerts older than "
    "`QUANTDESK_ALERT_INBOX_RETENTION_DAYS` are deleted.",
)
async def list_alerts(
    db: SessionDep,
    user: CurrentUser,
    unread: Annotated[bool, Query(description="Only the unread ones")] = False,
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> AlertPageOut:
    page = await inbox.list_alerts(db, _reader(user), unread=unread, cursor=cursor, limit=limit)
    return AlertPageOut.of(page)


@router.post(
    "/read-all",
    response_model=ReadAllOut,
    responses=error_responses(400, 401, 403, 422),
    summary="Mark all your unread alerts read (optionally only up to an id)",
    description=_WHO + " The body is optional.",
)
async def read_all_alerts(
    db: SessionDep, user: CurrentUser, body: Annotated[ReadAllIn | None, Body()] = None
) -> ReadAllOut:
    reader = _reader(user)
    max_id = body.max_id if body is not None else None
    marked = await inbox.mark_all_read(db, reader, datetime.now(UTC), max_id=max_id)
    return ReadAllOut(marked=marked, unread_count=await inbox.unread_count(db, reader))


@router.post(
    "/{alert_id}/read",
    response_model=AlertOut,
    responses=error_responses(401, 403, 404, 422),
    summary="Mark one of your alerts read",
    description=_WHO + " Marking a read alert again keeps its first `read_at`. "
    "`ALERT_NOT_FOUND` (404): no such alert, or not yours.",
)
async def read_alert(alert_id: AlertId, db: SessionDep, user: CurrentUser) -> AlertOut:
    row = await inbox.mark_read(db, _reader(user), alert_id, datetime.now(UTC))
    return AlertOut.of(row)
