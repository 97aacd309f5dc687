"""Bad input is refused with the error envelope and writes nothing (DESIGN invariant 8)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from apisafety import Minter
from fastapi import FastAPI

from quantdesk.api import create_app
from quantdesk.auth.models import User
from quantdesk.auth.roles import Role
from quantdesk.settings import Settings

USERS = "/api/v1/admin/users"
LOGIN = "/api/v1/auth/login"
MAX_BODY = 4096  # the app under test is built with QUANTDESK_MAX_BODY_BYTES=4096


@pytest.fixture(scope="module")
async def small_body_app(
    db_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    make_settings_fn: Callable[..., Settings],
) -> AsyncIterator[FastAPI]:
    settings = make_settings_fn(db_url, tmp_path_factory.mktemp("bad"), max_body_bytes=MAX_BODY)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="module")
async def http(
    small_body_app: FastAPI, client_for_fn: Callable[..., httpx.AsyncClient]
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for_fn(small_body_app) as c:
        yield c


@pytest.fixture(scope="module")
def mint(small_body_app: FastAPI) -> Minter:
    state = small_body_app.state.qd
    return Minter(state.sessionmaker, state.settings)


@pytest.fixture(scope="module")
async def admin_user(mint: Minter, test_password: str) -> User:
    return await mint.user(Role.ADMIN, test_password)


@pytest.fixture
async def admin_headers(mint: Minter, admin_user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {await mint.token(admin_user)}"}


def assert_envelope(r: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def valid_user(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "username": "fresh_user_01",
        "password": "a-Strong-passphrase-7",
        "role": "trader",
    }
    body.update(over)
    return body


# --- JSON, types, unknown fields ------------------------------------------------------------

MALFORMED = [
    pytest.param(b"{", id="truncated object"),
    pytest.param(b'{"username": "x",}', id="trailing comma"),
    pytest.param(b"{'username': 'x'}", id="single quotes"),
    pytest.param(b'{"username": "x"} garbage', id="trailing garbage"),
    pytest.param(b"\xff\xfe{}", id="not utf-8"),
    pytest.param(b'{"a": NaN', id="bare NaN truncated"),
]


@pytest.mark.parametrize("raw", MALFORMED)
async def test_malformed_json_is_400_and_creates_no_user(
    raw: bytes, http: httpx.AsyncClient, admin_headers: dict[str, str], mint: Minter
) -> None:
    before = await mint.counts()
    r = await http.post(
        USERS, content=raw, headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert_envelope(r, 400, "MALFORMED_JSON")
    assert await mint.counts() == before


@pytest.mark.parametrize("raw", MALFORMED)
async def test_malformed_json_login_is_400_and_audits_nothing(
    raw: bytes, http: httpx.AsyncClient, mint: Minter
) -> None:
    before = await mint.counts()
    r = await http.post(LOGIN, content=raw, headers={"Content-Type": "application/json"})
    assert_envelope(r, 400, "MALFORMED_JSON")
    assert await mint.counts() == before


WRONG = [
    pytest.param(valid_user(username=123), id="username is a number"),
    pytest.param(valid_user(username=None), id="username is null"),
    pytest.param(valid_user(username=["a", "b"]), id="username is a list"),
    pytest.param(valid_user(password=12345678901), id="password is a number"),
    pytest.param(valid_user(role="superuser"), id="role outside the enum"),
    pytest.param(valid_user(role=1), id="role is a number"),
    pytest.param(valid_user(username="no spaces allowed"), id="username breaks the pattern"),
    pytest.param(valid_user(username="x" * 65), id="username too long"),
    pytest.param(valid_user(password=""), id="password empty"),
    pytest.param(valid_user(password="p" * 257), id="password too long"),
    pytest.param({"username": "fresh_user_01", "role": "trader"}, id="password missing"),
    pytest.param([valid_user()], id="body is a list"),
    pytest.param("fresh_user_01", id="body is a string"),
    pytest.param(None, id="body is null"),
]


@pytest.mark.parametrize("body", WRONG)
async def test_wrong_types_are_422_and_create_no_user(
    body: object, http: httpx.AsyncClient, admin_headers: dict[str, str], mint: Minter
) -> None:
    before = await mint.counts()
    r = await http.post(USERS, json=body, headers=admin_headers)
    err = assert_envelope(r, 422, "VALIDATION_ERROR")
    assert isinstance(err["details"], list)
    assert await mint.counts() == before


async def test_validation_errors_never_echo_the_submitted_password(
    http: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    secret = "Sup3r-secret-value-XYZ" * 12  # too long: rejected by the schema
    r = await http.post(USERS, json=valid_user(password=secret), headers=admin_headers)
    assert_envelope(r, 422)
    assert "Sup3r-secret" not in r.text


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"is_admin": True}, id="is_admin"),
        pytest.param({"is_active": False}, id="is_active"),
        pytest.param({"id": 1}, id="id"),
        pytest.param({"password_hash": "$2b$04$abc"}, id="password_hash"),
    ],
)
async def test_unknown_fields_are_422_and_create_no_user(
    extra: dict[str, object], http: httpx.AsyncClient, admin_headers: dict[str, str], mint: Minter
) -> None:
    before = await mint.counts()
    r = await http.post(USERS, json=valid_user(**extra), headers=admin_headers)
    err = assert_envelope(r, 422, "VALIDATION_ERROR")
    assert any(e["type"] == "extra_forbidden" for e in err["details"])  # type: ignore[attr-defined,index]
    assert await mint.counts() == before


async def test_unknown_field_on_login_is_422_and_audits_nothing(
    http: httpx.AsyncClient, mint: Minter, admin_user: User, test_password: str
) -> None:
    before = await mint.counts()
    body = {"username": admin_user.username, "password": test_password, "otp": "123456"}
    r = await http.post(LOGIN, json=body)
    assert_envelope(r, 422, "VALIDATION_ERROR")
    assert await mint.counts() == before  # no session, no audit row


async def test_unknown_field_on_user_update_is_422_and_changes_nothing(
    http: httpx.AsyncClient, admin_headers: dict[str, str], mint: Minter, test_password: str
) -> None:
    target = await mint.user(Role.VIEWER, test_password)
    before = await mint.counts()
    r = await http.patch(
        f"{USERS}/{target.id}", json={"role": "admin", "superpowers": True}, headers=admin_headers
    )
    assert_envelope(r, 422, "VALIDATION_ERROR")
    assert await mint.counts() == before
    got = await http.get(f"{USERS}/{target.id}", headers=admin_headers)
    assert got.json()["role"] == "viewer"


async def test_policy_violation_is_422_and_creates_no_user(
    http: httpx.AsyncClient, admin_headers: dict[str, str], mint: Minter
) -> None:
    before = await mint.counts()
    r = await http.post(USERS, json=valid_user(password="password123"), headers=admin_headers)
    assert_envelope(r, 422, "PASSWORD_POLICY")
    assert await mint.counts() == before


# --- body size ------------------------------------------------------------------------------


def oversize_user() -> bytes:
    return (b'{"username": "big_user", "role": "trader", "password": "' + b"p" * MAX_BODY) + b'"}'


async def test_oversize_body_with_content_length_is_413_and_creates_no_user(
    http: httpx.AsyncClient, admin_headers: dict[str, str], mint: Minter
) -> None:
    before = await mint.counts()
    raw = oversize_user()
    r = await http.post(
        USERS, content=raw, headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert r.request.headers["content-length"] == str(len(raw))
    assert_envelope(r, 413, "PAYLOAD_TOO_LARGE")
    assert await mint.counts() == before


async def test_oversize_chunked_body_without_content_length_is_413_and_creates_no_user(
    http: httpx.AsyncClient, admin_headers: dict[str, str], mint: Minter
) -> None:
    raw = oversize_user()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 512):
            yield raw[i : i + 512]

    before = await mint.counts()
    r = await http.post(
        USERS, content=chunks(), headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert_envelope(r, 413, "PAYLOAD_TOO_LARGE")
    assert await mint.counts() == before


async def test_oversize_login_is_413_and_audits_nothing(
    http: httpx.AsyncClient, mint: Minter
) -> None:
    before = await mint.counts()
    raw = b'{"username": "someone", "password": "' + b"p" * MAX_BODY + b'"}'
    r = await http.post(LOGIN, content=raw, headers={"Content-Type": "application/json"})
    assert_envelope(r, 413, "PAYLOAD_TOO_LARGE")
    assert await mint.counts() == before


async def test_body_of_exactly_the_limit_is_accepted(
    http: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    head = b'{"username": "limit_user", "role": "viewer", "password": "a-Strong-passphrase-7"'
    raw = head + b" " * (MAX_BODY - len(head) - 1) + b"}"  # JSON whitespace as padding
    assert len(raw) == MAX_BODY
    r = await http.post(
        USERS, content=raw, headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 201, r.text


# --- the Authorization header ---------------------------------------------------------------

GARBAGE_AUTH = [
    pytest.param("Bearer", id="Bearer alone"),
    pytest.param("Bearer ", id="Bearer and a space"),
    pytest.param("Basic x", id="Basic x"),
    pytest.param("Basic YWRtaW46cGFzc3dvcmQ=", id="Basic credentials"),
    pytest.param("Bearer a.b", id="two segments"),
    pytest.param("Bearer a.b.c", id="three garbage segments"),
    pytest.param("Bearer ...", id="empty segments"),
    pytest.param("Token abc", id="other scheme"),
    pytest.param("bearer" + "x" * 10, id="no space"),
    pytest.param("Bearer " + "A" * 100_000, id="100 kB token"),
    pytest.param("Bearer " + "eyJ" + "a" * 8000 + ".eyJ" + "b" * 8000 + ".c", id="long jwt shape"),
    pytest.param("Bearer eyJhbGciOiJub25lIn0.e30.", id="alg none empty claims"),
    pytest.param("Bearer \u00e9\u00e8\u00ea.x.y", id="latin-1 bytes"),
]


@pytest.mark.parametrize("value", GARBAGE_AUTH)
async def test_garbage_authorization_header_is_401_and_writes_nothing(
    value: str, http: httpx.AsyncClient, mint: Minter
) -> None:
    before = await mint.counts()
    for method, path in (
        ("GET", "/api/v1/auth/me"),
        ("POST", USERS),
        ("POST", "/api/v1/auth/logout"),
    ):
        r = await http.request(
            method,
            path,
            json=valid_user() if path == USERS else None,
            headers={"Authorization": value.encode("latin-1")},  # type: ignore[dict-item]
        )
        assert_envelope(r, 401)
        assert r.headers["www-authenticate"] == "Bearer"
        assert value[7:200] not in r.text or len(value) < 20
    assert await mint.counts() == before


async def test_missing_authorization_header_is_401_and_creates_no_user(
    http: httpx.AsyncClient, mint: Minter
) -> None:
    before = await mint.counts()
    r = await http.post(USERS, json=valid_user())
    assert_envelope(r, 401, "AUTH_MISSING_TOKEN")
    assert r.headers["www-authenticate"] == "Bearer"
    assert await mint.counts() == before


async def test_viewer_creating_a_user_is_403_and_writes_nothing(
    http: httpx.AsyncClient, mint: Minter, test_password: str
) -> None:
    viewer = await mint.user(Role.VIEWER, test_password)
    headers = {"Authorization": f"Bearer {await mint.token(viewer)}"}
    before = await mint.counts()
    r = await http.post(USERS, json=valid_user(), headers=headers)
    assert_envelope(r, 403, "FORBIDDEN_ROLE")
    assert await mint.counts() == before


# --- values the database cannot store --------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"{USERS}/2147483648",
        f"{USERS}/9458044207919792128",
        f"{USERS}/99999999999999999999999",
        f"{USERS}/0",
        "/api/v1/admin/audit?actor_id=2147483648",
        "/api/v1/admin/audit?cursor=99999999999999999999",
    ],
)
async def test_out_of_range_ids_are_422_not_a_database_error(
    path: str, http: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    r = await http.get(path, headers=admin_headers)
    assert_envelope(r, 422, "VALIDATION_ERROR")


async def test_out_of_range_id_on_update_is_422_and_writes_nothing(
    http: httpx.AsyncClient, admin_headers: dict[str, str], mint: Minter
) -> None:
    before = await mint.counts()
    r = await http.patch(f"{USERS}/2147483648", json={"role": "viewer"}, headers=admin_headers)
    assert_envelope(r, 422, "VALIDATION_ERROR")
    assert await mint.counts() == before


async def test_nul_in_login_username_is_422_and_audits_nothing(
    http: httpx.AsyncClient, mint: Minter
) -> None:
    before = await mint.counts()
    r = await http.post(LOGIN, json={"username": "adm\u0000in", "password": "whatever-123"})
    assert_envelope(r, 422, "VALIDATION_ERROR")
    assert await mint.counts() == before


@pytest.mark.parametrize("param", ["action", "target_type", "target_id"])
async def test_nul_in_an_audit_filter_is_never_a_5xx(
    param: str, small_body_app: FastAPI, admin_headers: dict[str, str], backend: str
) -> None:
    transport = httpx.ASGITransport(app=small_body_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        r = await c.get("/api/v1/admin/audit", params={param: "a\x00b"}, headers=admin_headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "VALIDATION_ERROR"


# --- 405 ----------------------------------------------------------------------------------


async def test_unsupported_method_is_405_envelope(
    http: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    r = await http.delete(USERS, headers=admin_headers)
    assert_envelope(r, 405, "METHOD_NOT_ALLOWED")


async def test_405_allow_header_lists_every_method_of_the_path(
    http: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    r = await http.delete(USERS, headers=admin_headers)
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "POST"}


# --- unexpected exceptions ------------------------------------------------------------------

LEAK = "db-password=hunter2 at /srv/quantdesk/secret.py"


@pytest.fixture
async def boom_app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)

    @application.get("/api/v1/_test/boom")
    async def boom() -> None:
        raise RuntimeError(LEAK)

    async with application.router.lifespan_context(application):
        yield application


async def test_unexpected_exception_is_a_500_envelope_with_a_request_id_and_no_details(
    boom_app: FastAPI,
) -> None:
    # Starlette re-raises after answering (so servers can log it); the client sees the answer.
    transport = httpx.ASGITransport(app=boom_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        r = await c.get("/api/v1/_test/boom")
        supplied = await c.get("/api/v1/_test/boom", headers={"X-Request-ID": "req-42"})
    err = assert_envelope(r, 500, "INTERNAL_ERROR")
    request_id = r.headers["x-request-id"]
    assert request_id
    assert err["details"] == {"request_id": request_id}
    for needle in ("hunter2", "secret.py", "RuntimeError", "Traceback", 'File "'):
        assert needle not in r.text
    assert r.headers["content-type"] == "application/json"
    assert supplied.json()["error"]["details"] == {"request_id": "req-42"}
    assert supplied.headers["x-request-id"] == "req-42"
