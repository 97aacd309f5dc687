"""HTTP endpoints of market data: /api/v1/instruments (and the admin import)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request

from quantdesk.api.deps import AdminUser, CurrentUser, SessionDep, user_actor
from quantdesk.core.instruments import InstrumentRef, InvalidInstrumentRef
from quantdesk.errors import AppError, NotFound, ValidationFailed
from quantdesk.market import instruments
from quantdesk.market.schemas import ImportReportOut, InstrumentList, InstrumentOut
from quantdesk.openapi import error_responses

router = APIRouter(tags=["market"])

# InstrumentRef's grammar, case-insensitive, without its length limits (no look-arounds: the
# pattern also drives the API fuzzer's generator).
_REF_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{1,15}:[A-Za-z0-9][A-Za-z0-9&._-]*( [A-Za-z0-9&._-]+)*$"
_CSV_TYPES = frozenset({"text/csv", "text/plain", "application/csv", "application/octet-stream"})


# --- instruments ------------------------------------------------------------------------------


@router.get(
    "/instruments",
    response_model=InstrumentList,
    responses=error_responses(401, 422),
    summary="Search instruments by symbol prefix or name (exact symbol first)",
)
async def search_instruments(
    db: SessionDep,
    _user: CurrentUser,
    q: Annotated[
        str, Query(max_length=64, description="Symbol prefix, name part or ISIN; NSE:INF works")
    ] = "",
    exchange: Annotated[
        str | None, Query(max_length=16, pattern=r"^[A-Za-z][A-Za-z0-9_]{1,15}$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> InstrumentList:
    rows = await instruments.search(db, q, limit, exchange=exchange)
    return InstrumentList(items=[InstrumentOut.of(i) for i in rows])


@router.get(
    "/instruments/{ref}",
    response_model=InstrumentOut,
    responses=error_responses(401, 404, 422),
    summary="One instrument by EXCHANGE:SYMBOL (e.g. NSE:INFY; URL-encode spaces and '&')",
)
async def get_instrument(
    ref: Annotated[
        str,
        Path(max_length=65, pattern=_REF_PATTERN, description="EXCHANGE:SYMBOL, any case"),
    ],
    db: SessionDep,
    _user: CurrentUser,
) -> InstrumentOut:
    try:
        parsed = InstrumentRef.parse(ref)
    except InvalidInstrumentRef as exc:
        # The pattern lets through only names longer than any stored symbol can be.
        raise NotFound(f"No instrument {ref}.", code="INSTRUMENT_NOT_FOUND") from exc
    return InstrumentOut.of(await instruments.get(db, parsed))


@router.post(
    "/admin/instruments/import",
    response_model=ImportReportOut,
    responses=error_responses(401, 403, 413, 415, 422),
    summary="Import a broker instruments CSV (the request body, Content-Type text/csv)",
    description=(
        "Upserts by (exchange, symbol). Any bad row rejects the whole file (422, with the row "
        "numbers in `details.issues`) and nothing is written, unless `drop_bad=true`. Futures, "
        "options and other unsupported types are skipped and counted. The body is limited by "
        "QUANTDESK_MAX_BODY_BYTES; import full broker dumps with `quantdesk instruments import`."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def import_instruments(
    request: Request,
    db: SessionDep,
    admin: AdminUser,
    file_format: Annotated[
        Literal["kite"], Query(alias="format", description="File layout")
    ] = "kite",
    drop_bad: Annotated[bool, Query(description="Write the good rows, report the bad")] = False,
) -> ImportReportOut:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _CSV_TYPES:
        raise AppError(
            "Send the CSV as the request body with Content-Type text/csv.",
            code="UNSUPPORTED_MEDIA_TYPE",
            status_code=415,
        )
    body = await request.body()
    report = await instruments.import_kite_csv(
        db, body, actor=user_actor(request, admin), drop_bad=drop_bad, filename="upload"
    )
    if not report.accepted:
        raise ValidationFailed(
            f"Instrument file rejected, nothing written: {report.summary()}",
            code="INSTRUMENTS_IMPORT_REJECTED",
            details=report.as_dict(),
        )
    return ImportReportOut.model_validate(report.as_dict())
