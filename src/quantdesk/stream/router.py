"""``WS /api/v1/ws``: subscribe to quotes and to your own orders, positions and wallet.

Protocol (JSON text frames; documented in docs/websocket.md):

- connect with ``?token=<access token>`` (or an ``Authorization: Bearer`` header); a missing
  or invalid token closes the socket with code 4401 after an ``error`` frame;
- ``{"op": "subscribe", "channels": [...]}`` / ``{"op": "unsubscribe", "channels": [...]}``
  with channels ``quotes:<EXCHANGE:SYMBOL>``, ``orders``, ``positions``, ``wallet``, ``trades``,
  ``alerts``, ``jobs`` -> ``{"type": "subscribed"|"unsubscribed", "channels": [...]}``;
- ``{"op": "ping"}`` -> ``{"type": "pong"}``; ``{"op": "auth", "token": ...}`` renews the
  token on a long-lived connection (the connection closes with 4401 when its token expires);
- the server sends ``{"type": "heartbeat", "ts": ...}`` every few seconds when idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from quantdesk.api.state import AppState
from quantdesk.auth import service as auth_service
from quantdesk.auth.security import AccessClaims, TokenError, decode_access_token
from quantdesk.core.market import quote_channel, validate_symbol
from quantdesk.errors import AppError
from quantdesk.stream.hub import (
    PRIVATE_CHANNELS,
    Connection,
    SlowConsumer,
    StreamHub,
    encode_frame,
    user_channel,
)

router = APIRouter()
log = structlog.get_logger("quantdesk.ws")

MAX_CHANNELS = 500
MAX_FRAME_BYTES = 64 * 1024
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 4408
CLOSE_POLICY = 1008


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _token_from(ws: WebSocket) -> str | None:
    token = ws.query_params.get("token")
    if token:
        return token
    auth = ws.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


async def _authenticate(
    state: AppState, token: str | None, user_id: int | None = None
) -> AccessClaims:
    if not token:
        raise ProtocolError("AUTH_MISSING_TOKEN", "Authentication required.")
    s = state.settings
    try:
        claims = decode_access_token(
            token, key=s.jwt_key, algorithm=s.jwt_algorithm, issuer=s.jwt_issuer
        )
    except TokenError as exc:
        raise ProtocolError("AUTH_INVALID_TOKEN", str(exc)) from exc
    async with state.sessionmaker() as db:
        try:
            await auth_service.resolve_user(db, claims)
        except AppError as exc:
            raise ProtocolError(exc.code, exc.message) from exc
    if user_id is not None and claims.user_id != user_id:
        raise ProtocolError("AUTH_USER_MISMATCH", "A connection cannot change user.")
    return claims


def resolve_channel(name: str, user_id: int) -> str:
    """Client channel name -> bus channel. Private channels are bound to the caller's id, so a
    client can only ever receive its own account's events."""
    if name in PRIVATE_CHANNELS:
        return user_channel(user_id, name)
    if name.startswith("quotes:"):
        try:
            return quote_channel(validate_symbol(name.removeprefix("quotes:")))
        except ValueError as exc:
            raise ProtocolError("WS_BAD_CHANNEL", f"{name!r}: {exc}") from exc
    raise ProtocolError("WS_UNKNOWN_CHANNEL", f"Unknown channel {name!r}.")


def client_name(bus_channel: str) -> str:
    return bus_channel.rsplit(":", 1)[-1] if bus_channel.startswith("user:") else bus_channel


@router.websocket("/ws")
async def stream(ws: WebSocket) -> None:
    state: AppState = ws.app.state.qd
    hub: StreamHub = state.extras["hub"]
    await ws.accept()
    try:
        claims = await _authenticate(state, _token_from(ws))
    except ProtocolError as exc:
        await ws.send_json({"type": "error", "code": exc.code, "message": exc.message})
        await ws.close(CLOSE_UNAUTHORIZED, exc.code)
        return
    conn = Connection(claims.user_id)
    session = {"claims": claims}
    await ws.send_json(
        {
            "type": "welcome",
            "user_id": claims.user_id,
            "heartbeat_seconds": state.settings.ws_heartbeat_seconds,
        }
    )
    reader = asyncio.create_task(_read(ws, state, hub, conn, session))
    writer = asyncio.create_task(_write(ws, conn, session, state.settings.ws_heartbeat_seconds))
    try:
        done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if error is not None and not isinstance(error, WebSocketDisconnect):
                await _close_for(ws, error)
    finally:
        hub.unsubscribe(conn)
        for task in (reader, writer):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _close_for(ws: WebSocket, exc: BaseException) -> None:
    with contextlib.suppress(Exception):
        if isinstance(exc, SlowConsumer):
            await ws.close(CLOSE_TOO_SLOW, "too slow: reconnect and re-sync")
        elif isinstance(exc, ProtocolError) and exc.code.startswith("AUTH"):
            await ws.send_json({"type": "error", "code": exc.code, "message": exc.message})
            await ws.close(CLOSE_UNAUTHORIZED, exc.code)
        else:
            log.warning("ws_closed_on_error", error=type(exc).__name__)
            await ws.close(1011)


