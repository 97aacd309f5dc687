"""HTTP endpoint of the charges calculator."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from quantdesk.api.deps import CurrentUser
from quantdesk.charges import service
from quantdesk.charges.schemas import ChargesEstimateOut
from quantdesk.core.charges import MAX_PRICE_PLACES, MAX_QUANTITY, Exchange, Segment
from quantdesk.openapi import error_responses

router = APIRouter(tags=["charges"])

# The schema documents the accepted formats, but the service enforces them, so every bad price
# answers CHARGES_BAD_PRICE and every bad quantity CHARGES_BAD_QUANTITY (with the parameter).
_PRICE_SCHEMA = {
    "pattern": rf"^[0-9]{{1,10}}(\.[0-9]{{1,{MAX_PRICE_PLACES}}})?$",
    "maxLength": 32,
}
_PRICE_HELP = (
    f"Price per share in rupees, a plain decimal string with at most {MAX_PRICE_PLACES} decimals,"
    " greater than 0 and at most 1000000000 (no sign, exponent, NaN or Infinity)"
)


@router.get(
    "/charges/estimate",
    response_model=ChargesEstimateOut,
    responses=error_responses(401, 422),
    summary="Charges, P&L and break-even of a buy and a sell of one quantity (like a broker's "
    "calculator)",
    description=(
        "Indian equity delivery (CNC) or intraday (MIS) on NSE or BSE, at the rates in force on "
        "`date` (default: today in India) with Zerodha's brokerage and DP charge. STT and stamp "
        "duty are rounded to the rupee, the other components to the paisa (half up); GST is on "
        "the rounded brokerage, exchange charge and SEBI fee. Errors: `CHARGES_BAD_PRICE`, "
        "`CHARGES_BAD_QUANTITY`, `CHARGES_BAD_DATE`, `CHARGES_NO_SCHEDULE` (a date before the "
        "first schedule row), each with `details.parameter`."
    ),
)
async def estimate_charges(
    _user: CurrentUser,
    segment: Annotated[Segment, Query(description="equity_delivery (CNC) or equity_intraday")],
    exchange: Annotated[Exchange, Query(description="NSE or BSE")],
    buy: Annotated[
        str, Query(description=_PRICE_HELP, examples=["1000.00"], json_schema_extra=_PRICE_SCHEMA)
    ],
    sell: Annotated[
        str, Query(description=_PRICE_HELP, examples=["1100.00"], json_schema_extra=_PRICE_SCHEMA)
    ],
    quantity: Annotated[
        int,
        Query(
            description=f"Shares bought and sold, 1 to {MAX_QUANTITY}",
            examples=[100],
            json_schema_extra={"minimum": 1, "maximum": MAX_QUANTITY},
        ),
    ],
    trade_date: Annotated[
        str | None,
        Query(
            alias="date",
            description="Trade date, YYYY-MM-DD; default today in India",
            examples=["2025-06-02"],
            json_schema_extra={"format": "date", "maxLength": 10},
        ),
    ] = None,
) -> ChargesEstimateOut:
    result = service.estimate(segment, exchange, buy, sell, quantity, trade_date)
    return ChargesEstimateOut.of(result)
