"""Browser-facing hardening: security headers on every response, and the API docs page served
from this app (Swagger UI's files ship in the ``fastapi-swagger`` package; no CDN).

Every HTTP response gets ``X-Content-Type-Options``, ``Referrer-Policy``, ``X-Frame-Options``
and a Content-Security-Policy (HSTS too when ``QUANTDESK_PUBLIC_URL`` is https). A route that
sets its own policy keeps it (the docs page, the backtest tearsheet); otherwise HTML (the web
UI) gets :func:`ui_csp` and everything else a policy that allows nothing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quantdesk.settings import Settings

# Not "no-referrer": with it a browser sends `Origin: null` on same-origin POSTs, which the
# cookie refresh's Origin check (auth/cookies.py) rightly refuses.
REFERRER_POLICY = "strict-origin-when-cross-origin"
HSTS = "max-age=31536000; includeSubDomains"
# JSON, files, errors: nothing in them may load or run anything, or be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# Inline styles stay allowed: the chart library and the tearsheet (opened from a blob URL,
# which inherits this policy) carry them. Scripts only from this origin, never inline.
_UI_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'{ws}; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
_DOCS_CSP = (
    "default-src 'self'; script-src 'self' {scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# A Host header that may go into a policy: a name or an IP literal, an optional port.
_HOST = re.compile(r"^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?$")
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def ui_csp(hosts: list[str]) -> str:
    """The web UI's policy. Its WebSocket goes to its own host: `'self'` covers ws(s) of that
    host in current browsers, the explicit ws:/wss: sources cover the others."""
    ws = "".join(f" ws://{h} wss://{h}" for h in hosts)
    return _UI_CSP.format(ws=ws)


class SecurityHeadersMiddleware:
    """Pure ASGI (as RequestContextMiddleware): WebSockets and streams pass untouched."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.common: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", REFERRER_POLICY.encode()),
            (b"x-frame-options", b"DENY"),
        ]
        if settings.is_https:
            self.common.append((b"strict-transport-security", HSTS.encode()))
        public = settings.public_url
        self.public_host = _host_of(urlsplit(public).netloc) if public else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in self.common if h[0] not in present)
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", self._csp(scope, headers)))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _csp(self, scope: Scope, headers: list[tuple[bytes, bytes]]) -> bytes:
        content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
        if not content_type.lower().startswith(b"text/html"):
            return API_CSP.encode()
        hosts = [self.public_host] if self.public_host else []
        requested = _host_of(_header(scope, b"host"))
        if requested and requested not in hosts:
            hosts.append(requested)
        return ui_csp(hosts).encode()


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers") or []:
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


def _host_of(value: str) -> str | None:
    host = value.strip().lower()
    return host if _HOST.match(host) else None


# --- the API docs page --------------------------------------------------------------------

SWAGGER_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


class _SwaggerAssets(StaticFiles):
    """Only the three files the docs page loads, not the rest of the package folder."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path not in SWAGGER_ASSETS:
            return "", None
        return super().lookup_path(path)


def swagger_dir() -> Path:
    return Path(str(files("fastapi_swagger") / "resources"))


def install_docs(app: FastAPI, docs_url: str) -> None:
    """Swagger UI at ``docs_url``, its files under ``<docs_url>/assets/``. Its page has one
    inline script (FastAPI's initialiser), allowed by its hash in the page's own policy."""
    assets = f"{docs_url}/assets"
    app.router.routes.append(
        Mount(assets, app=_SwaggerAssets(directory=swagger_dir()), name="docs-assets")
    )

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or ""),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{assets}/swagger-ui.css",
            swagger_favicon_url=f"{root}{assets}/favicon-32x32.png",
            # No badge fetched from the public validator: offline hosts, and the CSP.
            swagger_ui_parameters={"validatorUrl": None},
        )
        html = bytes(page.body).decode()
        return HTMLResponse(html, headers={"Content-Security-Policy": docs_csp(html)})

    app.add_route(docs_url, swagger_ui, include_in_schema=False)


def docs_csp(html: str) -> str:
    """The docs page's policy: its inline scripts allowed by hash, no other inline script."""
    scripts = " ".join(f"'sha256-{_sha256(s)}'" for s in _INLINE_SCRIPT.findall(html))
    return _DOCS_CSP.format(scripts=scripts)


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