async def _read(
    ws: WebSocket, state: AppState, hub: StreamHub, conn: Connection, session: dict[str, Any]
) -> None:
    while True:
        raw = await ws.receive_text()
        try:
            await _handle(raw, state, hub, conn, session)
        except ProtocolError as exc:
            if exc.code.startswith("AUTH"):
                raise
            conn.outbox.put_event({"type": "error", "code": exc.code, "message": exc.message})


async def _handle(
    raw: str, state: AppState, hub: StreamHub, conn: Connection, session: dict[str, Any]
) -> None:
    if len(raw) > MAX_FRAME_BYTES:
        raise ProtocolError("WS_FRAME_TOO_LARGE", f"Frames are limited to {MAX_FRAME_BYTES} bytes.")
    try:
        msg = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProtocolError("WS_BAD_MESSAGE", "Frame is not valid JSON.") from exc
    if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
        raise ProtocolError("WS_BAD_MESSAGE", 'Frames are objects with an "op".')
    op = msg["op"]
    if op == "ping":
        conn.outbox.put_event({"type": "pong", "ts": _now_iso()})
    elif op == "auth":
        session["claims"] = await _authenticate(state, msg.get("token"), conn.user_id)
        conn.outbox.put_event(
            {"type": "authenticated", "expires_at": session["claims"].expires_at.isoformat()}
        )
    elif op in ("subscribe", "unsubscribe"):
        names = msg.get("channels")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
            raise ProtocolError("WS_BAD_MESSAGE", '"channels" must be a non-empty list of strings.')
        channels = [resolve_channel(n, conn.user_id) for n in names]
        if op == "subscribe":
            if len(conn.channels | set(channels)) > MAX_CHANNELS:
                raise ProtocolError("WS_TOO_MANY_CHANNELS", f"At most {MAX_CHANNELS} channels.")
            hub.subscribe(conn, channels)
            conn.outbox.put_event(
                {"type": "subscribed", "channels": [client_name(c) for c in channels]}
            )
            await _send_snapshot(state, conn, channels)
        else:
            hub.unsubscribe(conn, channels)
            conn.outbox.put_event(
                {"type": "unsubscribed", "channels": [client_name(c) for c in channels]}
            )
    else:
        raise ProtocolError("WS_UNKNOWN_OP", f"Unknown op {op!r}.")


async def _send_snapshot(state: AppState, conn: Connection, channels: list[str]) -> None:
    """The latest cached quote of each newly subscribed symbol, so a chart starts at once."""
    cache = state.extras.get("quote_cache")
    symbols = [c.removeprefix("quotes:") for c in channels if c.startswith("quotes:")]
    if cache is None or not symbols:
        return
    for symbol, quote in (await cache.get_many(symbols)).items():
        channel = quote_channel(symbol)
        conn.outbox.put_quote(
            channel, encode_frame({"type": "quote", "channel": channel, "data": quote.to_json()})
        )


async def _write(
    ws: WebSocket, conn: Connection, session: dict[str, Any], heartbeat: float
) -> None:
    while True:
        batch = await conn.outbox.next_batch(heartbeat)
        if session["claims"].expires_at <= datetime.now(UTC):
            raise ProtocolError(
                "AUTH_TOKEN_EXPIRED", "Access token has expired; reconnect or send an auth op."
            )
        if not batch:
            await ws.send_json({"type": "heartbeat", "ts": _now_iso()})
            continue
        for message in batch:
            if isinstance(message, str):  # a quote, encoded once for every connection
                await ws.send_text(message)
            else:
                await ws.send_json(message)
