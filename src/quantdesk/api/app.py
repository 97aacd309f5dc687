"""The app factory: resources in the lifespan, middleware, error handlers, routers, UI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis

from quantdesk import __version__
from quantdesk.admin.router import router as admin_router
from quantdesk.alerts import AlertMetrics, create_alert_service
from quantdesk.alerts.router import router as alerts_router
from quantdesk.api.deps import reject_unknown_query
from quantdesk.api.errors import install_error_handlers
from quantdesk.api.middleware import RequestContextMiddleware
from quantdesk.api.ops import router as ops_router
from quantdesk.api.security import SecurityHeadersMiddleware, install_docs
from quantdesk.api.state import AppState
from quantdesk.auth.router import router as auth_router
from quantdesk.auth.service import AuthContext
from quantdesk.auth.throttle import LoginThrottle, MemoryLoginThrottle, RedisLoginThrottle
from quantdesk.backtest.jobs import start_backtest_runner
from quantdesk.backtest.router import router as backtest_router
from quantdesk.brokers.paper import start_paper_broker
from quantdesk.brokers.router import router as broker_accounts_router
from quantdesk.charges.router import router as charges_router
from quantdesk.datadir import prepare_data_dir
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.deploy.manager import DeploymentManager
from quantdesk.deploy.router import router as deploy_router
from quantdesk.errors import NotFound
from quantdesk.market.router import router as market_router
from quantdesk.market.runtime import start_market
from quantdesk.ml.jobs import start_ml_runner
from quantdesk.ml.router import router as ml_router
from quantdesk.observability.metrics import Metrics
from quantdesk.orders.router import router as orders_router
from quantdesk.orders.service import Oms
from quantdesk.risk.control import RiskControl
from quantdesk.risk.router import router as risk_router
from quantdesk.settings import Settings
from quantdesk.stream.router import router as stream_router
from quantdesk.wallet.router import router as wallet_router

API_PREFIX = "/api/v1"


def api_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(reject_unknown_query)])
    router.include_router(auth_router)
    router.include_router(admin_router)
    router.include_router(broker_accounts_router)
    router.include_router(stream_router)
    router.include_router(market_router)
    router.include_router(charges_router)
    router.include_router(wallet_router)
    router.include_router(orders_router)
    router.include_router(risk_router)
    router.include_router(deploy_router)
    router.include_router(backtest_router)
    router.include_router(ml_router)
    router.include_router(alerts_router)
    return router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    _ = settings.jwt_key  # refuse to build an app that could not sign tokens
    metrics = Metrics()
    alert_metrics = AlertMetrics(metrics.registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        prepare_data_dir(settings)  # private modes before anything is written there
        engine = create_engine(settings.resolved_database_url)
        redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
        throttle: LoginThrottle = (
            RedisLoginThrottle(
                redis, settings.login_failure_window_seconds, f"{settings.redis_prefix}login:"
            )
            if redis is not None
            else MemoryLoginThrottle(settings.login_failure_window_seconds)
        )
        state = AppState(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            metrics=metrics,
            auth=AuthContext(settings=settings, throttle=throttle),
            redis=redis,
        )
        market = await start_market(settings, state.sessionmaker)
        state.extras.update(
            bus=market.bus,
            quote_cache=market.cache,
            hub=market.hub,
            bar_store=market.store,
            clock=market.clock,
            feed=market.feed,
        )
        alerts = create_alert_service(
            settings, bus=market.bus, metrics=alert_metrics, sessionmaker=state.sessionmaker
        )
        await alerts.start()
        state.extras["alerts"] = alerts
        paper = None
        if settings.paper_engine:
            paper = await start_paper_broker(
                settings, state.sessionmaker, market.bus, market.cache, clock=market.clock
            )
            paper.alerts = alerts
        state.extras["paper_broker"] = paper
        control = RiskControl(
            state.sessionmaker,
            Oms(settings, quotes=market.cache, bus=market.bus, clock=market.clock),
            notify=alerts.risk_hook(),
            on_halt=lambda kind: metrics.risk_halts.labels(kind).inc(),
            on_kill_switch=lambda scope, on: metrics.kill_switch.labels(
                "global" if scope == "global" else scope
            ).set(int(on)),
        )
        control.start(settings.risk_monitor_seconds)
        state.extras["risk"] = control
        market_oms = Oms(settings, quotes=market.cache, bus=market.bus, clock=market.clock)
        state.extras["oms_marks"] = market_oms.marks
        deployments = None
        if paper is not None:
            deployments = DeploymentManager(
                settings,
                state.sessionmaker,
                bus=market.bus,
                feed=market.feed,
                paper=paper,
                store=market.store,
                oms=market_oms,
                alerts=alerts,
            )
            await deployments.start()
            # A replay must not start before the deployments it feeds are back.
            if settings.feed.value == "replay":
                await asyncio.wait_for(deployments.restored.wait(), timeout=60)
        state.extras["deployments"] = deployments
        state.extras["backtest_runner"] = await start_backtest_runner(
            settings, state.sessionmaker, market.bus, alerts, bars_dir=market.store.root
        )
        state.extras["ml_runner"] = await start_ml_runner(
            settings, state.sessionmaker, market.bus, alerts, bars_dir=market.store.root
        )
        await market.start_feed()
        app.state.qd = state
        try:
            yield
        finally:
            if state.extras["ml_runner"] is not None:
                await state.extras["ml_runner"].stop()
            if state.extras["backtest_runner"] is not None:
                await state.extras["backtest_runner"].stop()
            if deployments is not None:
                await deployments.stop()
            await control.stop()
            if paper is not None:
                await paper.stop()
            await alerts.stop()
            await market.stop()
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="QuantDesk API",
        version=__version__,
        description=(
            "Self-hosted algorithmic trading platform. Every error is returned as "
            '`{"error": {"code", "message", "details"}}`. Money is a decimal string.'
        ),
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # install_docs: Swagger UI from this app's own files, not a CDN
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes
    )
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    app.include_router(ops_router)
    app.include_router(api_router())
    install_docs(app, f"{API_PREFIX}/docs")
    _mount_ui(app, settings.ui_dir or Path("frontend/dist"))
    return app


def _mount_ui(app: FastAPI, ui_dir: Path) -> None:
    """Serve the built React app at / with history-API fallback, when it has been built."""
    index = ui_dir / "index.html"
    if not index.is_file():
        return
    if (ui_dir / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=ui_dir / "assets"), name="ui-assets")

    @app.get("/{path:path}", include_in_schema=False)
    def ui(path: str) -> FileResponse:  # sync: FastAPI runs it in a thread (file checks)
        if path == "api" or path.startswith("api/"):
            # An unknown API path is an API 404, not the web app.
            raise NotFound(f"No API endpoint at /{path}.", code="NOT_FOUND")
        candidate = (ui_dir / path).resolve()
        if path and candidate.is_file() and ui_dir.resolve() in candidate.parents:
            return FileResponse(candidate)
        return FileResponse(index)
