"""Wallet endpoints: admin deposits and withdrawals, the caller's wallet and ledger."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Path, Query, Request, status

from quantdesk.api.deps import AdminUser, CurrentUser, SessionDep, own_or_admin, user_actor
from quantdesk.api.types import IsoDateTime
from quantdesk.auth.models import User
from quantdesk.auth.users import get_user
from quantdesk.core.ledger import EntryKind, WalletBalance
from quantdesk.openapi import error_responses
from quantdesk.stream.hub import user_channel
from quantdesk.wallet import service
from quantdesk.wallet.schemas import EntryOut, LedgerPageOut, MovementIn, MovementOut, WalletOut

log = structlog.get_logger("quantdesk.wallet")
router = APIRouter(tags=["wallet"])

_INT_ID = {"ge": 1, "le": 2_147_483_647}
UserId = Annotated[int, Path(**_INT_ID)]
OtherUserId = Annotated[
    int | None,
    Query(**_INT_ID, description="Admin only: another user's (default: your own)"),
]

_MOVE_ERRORS = error_responses(400, 401, 403, 404, 409, 422)
_MOVE_HELP = "Admin only, audited. Errors: `WALLET_BAD_AMOUNT` (422), `USER_NOT_FOUND` (404)"


async def _publish(request: Request, user_id: int, wallet: dict[str, WalletBalance]) -> None:
    """Best effort: the change is committed; a bus hiccup must not turn it into an error."""
    try:
        bus = request.app.state.qd.extras.get("bus")
        if bus is None:
            return
        body = WalletOut.of(user_id, wallet).model_dump(mode="json")
        await bus.publish(user_channel(user_id, "wallet"), {"type": "wallet", **body})
    except Exception as exc:  # any bus failure: logged, never raised
        log.warning("wallet_publish_failed", user_id=user_id, error=repr(exc))


@router.post(
    "/admin/users/{user_id}/deposits",
    response_model=MovementOut,
    status_code=status.HTTP_201_CREATED,
    responses=_MOVE_ERRORS,
    summary="Add funds to a user's wallet (external -> cash)",
    description=_MOVE_HELP + ".",
)
async def create_deposit(
    user_id: UserId, body: MovementIn, request: Request, db: SessionDep, admin: AdminUser
) -> MovementOut:
    moved = await service.deposit(
        db, user_actor(request, admin), user_id, body.amount, body.currency, body.note
    )
    await _publish(request, user_id, moved.wallet)
    return MovementOut.of(moved)


@router.post(
    "/admin/users/{user_id}/withdrawals",
    response_model=MovementOut,
    status_code=status.HTTP_201_CREATED,
    responses=_MOVE_ERRORS,
    summary="Pay funds out of a user's available cash (cash -> external)",
    description=_MOVE_HELP
    + ", `WALLET_INSUFFICIENT_FUNDS` (409: more than is available; nothing is written).",
)
async def create_withdrawal(
    user_id: UserId, body: MovementIn, request: Request, db: SessionDep, admin: AdminUser
) -> MovementOut:
    moved = await service.withdraw(
        db, user_actor(request, admin), user_id, body.amount, body.currency, body.note
    )
    await _publish(request, user_id, moved.wallet)
    return MovementOut.of(moved)


async def _whose(db: SessionDep, user: User, user_id: int | None) -> int:
    uid = own_or_admin(user, user_id, code="WALLET_OTHER_USER", what="wallet")
    if uid != user.id:
        await get_user(db, uid)  # USER_NOT_FOUND (404)
    return uid


@router.get(
    "/wallet",
    response_model=WalletOut,
    responses=error_responses(401, 403, 404, 422),
    summary="Available, held and total cash per currency",
)
async def get_wallet(db: SessionDep, user: CurrentUser, user_id: OtherUserId = None) -> WalletOut:
    uid = await _whose(db, user, user_id)
    return WalletOut.of(uid, await service.wallet(db, uid))


@router.get(
    "/wallet/ledger",
    response_model=LedgerPageOut,
    responses=error_responses(401, 403, 404, 422),
    summary="Journal entries touching the wallet, newest first, with their postings",
    description="Cursor pagination: pass `next_cursor` as `cursor`. `since` is inclusive, "
    "`until` exclusive (RFC 3339 date-times with a time zone).",
)
async def get_ledger(
    db: SessionDep,
    user: CurrentUser,
    user_id: OtherUserId = None,
    kind: EntryKind | None = None,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
    cursor: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> LedgerPageOut:
    uid = await _whose(db, user, user_id)
    page = await service.ledger(
        db,
        uid,
        kind=kind.value if kind else None,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
    return LedgerPageOut(items=[EntryOut.of(e) for e in page.items], next_cursor=page.next_cursor)
