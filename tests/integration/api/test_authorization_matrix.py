"""The authorization matrix, generated from the app's own route table.

Every method of every HTTP route is exercised with every identity below. A route's access rule
is the ``RoleGuard`` found in its dependency tree; a route without one must be on the PUBLIC
allow-list, so a new endpoint cannot ship without a guard or an explicit decision that it is
public. Non-valid identities get 401 (with ``WWW-Authenticate: Bearer``), roles outside the
guard get 403 ``FORBIDDEN_ROLE``, allowed roles get past the guard (a 404/422 for a body-less
request is fine), and nothing answers 5xx.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from apisafety import Minter
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Route

from quantdesk.api import create_app
from quantdesk.api.deps import RoleGuard
from quantdesk.auth.models import User
from quantdesk.auth.roles import Role
from quantdesk.settings import Settings

# Routes that are deliberately reachable without a token. Everything else needs a RoleGuard.
PUBLIC = frozenset(
    {
        "POST /api/v1/auth/login",
        "POST /api/v1/auth/refresh",
        "GET /api/v1/openapi.json",
        "HEAD /api/v1/openapi.json",
        "GET /api/v1/docs",
        "HEAD /api/v1/docs",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    }
)

ROLES = (Role.VIEWER, Role.TRADER, Role.ADMIN)
# Identity -> the 401 code it must get on a guarded route.
INVALID = {
    "anonymous": "AUTH_MISSING_TOKEN",
    "expired token": "AUTH_TOKEN_EXPIRED",
    "tampered token": "AUTH_INVALID_TOKEN",
    "alg=none token": "AUTH_INVALID_TOKEN",
    "token signed with another key": "AUTH_INVALID_TOKEN",
    "disabled user": "AUTH_USER_DISABLED",
    "refresh token as bearer": "AUTH_INVALID_TOKEN",
}
IDENTITIES = tuple(r.value for r in ROLES) + tuple(INVALID)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    allowed: frozenset[str] | None  # None: no RoleGuard anywhere in the dependency tree
    path_params: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def _guards(dependant: Dependant) -> list[RoleGuard]:
    found: list[RoleGuard] = []
    for dep in dependant.dependencies:
        if isinstance(dep.call, RoleGuard):
            found.append(dep.call)
        found.extend(_guards(dep))
    return found


def endpoints(application: FastAPI) -> list[Endpoint]:
    out: list[Endpoint] = []
    for route in application.routes:
        # Mounts (static files) and WebSocket routes have no HTTP methods of their own.
        if not isinstance(route, Route) or not route.methods:
            continue
        allowed: frozenset[str] | None = None
        if isinstance(route, APIRoute):
            guards = _guards(route.dependant)
            if guards:
                # Several guards on one route must all admit the role.
                allowed = frozenset.intersection(*(frozenset(g.roles) for g in guards))
        params = tuple(route.param_convertors)
        out.extend(Endpoint(m, route.path_format, allowed, params) for m in sorted(route.methods))
    return out


def _route_table() -> list[Endpoint]:
    # Only the route table is read: no lifespan, no database connection.
    settings = Settings(
        database_url="sqlite+aiosqlite:///:memory:",
        jwt_secret="route-table-only-" + "x" * 32,
        ui_dir=Path("/nonexistent-ui"),
        redis_url=None,
    )
    return endpoints(create_app(settings))


ENDPOINTS = _route_table()
MATRIX = [
    pytest.param(ep, identity, id=f"{ep.key} x {identity}")
    for ep in ENDPOINTS
    for identity in IDENTITIES
]


def _unguarded(eps: list[Endpoint]) -> list[str]:
    return sorted(ep.key for ep in eps if ep.allowed is None and ep.key not in PUBLIC)


# --- the route table itself -----------------------------------------------------------------


def test_every_route_declares_a_role_guard_or_is_on_the_public_list() -> None:
    missing = _unguarded(ENDPOINTS)
    assert not missing, (
        f"routes without a RoleGuard that are not on the PUBLIC list: {missing}. "
        "Add a guard (CurrentUser/TraderUser/AdminUser) or, if public on purpose, list it."
    )


def test_public_list_names_only_existing_unguarded_routes() -> None:
    by_key = {ep.key: ep for ep in ENDPOINTS}
    stale = sorted(k for k in PUBLIC if k not in by_key)
    guarded = sorted(k for k in PUBLIC if k in by_key and by_key[k].allowed is not None)
    assert not stale, f"PUBLIC entries with no such route: {stale}"
    assert not guarded, f"PUBLIC entries that are guarded (remove them from the list): {guarded}"


def test_guard_discovery_reads_the_declared_roles() -> None:
    by_key = {ep.key: ep for ep in ENDPOINTS}
    assert by_key["GET /api/v1/admin/users"].allowed == {"admin"}
    assert by_key["GET /api/v1/auth/me"].allowed == {"admin", "trader", "viewer"}


def test_api_routes_are_all_in_the_matrix() -> None:
    api = [ep for ep in ENDPOINTS if ep.path.startswith("/api/v1/")]
    assert len(api) >= 9  # auth (4) + admin (5) at least; grows as domains are added
    assert len(MATRIX) == len(ENDPOINTS) * len(IDENTITIES)


def test_the_unguarded_route_check_catches_a_new_unguarded_route(tmp_path: Path) -> None:
    probe = create_app(
        Settings(
            database_url="sqlite+aiosqlite:///:memory:",
            jwt_secret="p" * 40,
            redis_url=None,
            ui_dir=tmp_path / "no-ui",  # not the web app's catch-all, even when it is built
        )
    )

    @probe.get("/api/v1/forgotten")
    async def forgotten() -> dict[str, str]:
        return {}

    assert _unguarded(endpoints(probe)) == ["GET /api/v1/forgotten"]


# --- identities -----------------------------------------------------------------------------


@dataclass
class Cast:
    users: dict[str, User]
    disabled: User
    refresh_token: str


@pytest.fixture(scope="module")
async def cast(minter: Minter, module_client: httpx.AsyncClient, test_password: str) -> Cast:
    users = {r.value: await minter.user(r, test_password) for r in ROLES}
    disabled = await minter.user(Role.ADMIN, test_password)
    await minter.set_active(disabled.id, False)
    r = await module_client.post(
        "/api/v1/auth/login",
        json={"username": users["admin"].username, "password": test_password},
    )
    assert r.status_code == 200, r.text
    return Cast(users, disabled, r.json()["refresh_token"])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def flip_signature(token: str) -> str:
    head, body, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    return f"{head}.{body}.{_b64(bytes(b ^ 0xFF for b in raw))}"


def alg_none(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


TokenFactory = Callable[[Minter, Cast], Awaitable[str | None]]


async def _admin_token(m: Minter, c: Cast) -> str:
    # Broken tokens are derived from an ADMIN's live session: the defect is the only reason
    # to refuse them.
    return await m.token(c.users["admin"])


async def _expired(m: Minter, c: Cast) -> str:
    admin = c.users["admin"]
    then = datetime.now(UTC) - timedelta(hours=1)
    return m.sign(admin.id, admin.role, await m.session(admin.id), now=then)


async def _disabled(m: Minter, c: Cast) -> str:
    return await m.token(c.disabled)


async def _none(m: Minter, c: Cast) -> None:
    return None


async def _tampered(m: Minter, c: Cast) -> str:
    return flip_signature(await _admin_token(m, c))


async def _alg_none(m: Minter, c: Cast) -> str:
    return alg_none(await _admin_token(m, c))


async def _other_key(m: Minter, c: Cast) -> str:
    admin = c.users["admin"]
    return m.sign(admin.id, admin.role, await m.session(admin.id), key=secrets.token_urlsafe(48))


async def _refresh(m: Minter, c: Cast) -> str:
    return c.refresh_token


BROKEN: dict[str, TokenFactory] = {
    "anonymous": _none,
    "expired token": _expired,
    "tampered token": _tampered,
    "alg=none token": _alg_none,
    "token signed with another key": _other_key,
    "disabled user": _disabled,
    "refresh token as bearer": _refresh,
}
assert set(BROKEN) == set(INVALID)


async def token_for(identity: str, m: Minter, c: Cast) -> str | None:
    if identity in c.users:
        # A fresh session per test: a request to POST /auth/logout ends only its own session.
        return await m.token(c.users[identity])
    return await BROKEN[identity](m, c)


def _path(ep: Endpoint, c: Cast) -> str:
    # Plausible values: the id of an existing user for user ids, an order id's shape for order
    # ids (only that is routed to an order), 1 for anything else.
    plausible = {"user_id": str(c.users["viewer"].id), "order_id": "0" * 32}
    values = {p: plausible.get(p, "1") for p in ep.path_params}
    return ep.path.format(**values)


# --- the matrix -----------------------------------------------------------------------------


def _assert_envelope(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body


@pytest.mark.parametrize(("ep", "identity"), MATRIX)
async def test_route_admits_exactly_the_roles_its_guard_declares(
    ep: Endpoint,
    identity: str,
    cast: Cast,
    minter: Minter,
    module_client: httpx.AsyncClient,
) -> None:
    if ep.allowed is None and ep.key not in PUBLIC:
        pytest.fail(f"{ep.key} has no RoleGuard and is not on the PUBLIC list")
    token = await token_for(identity, minter, cast)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    # No body: a guarded route must refuse before it looks at (or writes) anything.
    r = await module_client.request(ep.method, _path(ep, cast), headers=headers)

    assert r.status_code < 500, f"{ep.key} x {identity}: {r.status_code} {r.text}"
    if r.status_code == 401:
        assert r.headers.get("www-authenticate") == "Bearer", r.headers
    if ep.allowed is None:  # public: a bad or missing token never matters
        assert r.status_code not in (401, 403), r.text
    elif identity in INVALID:
        _assert_envelope(r, 401, INVALID[identity])
    elif identity in ep.allowed:
        assert r.status_code not in (401, 403), r.text
    else:
        _assert_envelope(r, 403, "FORBIDDEN_ROLE")
        assert r.json()["error"]["details"]["allowed"] == sorted(ep.allowed)
