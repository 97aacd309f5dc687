"""HTTP endpoints of authentication: /api/v1/auth/*.

Two forms of the same session: scripts keep both tokens from the JSON bodies; the web UI keeps
the refresh token in the HttpOnly ``qd_refresh`` cookie and proves each cookie refresh with
the ``X-CSRF-Token`` header (see cookies.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Header, Request, Response, status

from quantdesk.api.deps import (
    AnonymousActor,
    ClaimsDep,
    CurrentUser,
    SessionDep,
    StateDep,
    user_actor,
)
from quantdesk.api.errors import envelope
from quantdesk.auth import cookies, service
from quantdesk.auth.schemas import LoginRequest, RefreshRequest, TokenPair, UserOut
from quantdesk.errors import AppError, NotAuthenticated, ValidationFailed
from quantdesk.openapi import error_responses

router = APIRouter(prefix="/auth", tags=["auth"])

_SET_COOKIE: dict[str, Any] = {
    "Set-Cookie": {
        "description": f"`{cookies.REFRESH_COOKIE}` (the refresh token; HttpOnly; Secure; "
        f"SameSite=Strict; Path={cookies.REFRESH_PATH}; Max-Age = the refresh token's "
        f"remaining lifetime) and `{cookies.CSRF_COOKIE}` (the session's CSRF token; readable "
        "by the page; Secure; SameSite=Strict; Path=/).",
        "schema": {"type": "string"},
    }
}
_CSRF_403 = (
    "CSRF check of a refresh by cookie failed, nothing changed: `AUTH_CSRF_MISSING` (no "
    f"`{cookies.CSRF_HEADER}` header), `AUTH_CSRF_INVALID` (it differs from the "
    f"`{cookies.CSRF_COOKIE}` cookie or is not this session's), `AUTH_CSRF_ORIGIN` (Origin or "
    "Referer is another site)"
)


_REFRESH_RESPONSES = error_responses(400, 401, 403, 422)
_REFRESH_RESPONSES[200] = {"headers": _SET_COOKIE}
_REFRESH_RESPONSES[403] = {**_REFRESH_RESPONSES[403], "description": _CSRF_403}
_REFRESH_RESPONSES[422] = {
    **_REFRESH_RESPONSES[422],
    "description": "Validation failed, or neither a body nor the "
    f"`{cookies.REFRESH_COOKIE}` cookie was sent (`AUTH_REFRESH_TOKEN_MISSING`)",
}


@router.post(
    "/login",
    response_model=TokenPair,
    responses={**error_responses(400, 401, 422, 429), 200: {"headers": _SET_COOKIE}},
    summary="Exchange a username and password for an access and a refresh token",
    description="Returns the tokens in the body and also sets the session cookies the web UI "
    f"uses (`{cookies.REFRESH_COOKIE}`, `{cookies.CSRF_COOKIE}`). With "
    "`refresh_token_in_body: false` the body's `refresh_token` is null: the refresh token is "
    "then only in the HttpOnly cookie.",
)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    db: SessionDep,
    state: StateDep,
    actor: AnonymousActor,
) -> TokenPair:
    try:
        issued = await service.login(
            db, state.auth, actor, body.username, body.password, request.headers.get("user-agent")
        )
    except AppError as exc:
        state.metrics.logins.labels(exc.code.lower()).inc()
        raise
    state.metrics.logins.labels("success").inc()
    cookies.set_session_cookies(
        response,
        issued.refresh_token,
        issued.csrf_token,
        issued.refresh_expires_at,
        issued.issued_at,
    )
    return issued.body(with_refresh_token=body.refresh_token_in_body)


@router.post(
    "/refresh",
    response_model=TokenPair,
    responses=_REFRESH_RESPONSES,
    summary="Rotate a refresh token: returns a new pair; the old refresh token is spent",
    description='Two forms. **Body** (scripts): `{"refresh_token"}`; the new pair comes back '
    "in the body, no cookie is set and no CSRF token is needed. **Cookie** (the web UI): no "
    f"body; the refresh token is read from the `{cookies.REFRESH_COOKIE}` cookie and the "
    f"request must carry `{cookies.CSRF_HEADER}` equal to the `{cookies.CSRF_COOKIE}` cookie; "
    "an Origin or Referer header, when present, must name this host. The rotated refresh "
    "token goes back only in the cookie (the body's `refresh_token` is null). Either way a "
    "refresh token works once: presenting a spent one revokes the session "
    "(`AUTH_REFRESH_REUSED`). A refused refresh by cookie (401) deletes the cookies.",
)
async def refresh(
    request: Request,
    response: Response,
    db: SessionDep,
    state: StateDep,
    actor: AnonymousActor,
    body: RefreshRequest | None = None,
    refresh_cookie: Annotated[
        str | None,
        Cookie(
            alias=cookies.REFRESH_COOKIE,
            max_length=256,
            description="The refresh token, set by login (the web UI's form).",
        ),
    ] = None,
    csrf_header: Annotated[
        str | None,
        Header(
            alias=cookies.CSRF_HEADER,
            max_length=256,
            description=f"Required with the cookie form: the value of the `{cookies.CSRF_COOKIE}` "
            "cookie.",
        ),
    ] = None,
) -> TokenPair | Response:
    if body is not None:
        return (await service.refresh(db, state.auth, actor, body.refresh_token)).body()
    if not refresh_cookie:
        raise ValidationFailed(
            'Send the refresh token in the body ({"refresh_token": ...}) or in the '
            f"{cookies.REFRESH_COOKIE} cookie.",
            code="AUTH_REFRESH_TOKEN_MISSING",
        )
    cookies.check_origin(request, state.settings.trusted_origins)
    csrf = cookies.presented_csrf(request, csrf_header)
    try:
        issued = await service.refresh(db, state.auth, actor, refresh_cookie, csrf)
    except NotAuthenticated as exc:
        # A dead cookie is deleted, so the browser stops presenting it on every page load.
        refused = envelope(exc.status_code, exc.code, exc.message, exc.details, exc.headers)
        cookies.clear_session_cookies(refused)
        return refused
    cookies.set_session_cookies(
        response,
        issued.refresh_token,
        issued.csrf_token,
        issued.refresh_expires_at,
        issued.issued_at,
    )
    return issued.body(with_refresh_token=False)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        **error_responses(401),
        204: {
            "description": "Session ended",
            "headers": {
                "Set-Cookie": {
                    "description": f"Deletes `{cookies.REFRESH_COOKIE}` and "
                    f"`{cookies.CSRF_COOKIE}` (Max-Age=0).",
                    "schema": {"type": "string"},
                }
            },
        },
    },
    summary="End this session: its refresh tokens and access tokens stop working",
    description="Authenticated by the access token (a bearer header cannot be forged by "
    "another site, so no CSRF token is needed). Also deletes the session cookies "
    f"(`{cookies.REFRESH_COOKIE}`, `{cookies.CSRF_COOKIE}`).",
)
async def logout(
    request: Request, db: SessionDep, user: CurrentUser, claims: ClaimsDep
) -> Response:
    await service.logout(db, user_actor(request, user), claims)
    done = Response(status_code=status.HTTP_204_NO_CONTENT)
    cookies.clear_session_cookies(done)
    return done


@router.get(
    "/me", response_model=UserOut, responses=error_responses(401), summary="The current user"
)
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)
