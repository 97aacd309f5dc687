"""HTTP endpoints of market data: instruments (and the admin import), candles and quotes."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Path, Query, Request

from quantdesk.api.deps import AdminUser, CurrentUser, SessionDep, StateDep, user_actor
from quantdesk.api.types import NO_NUL, IsoDateTime
from quantdesk.core.instruments import InstrumentRef, InvalidInstrumentRef
from quantdesk.errors import AppError, NotFound, ValidationFailed
from quantdesk.market import instruments
from quantdesk.market.candles import CandleInterval, InvalidIntervalError, candles
from quantdesk.market.quotes import QuoteCache
from quantdesk.market.schemas import (
    CandleOut,
    CandleSeries,
    ImportReportOut,
    InstrumentList,
    InstrumentOut,
    QuoteList,
    QuoteOut,
    price_text,
)
from quantdesk.market.store import BarStore
from quantdesk.openapi import error_responses
from quantdesk.timeutil import require_aware

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
        str,
        Query(
            max_length=64,
            pattern=NO_NUL,
            description="Symbol prefix, name part or ISIN; NSE:INF works",
        ),
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


# --- candles and quotes -----------------------------------------------------------------------

MAX_CANDLES = 10_000
MAX_QUOTE_SYMBOLS = 200


def _parse_ref(ref: str) -> InstrumentRef:
    try:
        return InstrumentRef.parse(ref)
    except InvalidInstrumentRef as exc:
        raise ValidationFailed(str(exc), code="MARKET_BAD_SYMBOL", details={"symbol": ref}) from exc


@router.get(
    "/market/candles",
    response_model=CandleSeries,
    responses=error_responses(401, 404, 422),
    summary="OHLCV candles aligned to the exchange's sessions",
    description=(
        "Resamples stored 1-minute bars (and daily bars where no minutes exist) to the interval."
        " Intraday buckets start at the session open (09:15 IST on NSE); a daily candle is one "
        "session, a weekly candle the sessions of an ISO week. Returns the candles overlapping "
        "[start, end); without `start`, the latest `limit` candles. Prices are decimal strings."
    ),
)
async def get_candles(
    state: StateDep,
    db: SessionDep,
    _user: CurrentUser,
    symbol: Annotated[str, Query(max_length=65, pattern=_REF_PATTERN, examples=["NSE:INFY"])],
    interval: CandleInterval = "1d",
    start: IsoDateTime | None = None,
    end: IsoDateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_CANDLES)] = 1000,
) -> CandleSeries:
    ref = _parse_ref(symbol)
    start, end = (
        require_aware(start, "start", code="MARKET_NAIVE_TIME"),
        require_aware(end, "end", code="MARKET_NAIVE_TIME"),
    )
    if start is not None and end is not None and start >= end:
        raise ValidationFailed("start must be before end.", code="MARKET_BAD_RANGE")
    instrument = await instruments.get(db, ref)
    store: BarStore = state.extras["bar_store"]
    try:
        frame = await anyio.to_thread.run_sync(
            lambda: candles(store, str(ref), interval, start, end)
        )
    except InvalidIntervalError as exc:
        raise ValidationFailed(str(exc), code="MARKET_INVALID_INTERVAL") from exc
    truncated = len(frame) > limit
    if truncated:
        if start is not None:
            raise ValidationFailed(
                f"The range holds {len(frame)} candles; at most {limit} per request.",
                code="MARKET_RANGE_TOO_LARGE",
                details={"candles": len(frame), "limit": limit},
            )
        frame = frame.tail(limit)
    tick = instrument.tick_size
    rows = [
        CandleOut(
            time=t.to_pydatetime(),
            open=_price(o, tick),
            high=_price(h, tick),
            low=_price(lo, tick),
            close=_price(c, tick),
            volume=int(v),
        )
        for t, o, h, lo, c, v in zip(
            frame["time"],
            frame["open"],
            frame["high"],
            frame["low"],
            frame["close"],
            frame["volume"],
            strict=True,
        )
    ]
    return CandleSeries(
        symbol=str(ref),
        interval=interval,
        timezone=str(store.calendar(str(ref)).tz),
        candles=rows,
        truncated=truncated,
    )


def _price(value: float, tick: Decimal) -> str:
    # Bars are stored as float64; the shortest repr round-trips, then the tick's precision.
    return price_text(Decimal(repr(float(value))), tick)


@router.get(
    "/market/quotes",
    response_model=QuoteList,
    responses=error_responses(401, 422),
    summary="Latest quote per symbol (from the live feed's cache)",
)
async def get_quotes(
    state: StateDep,
    _user: CurrentUser,
    symbols: Annotated[
        str, Query(min_length=1, max_length=8192, description="Comma-separated EXCHANGE:SYMBOL")
    ],
) -> QuoteList:
    names = [s.strip() for s in symbols.split(",") if s.strip()]
    if not names:
        raise ValidationFailed("Give at least one symbol.", code="MARKET_BAD_SYMBOL")
    if len(names) > MAX_QUOTE_SYMBOLS:
        raise ValidationFailed(
            f"At most {MAX_QUOTE_SYMBOLS} symbols per request.", code="MARKET_TOO_MANY_SYMBOLS"
        )
    refs = list(dict.fromkeys(str(_parse_ref(n)) for n in names))
    cache: QuoteCache = state.extras["quote_cache"]
    found = await cache.get_many(refs)
    return QuoteList(
        quotes=[
            QuoteOut(
                symbol=q.symbol,
                last=str(q.last),
                bid=str(q.bid),
                ask=str(q.ask),
                volume=q.volume,
                ts=q.ts,
            )
            for q in (found[r] for r in refs if r in found)
        ],
        missing=[r for r in refs if r not in found],
    )
