"""Orders, trades and positions endpoints. A user sees only their own; an admin sees all (another
user's order answers 404 to anyone else, so its existence does not leak)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from starlette.convertors import Convertor, register_url_convertor

from quantdesk.api.deps import (
    CurrentUser,
    SessionDep,
    StateDep,
    TraderUser,
    own_or_admin,
    user_actor,
)
from quantdesk.api.types import NO_NUL
from quantdesk.auth.models import User
from quantdesk.auth.roles import Role
from quantdesk.core.orders import OrderStatus
from quantdesk.errors import AppError, ValidationFailed
from quantdesk.openapi import error_responses
from quantdesk.orders.batch import (
    MAX_BATCH,
    BatchIn,
    BatchOut,
    check_batch,
    results_of,
)
from quantdesk.orders.reasons import last_reason_of
from quantdesk.orders.schemas import (
    CURSOR,
    ORDER_ID,
    OrderDetailOut,
    OrderEventOut,
    OrderIn,
    OrderOut,
    OrderPageOut,
    OrderPatch,
    PositionOut,
    TradeOut,
    TradePageOut,
)
from quantdesk.orders.service import ModifyRequest, Oms, PlaceRequest
from quantdesk.risk.service import RiskGate

router = APIRouter(tags=["orders"])


class _OrderIdConvertor(Convertor[str]):
    """``{order_id:order_id}``: only an order id (32 hex digits) is routed to an order, so
    ``/orders/batch`` is never taken for one (``GET /orders/batch`` is a 405 naming POST, not
    a malformed id; a path that is no order id is a 404)."""

    regex = "[0-9a-f]{32}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("order_id", _OrderIdConvertor())


def get_oms(state: StateDep) -> Oms:
    rejections = state.metrics.risk_rejections
    return Oms(
        state.settings,
        quotes=state.extras.get("quote_cache"),
        bus=state.extras.get("bus"),
        risk=RiskGate(on_reject=lambda code: rejections.labels(code).inc()),
        clock=state.extras.get("clock"),
    )


OmsDep = Annotated[Oms, Depends(get_oms)]
OrderId = Annotated[str, Path(pattern=ORDER_ID, description="The order's id (32 hex digits)")]
Cursor = Annotated[
    str | None, Query(pattern=CURSOR, description="next_cursor of the previous page")
]
Limit = Annotated[int, Query(ge=1, le=500)]
Symbol = Annotated[str | None, Query(max_length=64, pattern=NO_NUL)]
OtherUserId = Annotated[
    int | None,
    Query(ge=1, le=2_147_483_647, description="Admin only: another user's (default: your own)"),
]


def _owner(user: User) -> int | None:
    """Whose orders ``user`` may touch by id: their own, or (admin) anyone's."""
    return None if user.role == Role.ADMIN else user.id


def _whose(user: User, user_id: int | None) -> int:
    return own_or_admin(user, user_id, code="ORDERS_OTHER_USER", what="orders, trades or positions")


@router.post(
    "/orders",
    response_model=OrderOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": OrderOut, "description": "client_order_id seen before: the original"},
        **error_responses(400, 401, 403, 409, 422, 429),
    },
    summary="Place an order (funds for its worst case are held until it fills or ends)",
    description="Errors: ORDER_BAD_QUANTITY, ORDER_BAD_PRICE, ORDER_PRICE_OFF_TICK, "
    "ORDER_OUTSIDE_BAND, ORDER_PRICE_MISSING, ORDER_PRICE_NOT_ALLOWED, ORDER_UNKNOWN_SYMBOL "
    "(422); ORDER_INSUFFICIENT_FUNDS, ORDER_INSUFFICIENT_HOLDINGS (CNC sell), "
    "ORDER_MARKET_CLOSED, ORDER_NO_MARKET_PRICE, ORDER_MIS_CUTOFF (409). Risk: "
    "RISK_MAX_ORDER_QUANTITY, RISK_MAX_ORDER_VALUE, RISK_FAT_FINGER, RISK_EXCHANGE_NOT_ALLOWED, "
    "RISK_PRODUCT_NOT_ALLOWED (422); RISK_MAX_POSITION_VALUE, RISK_MAX_GROSS_EXPOSURE, "
    "RISK_MAX_OPEN_ORDERS, RISK_KILL_SWITCH, RISK_ACCOUNT_HALTED (409); RISK_ORDER_RATE (429). "
    "A refused order is not stored.",
)
async def place_order(
    body: OrderIn,
    request: Request,
    response: Response,
    db: SessionDep,
    user: TraderUser,
    oms: OmsDep,
) -> OrderOut:
    placed = await oms.place(
        db,
        user.id,
        PlaceRequest(
            symbol=body.symbol,
            side=body.side,
            order_type=body.order_type,
            quantity=body.quantity,
            product=body.product,
            time_in_force=body.time_in_force,
            limit_price=body.limit_price,
            stop_price=body.stop_price,
            client_order_id=body.client_order_id,
        ),
        actor=user_actor(request, user),
    )
    if not placed.created:
        response.status_code = status.HTTP_200_OK
    reason = placed.reason if placed.created else await last_reason_of(db, placed.order.id)
    return OrderOut.of(placed.order, reason)


