"""A real uvicorn server in the test's event loop, for WebSocket tests over real sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from quantdesk.api import create_app
from quantdesk.settings import Settings
from tests.conftest import make_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[str, FastAPI]]:
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="on", ws_ping_interval=None
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.025)
    assert server.started, "uvicorn did not start"
    try:
        yield f"ws://127.0.0.1:{port}/api/v1/ws", app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


LiveServer = Callable[..., AbstractAsyncContextManager[tuple[str, FastAPI]]]


@pytest.fixture
def live_server(db_url: str, tmp_path: Path) -> LiveServer:
    def factory(**overrides: object) -> AbstractAsyncContextManager[tuple[str, FastAPI]]:
        overrides.setdefault("ws_heartbeat_seconds", 0.5)
        return serve(make_settings(db_url, tmp_path, **overrides))

    return factory
