"""Admin endpoints for broker accounts (/api/v1/admin/broker-accounts). Admins only."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status

from quantdesk.api.deps import AdminUser, SessionDep, SettingsDep, user_actor
from quantdesk.brokers import service
from quantdesk.brokers.accounts import BrokerAccountRow, live_allowed, mask_key
from quantdesk.brokers.schemas import (
    BrokerAccountCreate,
    BrokerAccountOut,
    BrokerAccountPage,
    BrokerAccountUpdate,
)
from quantdesk.openapi import error_responses
from quantdesk.settings import Settings

router = APIRouter(prefix="/admin/broker-accounts", tags=["admin", "brokers"])

AccountId = Annotated[int, Path(ge=1, le=2_147_483_647)]


def account_out(row: BrokerAccountRow, settings: Settings) -> BrokerAccountOut:
    return BrokerAccountOut(
        id=row.id,
        user_id=row.user_id,
        broker=row.broker,  # the table's CHECK keeps it one of the three
        broker_user_id=row.broker_user_id,
        label=row.label,
        api_key_masked=mask_key(row.api_key),
        has_secret=row.has_secret,
        secret_store=row.secret_store,
        live_enabled=row.live_enabled,
        live_allowed=live_allowed(row, settings),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("", response_model=BrokerAccountPage, responses=error_responses(401, 403, 422))
async def list_broker_accounts(
    db: SessionDep,
    _admin: AdminUser,
    settings: SettingsDep,
    user_id: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
    broker: Literal["kite", "upstox", "ib"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> BrokerAccountPage:
    rows, total = await service.list_accounts(
        db, user_id=user_id, broker=broker, limit=limit, offset=offset
    )
    return BrokerAccountPage(
        items=[account_out(r, settings) for r in rows], total=total, paper_only=settings.paper_only
    )


@router.post(
    "",
    response_model=BrokerAccountOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 409, 422, 503),
    summary="Connect a user's broker account (its secret is stored encrypted or in Vault)",
)
async def create_broker_account(
    body: BrokerAccountCreate,
    request: Request,
    db: SessionDep,
    admin: AdminUser,
    settings: SettingsDep,
) -> BrokerAccountOut:
    row = await service.create_account(
        db,
        settings,
        user_actor(request, admin),
        service.NewAccount(
            user_id=body.user_id,
            broker=body.broker,
            broker_user_id=body.broker_user_id,
            api_key=body.api_key,
            api_secret=body.api_secret,
            label=body.label,
        ),
    )
    return account_out(row, settings)


@router.get(
    "/{account_id}", response_model=BrokerAccountOut, responses=error_responses(401, 403, 404, 422)
)
async def get_broker_account(
    account_id: AccountId, db: SessionDep, _admin: AdminUser, settings: SettingsDep
) -> BrokerAccountOut:
    return account_out(await service.get_account(db, account_id), settings)


@router.patch(
    "/{account_id}",
    response_model=BrokerAccountOut,
    responses=error_responses(400, 401, 403, 404, 409, 422, 503),
    summary="Change a broker account: label, ids, rotate the secret, enable or disable live",
)
async def update_broker_account(
    account_id: AccountId,
    body: BrokerAccountUpdate,
    request: Request,
    db: SessionDep,
    admin: AdminUser,
    settings: SettingsDep,
) -> BrokerAccountOut:
    row = await service.update_account(
        db,
        settings,
        user_actor(request, admin),
        account_id,
        service.AccountChange(
            label=body.label,
            clear_label="label" in body.model_fields_set and body.label is None,
            broker_user_id=body.broker_user_id,
            api_key=body.api_key,
            api_secret=body.api_secret,
            live_enabled=body.live_enabled,
        ),
    )
    return account_out(row, settings)


@router.delete(
    "/{account_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422),
    summary="Remove a broker account and its secrets",
)
async def delete_broker_account(
    account_id: AccountId,
    request: Request,
    db: SessionDep,
    admin: AdminUser,
    settings: SettingsDep,
) -> Response:
    await service.delete_account(db, settings, user_actor(request, admin), account_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
