"""Admin endpoints: user management and the audit trail (/api/v1/admin/*)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from quantdesk.api.deps import AdminUser, SessionDep, SettingsDep, user_actor
from quantdesk.api.types import NO_NUL, IsoDateTime
from quantdesk.auth import users
from quantdesk.auth.schemas import UserCreate, UserOut, UserPage, UserUpdate
from quantdesk.observability import audit_queries
from quantdesk.observability.audit_queries import AuditPage
from quantdesk.openapi import error_responses

router = APIRouter(prefix="/admin", tags=["admin"])

# Ids are INTEGER columns: an id out of range must be a 422, not a database error (500).
UserId = Annotated[int, Path(ge=1, le=2_147_483_647)]


@router.get("/users", response_model=UserPage, responses=error_responses(401, 403))
async def list_users(
    db: SessionDep,
    _admin: AdminUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> UserPage:
    rows, total = await users.list_users(db, limit=limit, offset=offset)
    return UserPage(items=[UserOut.model_validate(u) for u in rows], total=total)


@router.post(
    "/users",
    response_model=UserOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 409, 422),
)
async def create_user(
    body: UserCreate, request: Request, db: SessionDep, admin: AdminUser, settings: SettingsDep
) -> UserOut:
    user = await users.create_user(
        db,
        user_actor(request, admin),
        username=body.username,
        password=body.password,
        role=body.role,
        bcrypt_rounds=settings.bcrypt_rounds,
    )
    return UserOut.model_validate(user)


@router.get("/users/{user_id}", response_model=UserOut, responses=error_responses(401, 403, 404))
async def get_user(user_id: UserId, db: SessionDep, _admin: AdminUser) -> UserOut:
    return UserOut.model_validate(await users.get_user(db, user_id))


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    responses=error_responses(400, 401, 403, 404, 409, 422),
    summary="Change a user's role, active flag or password (disabling ends their sessions)",
)
async def update_user(
    user_id: UserId,
    body: UserUpdate,
    request: Request,
    db: SessionDep,
    admin: AdminUser,
    settings: SettingsDep,
) -> UserOut:
    user = await users.update_user(
        db,
        user_actor(request, admin),
        user_id,
        role=body.role,
        is_active=body.is_active,
        password=body.password,
        bcrypt_rounds=settings.bcrypt_rounds,
    )
    return UserOut.model_validate(user)


@router.get(
    "/audit",
    response_model=AuditPage,
    responses=error_responses(401, 403, 422),
    summary="The audit trail, newest first, with filters and cursor pagination",
)
async def list_audit(
    db: SessionDep,
    _admin: AdminUser,
    actor_id: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
    action: Annotated[
        str | None,
        Query(max_length=64, pattern=NO_NUL, description="Exact, or a prefix ending in '.'"),
    ] = None,
    target_type: Annotated[str | None, Query(max_length=32, pattern=NO_NUL)] = None,
    target_id: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
    cursor: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditPage:
    return await audit_queries.search(
        db,
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