def _statuses(values: list[str]) -> list[OrderStatus]:
    """The ``status`` query values as statuses; an unknown one is a 422 that names it."""
    out = []
    for value in values:
        try:
            out.append(OrderStatus(value))
        except ValueError:
            allowed = [s.value for s in OrderStatus]
            raise ValidationFailed(
                f"Unknown order status {value[:32]!r}; use any of {', '.join(allowed)}.",
                code="ORDER_BAD_STATUS",
                details={"parameter": "status", "status": value[:32], "allowed": allowed},
            ) from None
    return out


@router.get(
    "/orders",
    response_model=OrderPageOut,
    responses=error_responses(401, 403, 422),
    summary="Your orders, newest first (cursor pagination)",
    description="Filter by one or more statuses by repeating the parameter "
    "(`?status=FILLED&status=CANCELLED`). Errors: ORDER_BAD_STATUS (422, an unknown status, "
    "named in the message and details).",
)
async def list_orders(
    db: SessionDep,
    user: CurrentUser,
    oms: OmsDep,
    status_: Annotated[
        list[str],
        Query(
            alias="status",
            default_factory=list,
            max_length=len(OrderStatus),
            description="Statuses to list (any of them); repeat for several. Default: all.",
            # Validated by _statuses (so an unknown value is named); documented as the enum.
            json_schema_extra={"items": {"$ref": "#/components/schemas/OrderStatus"}},
        ),
    ],
    symbol: Symbol = None,
    user_id: OtherUserId = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> OrderPageOut:
    rows, next_cursor = await oms.list_orders(
        db,
        _whose(user, user_id),
        statuses=_statuses(status_),
        symbol=symbol,
        cursor=cursor,
        limit=limit,
    )
    items = [OrderOut.of(row, reason) for row, reason in rows]
    return OrderPageOut(items=items, next_cursor=next_cursor)


@router.get(
    "/orders/{order_id:order_id}",
    response_model=OrderDetailOut,
    responses=error_responses(401, 403, 404, 422),
    summary="One order with its stored transitions",
)
async def get_order(
    order_id: OrderId, db: SessionDep, user: CurrentUser, oms: OmsDep
) -> OrderDetailOut:
    row = await oms.get(db, order_id, _owner(user))
    events = await oms.events(db, row.id)
    reason = events[-1].reason if events else None
    return OrderDetailOut(
        **OrderOut.of(row, reason).model_dump(), events=[OrderEventOut.of(e) for e in events]
    )


@router.patch(
    "/orders/{order_id:order_id}",
    response_model=OrderOut,
    responses=error_responses(400, 401, 403, 404, 409, 422),
    summary="Change a live order's quantity or prices (the hold follows exactly)",
    description="Errors: ORDER_NOTHING_TO_MODIFY, ORDER_BAD_QUANTITY, ORDER_BAD_PRICE, "
    "ORDER_PRICE_OFF_TICK, ORDER_OUTSIDE_BAND (422); ORDER_NOT_LIVE, "
    "ORDER_MODIFY_BELOW_FILLED, ORDER_INSUFFICIENT_FUNDS (409).",
)
async def modify_order(
    order_id: OrderId,
    body: OrderPatch,
    request: Request,
    db: SessionDep,
    user: TraderUser,
    oms: OmsDep,
) -> OrderOut:
    row = await oms.modify(
        db,
        order_id,
        ModifyRequest(body.quantity, body.limit_price, body.stop_price),
        owner_id=_owner(user),
        actor=user_actor(request, user),
    )
    return OrderOut.of(row, await last_reason_of(db, row.id))


@router.delete(
    "/orders/{order_id:order_id}",
    response_model=OrderOut,
    responses=error_responses(401, 403, 404, 409, 422),
    summary="Cancel a live order; what it still holds is released",
    description="Errors: ORDER_NOT_LIVE (409: already filled, cancelled, expired or rejected).",
)
async def cancel_order(
    order_id: OrderId, request: Request, db: SessionDep, user: TraderUser, oms: OmsDep
) -> OrderOut:
    row = await oms.cancel(db, order_id, owner_id=_owner(user), actor=user_actor(request, user))
    return OrderOut.of(row, await last_reason_of(db, row.id))


@router.get(
    "/trades",
    response_model=TradePageOut,
    responses=error_responses(401, 403, 422),
    summary="Your trades (fills), newest first (cursor pagination)",
)
async def list_trades(
    db: SessionDep,
    user: CurrentUser,
    oms: OmsDep,
    symbol: Symbol = None,
    order_id: Annotated[str | None, Query(pattern=ORDER_ID)] = None,
    user_id: OtherUserId = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> TradePageOut:
    rows, next_cursor = await oms.list_trades(
        db, _whose(user, user_id), symbol=symbol, order_id=order_id, cursor=cursor, limit=limit
    )
    return TradePageOut(items=[TradeOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/positions",
    response_model=list[PositionOut],
    responses=error_responses(401, 403, 422),
    summary="Your positions, marked to the latest quote",
    description="One per symbol and product (CNC delivery and MIS intraday apart). Average "
    "price and realised P&L from the fold of the trades; unrealised P&L at the latest quote (the "
    "instrument's last close without one); day P&L = today's change in value, the quantity "
    "carried in valued at the last close. P&L is gross of fees; margin is what an MIS position "
    "blocks; closed positions (quantity 0) stay listed with their realised P&L.",
)
async def list_positions(
    db: SessionDep, user: CurrentUser, oms: OmsDep, user_id: OtherUserId = None
) -> list[PositionOut]:
    views = await oms.positions(db, _whose(user, user_id))
    return [PositionOut.of(v.row, v.mark, v.day_pnl) for v in views]


@router.post(
    "/orders/batch",
    response_model=BatchOut,
    responses=error_responses(400, 401, 403, 422),
    summary=f"Place a basket of up to {MAX_BATCH} orders; one result per order, in order",
    description='`{"orders": [...]}`: each order as `POST /orders` takes it, with its own '
    "`client_order_id` (required; resubmitting the basket returns the originals) and, for an "
    "admin, an optional `user_id` (one account per batch). Each order is placed as `POST "
    "/orders` places it, one after the other (each sees the holds of those before it), all in "
    "one transaction; one order's rejection never blocks the rest: "
    "`results[i]` is the accepted order (`status: accepted`, `created` false for a client id "
    "seen before) or its rejection (`status: rejected`, `error.code` and `error.status` as "
    "`POST /orders` answers them; a rejected order is not stored and holds nothing). The batch "
    "is refused as a whole, placing nothing, with `details.index` naming the offending order: "
    "ORDER_BATCH_TOO_LARGE, ORDER_BATCH_DUPLICATE_CLIENT_ID, ORDER_BATCH_MIXED_OWNERS, "
    "ORDER_BATCH_EMPTY (422), ORDERS_OTHER_USER (403: a trader's batch for another account); "
    "a missing client_order_id or a malformed order is VALIDATION_ERROR (422) with its location.",
)
async def place_batch(
    body: BatchIn,
    request: Request,
    db: SessionDep,
    user: TraderUser,
    oms: OmsDep,
) -> BatchOut:
    owner = check_batch(body, user.id, user.role == Role.ADMIN)
    actor = user_actor(request, user)

    requests = [
        PlaceRequest(
            symbol=order.symbol,
            side=order.side,
            order_type=order.order_type,
            quantity=order.quantity,
            product=order.product,
            time_in_force=order.time_in_force,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            client_order_id=order.client_order_id,
        )
        for order in body.orders
    ]
    placed = await oms.place_many(db, owner, requests, actor=actor)
    outcomes: list[tuple[OrderOut, bool] | AppError] = []
    for p in placed:
        if isinstance(p, AppError):
            outcomes.append(p)
        else:
            reason = p.reason if p.created else await last_reason_of(db, p.order.id)
            outcomes.append((OrderOut.of(p.order, reason), p.created))
    return results_of(body.orders, outcomes)
