"""The web UI's session cookies and the CSRF checks of the cookie route (HTTP side).

``qd_refresh`` carries the refresh token: HttpOnly (page scripts never see it), Secure,
SameSite=Strict, and sent only to the auth endpoints. ``qd_csrf`` carries the session's CSRF
token (an HMAC of the session id, see ``security.csrf_token``): readable by the page (Path=/),
which echoes it in ``X-CSRF-Token``. A cross-site page can neither read the cookie nor send a
custom header without a CORS preflight this API never grants, so a request with a matching
header came from our own pages. The JSON-body form (the token in the body) needs none of this:
a cross-site page cannot know the token.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from fastapi import Request, Response

from quantdesk.errors import Forbidden

REFRESH_COOKIE = "qd_refresh"
CSRF_COOKIE = "qd_csrf"
CSRF_HEADER = "X-CSRF-Token"
# Where the auth router is mounted: the refresh cookie goes to these endpoints only.
REFRESH_PATH = "/api/v1/auth"
# The page reads the CSRF cookie from document.cookie, which lists only the cookies whose
# path covers the page's own.
CSRF_PATH = "/"


def set_session_cookies(
    response: Response, refresh_token: str, csrf_token: str, expires_at: datetime, now: datetime
) -> None:
    # Max-Age, not Expires: the browser's clock may be wrong; the session's absolute end holds.
    max_age = max(0, int((expires_at - now).total_seconds()))
    response.set_cookie(
        REFRESH_COOKIE,
        refresh_token,
        max_age=max_age,
        path=REFRESH_PATH,
        secure=True,
        httponly=True,
        samesite="strict",
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf_token,
        max_age=max_age,
        path=CSRF_PATH,
        secure=True,
        httponly=False,
        samesite="strict",
    )


def clear_session_cookies(response: Response) -> None:
    # A deletion must name the same path (and attributes) as the cookie it replaces.
    response.delete_cookie(
        REFRESH_COOKIE, path=REFRESH_PATH, secure=True, httponly=True, samesite="strict"
    )
    response.delete_cookie(
        CSRF_COOKIE, path=CSRF_PATH, secure=True, httponly=False, samesite="strict"
    )


def _csrf_error(message: str, code: str, details: object = None) -> Forbidden:
    return Forbidden(message, code=code, details=details)


def _hostname(netloc: str) -> str | None:
    try:
        return urlsplit(f"//{netloc}").hostname
    except ValueError:
        return None


def check_origin(request: Request, trusted: frozenset[str]) -> None:
    """Refuse a cookie request whose Origin (or, without one, Referer) is another site.

    Hosts are compared without scheme and port, as SameSite does: behind a TLS-terminating
    proxy the app sees http and the proxy may drop the port. A proxy that rewrites Host must
    send X-Forwarded-Host, or its public origin must be listed in QUANTDESK_CSRF_TRUSTED_ORIGINS.
    Neither header present (old browsers, privacy settings): the CSRF token alone decides."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return
    try:
        parts = urlsplit(source)
        origin_host = parts.hostname
    except ValueError:
        origin_host = None
    if origin_host is None:  # "null" (sandboxed or opaque origins) or garbage
        raise _csrf_error(
            "Request origin is not allowed.", "AUTH_CSRF_ORIGIN", {"origin": source[:200]}
        )
    if f"{parts.scheme}://{parts.netloc}".lower() in trusted:
        return
    own = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")}
    own_hosts = {_hostname(h.split(",")[0].strip()) for h in own if h}
    if origin_host.lower() in own_hosts:
        return
    raise _csrf_error(
        "Request origin is not allowed.", "AUTH_CSRF_ORIGIN", {"origin": source[:200]}
    )


def presented_csrf(request: Request, header: str | None) -> str:
    """The CSRF token of a cookie request: the header, which must equal the CSRF cookie."""
    if not header:
        raise _csrf_error(
            f"A cookie refresh needs the {CSRF_HEADER} header (the value of the {CSRF_COOKIE} "
            "cookie).",
            "AUTH_CSRF_MISSING",
        )
    if header != request.cookies.get(CSRF_COOKIE):
        raise _csrf_error(
            f"The {CSRF_HEADER} header does not match the {CSRF_COOKIE} cookie.",
            "AUTH_CSRF_INVALID",
        )
    return header
