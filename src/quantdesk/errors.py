"""Application errors with stable codes; one handler maps them to the HTTP error envelope."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An error a client can act on. ``code`` is stable and machine-readable."""

    status_code = 400
    code = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.details = details
        self.headers = headers


class NotAuthenticated(AppError):
    status_code = 401
    code = "NOT_AUTHENTICATED"

    def __init__(self, message: str = "Authentication required.", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kw)


class Forbidden(AppError):
    status_code = 403
    code = "FORBIDDEN"


class NotFound(AppError):
    status_code = 404
    code = "NOT_FOUND"


class Conflict(AppError):
    status_code = 409
    code = "CONFLICT"


class TooManyRequests(AppError):
    status_code = 429
    code = "TOO_MANY_REQUESTS"


class ValidationFailed(AppError):
    status_code = 422
    code = "VALIDATION_ERROR"
