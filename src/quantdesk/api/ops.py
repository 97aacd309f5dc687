"""Operational endpoints at the root: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from quantdesk.api.deps import StateDep

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database (and Redis when configured) answer",
    responses={503: {"description": "A dependency is down"}},
)
async def readyz(state: StateDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        async with asyncio.timeout(2):
            async with state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the kind goes in the body
        checks["database"] = f"error: {type(exc).__name__}"
    if state.redis is not None:
        try:
            async with asyncio.timeout(2):
                await state.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
