"""HTTP API: the app factory, dependencies, middleware and error handlers."""

from quantdesk.api.app import create_app

__all__ = ["create_app"]
