"""One error envelope for every failure: ``{"error": {"code", "message", "details"}}``.

No stack trace or exception text of an unexpected error ever reaches a client; it goes to the
log with the request id, and the client gets the id to quote.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from quantdesk.alerts.model import Alert, AlertKind, Severity
from quantdesk.core.errors import DomainError, InvalidState
from quantdesk.errors import AppError

log = structlog.get_logger("quantdesk.errors")

_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "NOT_AUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "TOO_MANY_REQUESTS",
    503: "SERVICE_UNAVAILABLE",
}


def envelope(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details}},
        status_code=status,
        headers=headers,
    )


def _clean_validation_errors(errors: Any) -> list[dict[str, Any]]:
    # Pydantic echoes the offending input; it may be a password, so it is never returned.
    out = []
    for err in errors:
        out.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "type": err.get("type"),
                "message": err.get("msg"),
            }
        )
    return out


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return envelope(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    # A request that can never be valid is 422; a valid request against the wrong state is 409.
    status = 409 if isinstance(exc, InvalidState) else 422
    return envelope(status, str(exc.code), exc.message, dict(exc.details) or None)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _STATUS_CODES.get(status, "HTTP_ERROR")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").capitalize()
    headers = dict(getattr(exc, "headers", None) or {})
    if status == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return envelope(status, code, message, headers=headers or None)


def _allowed_methods(request: Request) -> list[str]:
    """Every method of every route matching the path: Starlette's own 405 names only the
    first matching route's, and we declare one route per method."""
    methods: set[str] = set()
    for route in request.app.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _clean_validation_errors(exc.errors())
    if any(e["type"] == "json_invalid" for e in errors):
        return envelope(400, "MALFORMED_JSON", "Request body is not valid JSON.", errors)
    return envelope(422, "VALIDATION_ERROR", "Request validation failed.", errors)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    log.error("unhandled_error", exc_info=exc, path=request.url.path)
    metrics = getattr(getattr(request.app.state, "qd", None), "metrics", None)
    if metrics is not None:
        metrics.errors.inc()
    _alert_unhandled(request, exc, request_id)
    headers = {"X-Request-ID": request_id} if request_id else None
    return envelope(
        500,
        "INTERNAL_ERROR",
        "An internal error occurred; quote the request id to an administrator.",
        {"request_id": request_id},
        headers,
    )


def _alert_unhandled(request: Request, exc: Exception, request_id: str | None) -> None:
    """Best effort, never raising: a system-error alert naming the route and exception type
    (not its text, which may carry data); one per route and type per dedup window."""
    try:
        extras = getattr(getattr(request.app.state, "qd", None), "extras", None) or {}
        alerts = extras.get("alerts")
        if alerts is None:
            return
        route = getattr(request.scope.get("route"), "path", None) or request.url.path
        name = type(exc).__name__
        alerts.notify(
            Alert(
                AlertKind.SYSTEM_ERROR,
                Severity.ERROR,
                f"Unhandled server error: {name}",
                f"{request.method} {route} (request id {request_id})",
                dedup_key=f"unhandled:{name}:{request.method}:{route}",
            )
        )
    except Exception as err:
        log.warning("unhandled_error_alert_failed", error=repr(err))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled)
