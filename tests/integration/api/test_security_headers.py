"""Security headers on API, UI and docs responses; HSTS only for an https public URL; the
Swagger UI page loads its files from this app, under a policy its inline script passes."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from tests.conftest import client_for, make_settings

from quantdesk.api import create_app
from quantdesk.api.security import API_CSP, HSTS, REFERRER_POLICY
from quantdesk.settings import Settings

COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": REFERRER_POLICY,
    "x-frame-options": "DENY",
}


def _directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def _ui_dist(root: Path) -> Path:
    dist = root / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(
        '<!doctype html><script type="module" src="/assets/app.js"></script><div id=root></div>'
    )
    (dist / "assets" / "app.js").write_text("console.log('qd')")
    return dist


async def _started(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app), client_for(app) as client:
        yield client


@pytest.fixture
async def client(sqlite_database: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(sqlite_database, tmp_path, ui_dir=_ui_dist(tmp_path))
    async for c in _started(settings):
        yield c


def assert_common(r: httpx.Response) -> None:
    for name, value in COMMON.items():
        assert r.headers.get(name) == value, (r.request.url, name)


async def test_api_responses_carry_the_headers_and_a_policy_that_allows_nothing(
    client: httpx.AsyncClient,
) -> None:
    responses = [
        await client.get("/healthz"),
        await client.get("/api/v1/auth/me"),  # 401
        await client.get("/api/v1/no-such-thing"),  # 404
        await client.post("/api/v1/auth/login", json={}),  # 422
        await client.get("/api/v1/openapi.json"),
    ]
    assert [r.status_code for r in responses] == [200, 401, 404, 422, 200]
    for r in responses:
        assert_common(r)
        assert r.headers["content-security-policy"] == API_CSP
        assert "strict-transport-security" not in r.headers  # no https public URL
    assert _directives(API_CSP) == {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}


async def test_ui_pages_get_a_policy_without_inline_script_that_lets_the_websocket_in(
    client: httpx.AsyncClient,
) -> None:
    for page in ("/", "/orders", "/backtests/abc"):
        r = await client.get(page)
        assert r.status_code == 200 and "id=root" in r.text, page
        assert_common(r)
        csp = _directives(r.headers["content-security-policy"])
        assert csp["script-src"] == ["'self'"]
        assert csp["default-src"] == ["'self'"]
        assert csp["object-src"] == ["'none'"]
        assert csp["frame-ancestors"] == ["'none'"]
        assert csp["base-uri"] == ["'self'"]
        assert csp["connect-src"] == ["'self'", "ws://testserver", "wss://testserver"]
    asset = await client.get("/assets/app.js")
    assert asset.status_code == 200
    assert_common(asset)


async def test_a_forged_host_header_cannot_add_to_the_policy(client: httpx.AsyncClient) -> None:
    r = await client.get("/", headers={"Host": "x; script-src *"})
    csp = r.headers["content-security-policy"]
    assert "*" not in csp and csp.count("script-src") == 1
    assert _directives(csp)["connect-src"] == ["'self'"]
    r = await client.get("/", headers={"Host": "Desk.Example.com:8443"})
    assert _directives(r.headers["content-security-policy"])["connect-src"] == [
        "'self'",
        "ws://desk.example.com:8443",
        "wss://desk.example.com:8443",
    ]


@pytest.mark.parametrize(
    ("public_url", "hsts"),
    [
        (None, False),
        ("http://desk.example.com", False),
        ("https://desk.example.com/", True),
        ("HTTPS://desk.example.com:8443", True),
    ],
)
async def test_hsts_only_when_the_public_url_is_https(
    sqlite_database: str, tmp_path: Path, public_url: str | None, hsts: bool
) -> None:
    settings = make_settings(
        sqlite_database, tmp_path, ui_dir=_ui_dist(tmp_path), public_url=public_url
    )
    async for c in _started(settings):
        for path in ("/healthz", "/", "/api/v1/docs"):
            r = await c.get(path)
            assert r.status_code == 200
            assert r.headers.get("strict-transport-security") == (HSTS if hsts else None), path
        if public_url:
            # The public host is allowed for the WebSocket even when the proxy rewrites Host.
            connect = _directives((await c.get("/")).headers["content-security-policy"])
            host = public_url.split("://")[1].rstrip("/").lower()
            assert f"wss://{host}" in connect["connect-src"]


def test_the_public_url_must_be_an_http_url() -> None:
    for bad in ("desk.example.com", "ftp://desk.example.com", "https://"):
        with pytest.raises(ValidationError, match="QUANTDESK_PUBLIC_URL"):
            Settings(public_url=bad)
    assert Settings(public_url="https://desk.example.com/").public_url == (
        "https://desk.example.com"
    )
    assert Settings(public_url="").public_url is None


async def test_the_docs_page_loads_swagger_from_this_app_under_its_own_policy(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/api/v1/docs")
    assert r.status_code == 200
    assert_common(r)
    urls = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert sorted(urls) == [
        "/api/v1/docs/assets/favicon-32x32.png",
        "/api/v1/docs/assets/swagger-ui-bundle.js",
        "/api/v1/docs/assets/swagger-ui.css",
    ]
    assert "cdn" not in r.text and "https://" not in r.text
    assert "url: '/api/v1/openapi.json'" in r.text
    types = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert types[Path(url).suffix] in asset.headers["content-type"]
        assert len(asset.content) > 100
        assert_common(asset)
    # Nothing else of the package folder is served.
    assert (await client.get("/api/v1/docs/assets/__init__.py")).status_code == 404

    csp = _directives(r.headers["content-security-policy"])
    inline = re.findall(r"<script>(.*?)</script>", r.text, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert csp["script-src"] == ["'self'", f"'sha256-{digest}'"]
    assert "'unsafe-inline'" not in csp["script-src"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["connect-src"] == ["'self'"]  # "Try it out" calls this API only


async def test_the_docs_page_follows_the_root_path(sqlite_database: str, tmp_path: Path) -> None:
    app = create_app(make_settings(sqlite_database, tmp_path))
    transport = httpx.ASGITransport(app=app, root_path="/desk")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as c,
    ):
        r = await c.get("/desk/api/v1/docs")
        assert r.status_code == 200
        assert 'src="/desk/api/v1/docs/assets/swagger-ui-bundle.js"' in r.text
        assert "url: '/desk/api/v1/openapi.json'" in r.text
