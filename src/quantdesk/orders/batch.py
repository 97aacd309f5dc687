"""Baskets: ``POST /api/v1/orders/batch`` places up to 100 orders in one request.

The batch as a whole is checked first and refused with one 4xx naming the offending index when
it is malformed: more than :data:`MAX_BATCH` orders, an order without a ``client_order_id`` or
two with the same one (each order is idempotent on its own id, so a retried basket places
nothing twice), orders for more than one account, or an order breaking what the schema says of
every order (a quantity out of range: ORDER_BAD_QUANTITY; a price that is no positive plain
decimal: ORDER_BAD_PRICE). Nothing is placed then.

A well-formed batch is placed order by order, in the order given, each exactly as
``POST /orders`` places it (its own transaction: funds held, risk gate under the account lock,
audited, published). One order's rejection never blocks the rest: the answer lists, in the
same order, each accepted order (``created`` false when its client id was seen before) or its
rejection with the code and message ``POST /orders`` would have answered. A rejected order is
not stored and holds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from quantdesk.errors import AppError, Forbidden, ValidationFailed
from quantdesk.orders.schemas import CLIENT_ORDER_ID, OrderIn, OrderOut
from quantdesk.orders.service import check_quantity, parse_price

__all__ = [
    "MAX_BATCH",
    "BatchIn",
    "BatchOrderIn",
    "BatchOut",
    "BatchResultOut",
    "RejectionOut",
    "check_batch",
]

MAX_BATCH = 100


class BatchOrderIn(OrderIn):
    """One order of a basket: an order as ``POST /orders`` takes it, its ``client_order_id``
    required; ``user_id`` (optional, admin only) places it for another account."""

    model_config = ConfigDict(extra="forbid")

    client_order_id: str = Field(  # required in a batch
        pattern=CLIENT_ORDER_ID,
        description="Your id for the order, unique in the batch and per account: resubmitting "
        "the basket returns the original orders instead of placing them again.",
    )
    user_id: Annotated[int | None, Field(ge=1, le=2_147_483_647)] = Field(
        default=None, description="Admin only: the account to place for (default: your own)"
    )


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The length is checked by check_batch, so the refusal names the index over the limit.
    orders: list[BatchOrderIn] = Field(
        description=f"1 to {MAX_BATCH} orders, placed in this order",
        json_schema_extra={"minItems": 1, "maxItems": MAX_BATCH},
    )


class RejectionOut(BaseModel):
    code: str = Field(description="As POST /orders answers it: ORDER_INSUFFICIENT_FUNDS, ...")
    message: str
    status: int = Field(description="The HTTP status POST /orders would have answered")
    details: object | None = None


class BatchResultOut(BaseModel):
    index: int = Field(description="The order's position in the request")
    client_order_id: str
    status: Literal["accepted", "rejected"]
    created: bool = Field(
        description="Accepted: false when the client_order_id was seen before (the original)"
    )
    order: OrderOut | None = Field(description="The accepted order")
    error: RejectionOut | None = Field(description="Why the order was refused")


class BatchOut(BaseModel):
    results: list[BatchResultOut] = Field(description="One per order, in the request's order")
    accepted: int
    rejected: int


def _bad(message: str, code: str, index: int, **details: object) -> ValidationFailed:
    return ValidationFailed(message, code=code, details={"index": index, **details})


def check_batch(body: BatchIn, caller_id: int, caller_is_admin: bool) -> int:
    """The account the batch is for, or the batch's refusal naming the offending index."""
    orders = body.orders
    if not orders:
        raise _bad("The batch has no orders.", "ORDER_BATCH_EMPTY", 0)
    if len(orders) > MAX_BATCH:
        raise _bad(
            f"A batch holds at most {MAX_BATCH} orders; this one has {len(orders)}.",
            "ORDER_BATCH_TOO_LARGE",
            MAX_BATCH,
            limit=MAX_BATCH,
            count=len(orders),
        )
    seen: dict[str, int] = {}
    for i, order in enumerate(orders):
        first = seen.setdefault(order.client_order_id, i)
        if first != i:
            raise _bad(
                f"Orders {first} and {i} share the client_order_id {order.client_order_id!r}.",
                "ORDER_BATCH_DUPLICATE_CLIENT_ID",
                i,
                first_index=first,
                client_order_id=order.client_order_id,
            )
    for i, order in enumerate(orders):
        # What the schema documents for every order (ORDER_BAD_QUANTITY, ORDER_BAD_PRICE) makes
        # the batch malformed; what depends on the market and the account is per order.
        try:
            check_quantity(order.quantity)
            parse_price(order.limit_price, "limit_price")
            parse_price(order.stop_price, "stop_price")
        except ValidationFailed as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            raise _bad(f"Order {i}: {exc.message}", exc.code, i, **details) from None
    owner = orders[0].user_id or caller_id
    for i, order in enumerate(orders):
        if (order.user_id or caller_id) != owner:
            raise _bad(
                f"Order {i} is for another account than order 0: a batch is for one account.",
                "ORDER_BATCH_MIXED_OWNERS",
                i,
            )
    if owner != caller_id and not caller_is_admin:
        raise Forbidden(
            "Only an admin places orders for another account.",
            code="ORDERS_OTHER_USER",
            details={"index": 0},
        )
    return owner


def results_of(
    orders: Sequence[BatchOrderIn], outcomes: Sequence[tuple[OrderOut, bool] | AppError]
) -> BatchOut:
    """The batch's answer: per order (in order) the accepted order and whether it was created
    now, or its refusal (an :class:`AppError`) as a rejection."""
    results: list[BatchResultOut] = []
    for index, (order, outcome) in enumerate(zip(orders, outcomes, strict=True)):
        if isinstance(outcome, AppError):
            error = RejectionOut(
                code=outcome.code,
                message=outcome.message,
                status=outcome.status_code,
                details=outcome.details,
            )
            results.append(
                BatchResultOut(
                    index=index,
                    client_order_id=order.client_order_id,
                    status="rejected",
                    created=False,
                    order=None,
                    error=error,
                )
            )
            continue
        out, created = outcome
        results.append(
            BatchResultOut(
                index=index,
                client_order_id=order.client_order_id,
                status="accepted",
                created=created,
                order=out,
                error=None,
            )
        )
    accepted = sum(r.status == "accepted" for r in results)
    return BatchOut(results=results, accepted=accepted, rejected=len(results) - accepted)
