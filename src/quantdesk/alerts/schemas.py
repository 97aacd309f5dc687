"""Request and response shapes of the alert inbox API (``/api/v1/alerts``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict

from quantdesk.alerts.inbox import AlertPage, AlertRow
from quantdesk.alerts.model import Severity

MAX_ID = 2**63 - 1

_ALERT_EXAMPLE: JsonDict = {
    "id": 41,
    "user_id": 2,
    "kind": "risk_halt",
    "severity": "critical",
    "title": "Daily loss limit hit",
    "body": "Trading halted: loss 52,000.00 exceeds the 50,000.00 limit.",
    "similar": 0,
    "created_at": "2026-01-30T09:41:07Z",
    "read_at": None,
}


class AlertOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_ALERT_EXAMPLE]})

    id: int = Field(description="The alert's id (mark it read with POST /alerts/{id}/read)")
    user_id: int | None = Field(
        description="The account it concerns; null: platform-wide (admins only)"
    )
    kind: str = Field(
        description="What happened: order_rejected, order_failed, risk_halt, kill_switch, "
        "drawdown, system_error, model_drift, test (more may be added)",
        examples=["risk_halt"],
    )
    severity: Severity
    title: str
    body: str
    similar: int = Field(
        description="Repeats suppressed by deduplication before this one was delivered"
    )
    created_at: datetime = Field(description="When the alert was raised (UTC)")
    read_at: datetime | None = Field(description="When it was marked read; null: unread")

    @classmethod
    def of(cls, row: AlertRow) -> AlertOut:
        return cls(
            id=row.id,
            user_id=row.user_id,
            kind=row.kind,
            severity=Severity(row.severity),
            title=row.title,
            body=row.body,
            similar=row.similar,
            created_at=row.created_at,
            read_at=row.read_at,
        )


class AlertPageOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"items": [_ALERT_EXAMPLE], "next_cursor": 41, "unread_count": 3}]
        }
    )

    items: list[AlertOut]
    next_cursor: int | None = Field(
        description="Pass as `cursor` for the next (older) page; null: this is the last page"
    )
    unread_count: int = Field(
        description="All your unread alerts (whatever the page and the `unread` filter)"
    )

    @classmethod
    def of(cls, page: AlertPage) -> AlertPageOut:
        return cls(
            items=[AlertOut.of(r) for r in page.items],
            next_cursor=page.next_cursor,
            unread_count=page.unread_count,
        )


class ReadAllIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"max_id": 41}]})

    max_id: Annotated[
        int | None,
        Field(
            ge=1,
            le=MAX_ID,
            description="Only alerts with an id up to this one (the newest you have shown), so "
            "one that arrived meanwhile stays unread; omitted: all of them",
        ),
    ] = None


class ReadAllOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"marked": 3, "unread_count": 0}]})

    marked: int = Field(description="Alerts this request marked read")
    unread_count: int = Field(description="Your unread alerts left")
