"""Dependencies as ``Annotated`` aliases, so handlers stay short and every route's access
rule is declared in its signature (and visible to the authorization-matrix test)."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.utils import get_flat_dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from quantdesk.api.state import AppState
from quantdesk.auth import service as auth_service
from quantdesk.auth.models import User
from quantdesk.auth.roles import Role
from quantdesk.auth.security import AccessClaims, TokenError, decode_access_token
from quantdesk.errors import Forbidden, NotAuthenticated, ValidationFailed
from quantdesk.observability.audit import Actor
from quantdesk.settings import Settings


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.qd
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings_dep(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_db(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_db)]

_bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/v1/auth/login")


def get_claims(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AccessClaims:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated(code="AUTH_MISSING_TOKEN")
    s = state.settings
    try:
        return decode_access_token(
            credentials.credentials, key=s.jwt_key, algorithm=s.jwt_algorithm, issuer=s.jwt_issuer
        )
    except TokenError as exc:
        code = "AUTH_TOKEN_EXPIRED" if "expired" in str(exc) else "AUTH_INVALID_TOKEN"
        raise NotAuthenticated(str(exc), code=code) from exc


ClaimsDep = Annotated[AccessClaims, Depends(get_claims)]


async def get_current_user(request: Request, db: SessionDep, claims: ClaimsDep) -> User:
    user = await auth_service.resolve_user(db, claims)
    request.state.user_id = user.id
    return user


class RoleGuard:
    """Admits the listed roles. Routes declare access only through these guards.

    (This module avoids ``from __future__ import annotations``: FastAPI resolves a callable
    instance's annotations without its module globals, so they must be real objects.)"""

    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset(roles)

    async def __call__(self, user: Annotated[User, Depends(get_current_user)]) -> User:
        if user.role not in self.roles:
            raise Forbidden(
                "Your role does not allow this.",
                code="FORBIDDEN_ROLE",
                details={"role": user.role, "allowed": sorted(self.roles)},
            )
        return user

    def __repr__(self) -> str:
        return f"RoleGuard({', '.join(sorted(self.roles))})"


require_any_role = RoleGuard(Role.ADMIN, Role.TRADER, Role.VIEWER)
require_trader = RoleGuard(Role.ADMIN, Role.TRADER)
require_admin = RoleGuard(Role.ADMIN)

CurrentUser = Annotated[User, Depends(require_any_role)]
TraderUser = Annotated[User, Depends(require_trader)]
AdminUser = Annotated[User, Depends(require_admin)]


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def anonymous_actor(request: Request) -> Actor:
    return Actor(None, None, _client_ip(request), getattr(request.state, "request_id", None))


def user_actor(request: Request, user: User) -> Actor:
    return Actor(
        user.id, user.username, _client_ip(request), getattr(request.state, "request_id", None)
    )


AnonymousActor = Annotated[Actor, Depends(anonymous_actor)]


def _declared_query(route: APIRoute) -> frozenset[str]:
    # Cached on the route object itself (routes are unhashable; an id() could be reused).
    names: frozenset[str] | None = getattr(route, "_qd_query_names", None)
    if names is None:
        flat = get_flat_dependant(route.dependant)
        names = frozenset(p.alias for p in flat.query_params)
        route._qd_query_names = names  # type: ignore[attr-defined]
    return names


def reject_unknown_query(request: HTTPConnection) -> None:
    """Unknown query parameters are an error, like unknown body fields: a typo (``?limt=5``)
    must not silently return the default."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params) - _declared_query(route))
    if unknown:
        raise ValidationFailed(
            f"Unknown query parameter(s): {', '.join(unknown)}.",
            code="UNKNOWN_QUERY_PARAMETER",
            details={"unknown": unknown, "allowed": sorted(_declared_query(route))},
        )


def own_or_admin(user: User, user_id: int | None, *, code: str, what: str) -> int:
    """The account a request is about: the caller's own (``user_id`` None or theirs), or, for
    an admin only, another one (else 403 with ``code``: "Only an admin may see another user's
    {what}.")."""
    if user_id is None or user_id == user.id:
        return user.id
    if user.role != Role.ADMIN:
        raise Forbidden(
            f"Only an admin may see another user's {what}.",
            code=code,
            details={"user_id": user_id},
        )
    return user_id
