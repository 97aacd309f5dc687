"""HTTP endpoints of authentication: /api/v1/auth/*."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from quantdesk.api.deps import (
    AnonymousActor,
    ClaimsDep,
    CurrentUser,
    SessionDep,
    StateDep,
    user_actor,
)
from quantdesk.auth import service
from quantdesk.auth.schemas import LoginRequest, RefreshRequest, TokenPair, UserOut
from quantdesk.errors import AppError
from quantdesk.openapi import error_responses

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/login",
    response_model=TokenPair,
    responses=error_responses(400, 401, 422, 429),
    summary="Exchange a username and password for an access and a refresh token",
)
async def login(
    body: LoginRequest, request: Request, db: SessionDep, state: StateDep, actor: AnonymousActor
) -> TokenPair:
    try:
        pair = await service.login(
            db, state.auth, actor, body.username, body.password, request.headers.get("user-agent")
        )
    except AppError as exc:
        state.metrics.logins.labels(exc.code.lower()).inc()
        raise
    state.metrics.logins.labels("success").inc()
    return pair


@router.post(
    "/refresh",
    response_model=TokenPair,
    responses=error_responses(400, 401, 422),
    summary="Rotate a refresh token: returns a new pair; the old refresh token is spent",
)
async def refresh(
    body: RefreshRequest, db: SessionDep, state: StateDep, actor: AnonymousActor
) -> TokenPair:
    return await service.refresh(db, state.auth, actor, body.refresh_token)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401),
    summary="End this session: its refresh tokens and access tokens stop working",
)
async def logout(
    request: Request, db: SessionDep, user: CurrentUser, claims: ClaimsDep
) -> Response:
    await service.logout(db, user_actor(request, user), claims)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/me", response_model=UserOut, responses=error_responses(401), summary="The current user"
)
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)
