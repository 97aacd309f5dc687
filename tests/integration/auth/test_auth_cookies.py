"""The web UI's form of a session: the refresh token in an HttpOnly cookie, refresh by cookie
with its CSRF defence (double submit bound to the session, Origin/Referer), rotation and reuse
detection through the cookie, logout clearing the cookies; the JSON-body form unchanged.

The client speaks https (like a browser behind TLS), so its cookie jar sends Secure cookies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from quantdesk.auth.cookies import check_origin
from quantdesk.auth.roles import Role
from quantdesk.errors import Forbidden
from tests.conftest import AuthedUser, UserFactory

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"
TTL = 7 * 24 * 3600  # the default refresh-token lifetime


@dataclass
class SetCookie:
    name: str
    value: str
    attrs: dict[str, str]  # lower-cased attribute names; flags map to ""


def set_cookies(r: httpx.Response) -> dict[str, SetCookie]:
    out = {}
    for header in r.headers.get_list("set-cookie"):
        first, *rest = (p.strip() for p in header.split(";"))
        name, _, value = first.partition("=")
        attrs = {}
        for part in rest:
            key, _, val = part.partition("=")
            attrs[key.lower()] = val
        out[name] = SetCookie(name, value.strip('"'), attrs)
    return out


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40001))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        yield c


@dataclass
class CookieSession:
    access_token: str
    refresh: str  # the refresh cookie's value at login
    csrf: str


async def ui_login(browser: httpx.AsyncClient, user: AuthedUser) -> CookieSession:
    r = await browser.post(
        LOGIN,
        json={"username": user.username, "password": user.password, "refresh_token_in_body": False},
    )
    assert r.status_code == 200, r.text
    cookies = set_cookies(r)
    return CookieSession(
        r.json()["access_token"], cookies["qd_refresh"].value, cookies["qd_csrf"].value
    )


def csrf(session: CookieSession) -> dict[str, str]:
    return {"X-CSRF-Token": session.csrf}


def cookie_header(refresh: str, csrf_cookie: str) -> dict[str, str]:
    """An explicit Cookie header (it replaces the jar's): to present a chosen cookie."""
    return {"Cookie": f"qd_refresh={refresh}; qd_csrf={csrf_cookie}", "X-CSRF-Token": csrf_cookie}


@pytest.fixture
async def user(make_user: UserFactory) -> AuthedUser:
    return await make_user(Role.TRADER, login=False)


async def test_login_sets_the_refresh_cookie_httponly_secure_strict_on_the_auth_path(
    browser: httpx.AsyncClient, user: AuthedUser
) -> None:
    r = await browser.post(LOGIN, json={"username": user.username, "password": user.password})
    assert r.status_code == 200
    cookies = set_cookies(r)
    refresh = cookies["qd_refresh"]
    assert {"httponly", "secure"} <= set(refresh.attrs)
    assert refresh.attrs["samesite"].lower() == "strict"
    assert refresh.attrs["path"] == "/api/v1/auth"
    assert int(refresh.attrs["max-age"]) == TTL
    assert "domain" not in refresh.attrs
    # The body keeps the scripts' contract: the same refresh token is there too.
    assert r.json()["refresh_token"] == refresh.value
    # The CSRF cookie is for the page to read: not HttpOnly, on every path, as strict.
    token = cookies["qd_csrf"]
    assert "httponly" not in token.attrs
    assert "secure" in token.attrs
    assert token.attrs["samesite"].lower() == "strict"
    assert token.attrs["path"] == "/"
    assert int(token.attrs["max-age"]) == TTL
    assert token.value and token.value != refresh.value


async def test_cookie_mode_login_keeps_the_refresh_token_out_of_the_body(
    browser: httpx.AsyncClient, user: AuthedUser
) -> None:
    r = await browser.post(
        LOGIN,
        json={"username": user.username, "password": user.password, "refresh_token_in_body": False},
    )
    assert r.status_code == 200
    assert r.json()["refresh_token"] is None
    assert set_cookies(r)["qd_refresh"].value
    assert (await browser.get(ME, headers=bearer(r.json()["access_token"]))).status_code == 200


async def test_refresh_by_cookie_rotates_the_cookie_and_returns_an_access_token(
    browser: httpx.AsyncClient, user: AuthedUser
) -> None:
    s = await ui_login(browser, user)
    r = await browser.post(REFRESH, headers=csrf(s))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["refresh_token"] is None
    assert (await browser.get(ME, headers=bearer(body["access_token"]))).json()["id"] == user.id
    rotated = set_cookies(r)
    assert rotated["qd_refresh"].value != s.refresh
    assert {"httponly", "secure"} <= set(rotated["qd_refresh"].attrs)
    assert rotated["qd_refresh"].attrs["path"] == "/api/v1/auth"
    # The CSRF token belongs to the session, so rotation keeps it.
    assert rotated["qd_csrf"].value == s.csrf
    # The jar now holds the rotated cookie, and it works in turn.
    again = await browser.post(REFRESH, headers=csrf(s))
    assert again.status_code == 200, again.text
    assert set_cookies(again)["qd_refresh"].value != rotated["qd_refresh"].value


@pytest.mark.parametrize(
    ("extra", "with_token", "code"),
    [
        pytest.param({}, False, "AUTH_CSRF_MISSING", id="no header"),
        pytest.param({"X-CSRF-Token": ""}, False, "AUTH_CSRF_MISSING", id="empty header"),
        pytest.param({"X-CSRF-Token": "not-it"}, False, "AUTH_CSRF_INVALID", id="wrong header"),
        pytest.param({"Origin": "https://evil.example"}, True, "AUTH_CSRF_ORIGIN", id="origin"),
        pytest.param({"Referer": "https://evil.example/x"}, True, "AUTH_CSRF_ORIGIN", id="referer"),
        pytest.param({"Origin": "null"}, True, "AUTH_CSRF_ORIGIN", id="opaque origin"),
    ],
)
async def test_refused_csrf_is_403_and_the_session_is_not_rotated(
    browser: httpx.AsyncClient,
    user: AuthedUser,
    extra: dict[str, str],
    with_token: bool,
    code: str,
) -> None:
    s = await ui_login(browser, user)
    r = await browser.post(REFRESH, headers={**(csrf(s) if with_token else {}), **extra})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == code
    assert "set-cookie" not in r.headers
    # Nothing was spent: the same cookie still refreshes.
    ok = await browser.post(REFRESH, headers=cookie_header(s.refresh, s.csrf))
    assert ok.status_code == 200, ok.text


async def test_a_planted_csrf_cookie_does_not_pass_for_the_session(
    browser: httpx.AsyncClient, user: AuthedUser
) -> None:
    """Double submit alone trusts any matching pair; a sibling site able to set cookies could
    plant one. The token must also be the session's own."""
    s = await ui_login(browser, user)
    r = await browser.post(REFRESH, headers=cookie_header(s.refresh, "planted-by-an-attacker"))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "AUTH_CSRF_INVALID"
    other = await ui_login(browser, user)  # another session's genuine CSRF token
    r = await browser.post(REFRESH, headers=cookie_header(s.refresh, other.csrf))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "AUTH_CSRF_INVALID"
    ok = await browser.post(REFRESH, headers=cookie_header(s.refresh, s.csrf))
    assert ok.status_code == 200, ok.text


async def test_own_origin_and_referer_are_accepted(
    browser: httpx.AsyncClient, user: AuthedUser
) -> None:
    s = await ui_login(browser, user)
    r = await browser.post(REFRESH, headers={**csrf(s), "Origin": "https://testserver"})
    assert r.status_code == 200, r.text
    r = await browser.post(REFRESH, headers={**csrf(s), "Referer": "https://testserver/orders"})
    assert r.status_code == 200, r.text


async def test_reusing_an_old_refresh_cookie_revokes_the_session(
    browser: httpx.AsyncClient, user: AuthedUser
) -> None:
    s = await ui_login(browser, user)
    first = await browser.post(REFRESH, headers=csrf(s))
    assert first.status_code == 200
    latest_access = first.json()["access_token"]
    latest_refresh = set_cookies(first)["qd_refresh"].value
    # The spent cookie presented again (a copy stolen before the rotation).
    reuse = await browser.post(REFRESH, headers=cookie_header(s.refresh, s.csrf))
    assert reuse.status_code == 401
    assert reuse.json()["error"]["code"] == "AUTH_REFRESH_REUSED"
    # The whole session is gone, the legitimate holder's newer cookie and access token too.
    me = await browser.get(ME, headers=bearer(latest_access))
    assert me.json()["error"]["code"] == "AUTH_SESSION_REVOKED"
    again = await browser.post(REFRESH, headers=cookie_header(latest_refresh, s.csrf))
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "AUTH_INVALID_REFRESH"


async def test_a_spent_cookie_token_is_reuse_in_the_body_form_too(
    browser: httpx.AsyncClient, user: AuthedUser
) -> None:
    s = await ui_login(browser, user)
    assert (await browser.post(REFRESH, headers=csrf(s))).status_code == 200
    reuse = await browser.post(REFRESH, json={"refresh_token": s.refresh})
    assert reuse.status_code == 401
    assert reuse.json()["error"]["code"] == "AUTH_REFRESH_REUSED"
    # The jar's (rotated) cookie died with the session.
    assert (await browser.post(REFRESH, headers=csrf(s))).status_code == 401


async def test_a_refused_refresh_cookie_is_deleted(
    browser: httpx.AsyncClient, user: AuthedUser
) -> None:
    s = await ui_login(browser, user)
    r = await browser.post(REFRESH, headers=cookie_header("not-a-token", s.csrf))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "AUTH_INVALID_REFRESH"
    deleted = set_cookies(r)
    assert deleted["qd_refresh"].attrs["max-age"] == "0"
    assert deleted["qd_refresh"].attrs["path"] == "/api/v1/auth"
    assert deleted["qd_csrf"].attrs["max-age"] == "0"


async def test_logout_clears_the_cookies_and_ends_the_session(
    browser: httpx.AsyncClient, user: AuthedUser
) -> None:
    s = await ui_login(browser, user)
    r = await browser.post(LOGOUT, headers=bearer(s.access_token))
    assert r.status_code == 204
    deleted = set_cookies(r)
    assert deleted["qd_refresh"].attrs["max-age"] == "0"
    assert deleted["qd_refresh"].attrs["path"] == "/api/v1/auth"
    assert deleted["qd_csrf"].attrs["max-age"] == "0"
    assert deleted["qd_csrf"].attrs["path"] == "/"
    assert not browser.cookies  # the jar followed the deletion
    # The cookie's value, kept by someone, is dead: the session is revoked.
    r = await browser.post(REFRESH, headers=cookie_header(s.refresh, s.csrf))
    assert r.status_code == 401
    assert (await browser.get(ME, headers=bearer(s.access_token))).status_code == 401


async def test_body_form_needs_no_csrf_and_sets_no_cookie(
    browser: httpx.AsyncClient, user: AuthedUser
) -> None:
    login = await browser.post(LOGIN, json={"username": user.username, "password": user.password})
    # A browser-like client with the cookies in its jar: the body still decides, no CSRF.
    r = await browser.post(REFRESH, json={"refresh_token": login.json()["refresh_token"]})
    assert r.status_code == 200, r.text
    assert r.json()["refresh_token"]
    assert "set-cookie" not in r.headers
    # That spent the login's token, which is also the jar's cookie: presenting it is reuse.
    cookie = set_cookies(login)
    reuse = await browser.post(REFRESH, headers={"X-CSRF-Token": cookie["qd_csrf"].value})
    assert reuse.json()["error"]["code"] == "AUTH_REFRESH_REUSED"


async def test_plain_script_client_keeps_working_without_cookies(
    client: httpx.AsyncClient, trader: AuthedUser
) -> None:
    # The shared http:// client never sends the Secure cookies back: the body form as before.
    r = await client.post(REFRESH, json={"refresh_token": trader.refresh_token})
    assert r.status_code == 200
    assert r.json()["refresh_token"]


async def test_refresh_with_neither_body_nor_cookie_is_422(browser: httpx.AsyncClient) -> None:
    r = await browser.post(REFRESH, headers={"X-CSRF-Token": "x"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "AUTH_REFRESH_TOKEN_MISSING"


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "path": REFRESH, "headers": raw})


@pytest.mark.parametrize(
    ("headers", "trusted", "ok"),
    [
        pytest.param({"host": "desk.example"}, set(), True, id="no origin: token decides"),
        pytest.param(
            {"host": "desk.example", "origin": "https://desk.example"}, set(), True, id="own"
        ),
        pytest.param(
            # TLS ends at the proxy and the port differs: hosts compare like SameSite sites.
            {"host": "desk.example:8000", "origin": "https://desk.example"},
            set(),
            True,
            id="scheme and port ignored",
        ),
        pytest.param(
            {"host": "127.0.0.1:8000", "origin": "https://evil.example"},
            set(),
            False,
            id="other host",
        ),
        pytest.param(
            {
                "host": "127.0.0.1:8000",
                "x-forwarded-host": "desk.example",
                "origin": "https://desk.example",
            },
            set(),
            True,
            id="proxy sends x-forwarded-host",
        ),
        pytest.param(
            {"host": "127.0.0.1:8000", "origin": "http://localhost:5173"},
            {"http://localhost:5173"},
            True,
            id="trusted origin (vite dev server)",
        ),
        pytest.param(
            {"host": "127.0.0.1:8000", "origin": "http://localhost:5174"},
            {"http://localhost:5173"},
            False,
            id="trusted origins match exactly",
        ),
        pytest.param(
            {"host": "desk.example", "origin": "https://desk.example.evil.example"},
            set(),
            False,
            id="suffix trick",
        ),
    ],
)
def test_origin_check(headers: dict[str, str], trusted: set[str], ok: bool) -> None:
    request = _request(headers)
    if ok:
        check_origin(request, frozenset(trusted))
    else:
        with pytest.raises(Forbidden) as info:
            check_origin(request, frozenset(trusted))
        assert info.value.code == "AUTH_CSRF_ORIGIN"


def test_trusted_origins_setting_is_normalised() -> None:
    from quantdesk.settings import Settings

    s = Settings(csrf_trusted_origins=" http://LOCALHOST:5173/ , https://desk.example ,")
    assert s.trusted_origins == {"http://localhost:5173", "https://desk.example"}
