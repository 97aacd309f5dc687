"""Running deployments in the ``serve`` process: create, pause, resume, stop, restore after a
restart, and feed them bars.

Bars come from the feed. On a replay feed the manager hears each bar time once its last quote
was published (``ReplayFeed.bar_listeners``) and, before the replay moves on, waits for the
paper broker to have matched every quote so far, then runs the strategies and sends their
orders into the broker's book: a replayed day trades in lockstep, the same way every time, as a
backtest of that day does. On other feeds one-minute bars are built from the quotes.

A deployment stops on its own (status ``failed``, with the reason) when its strategy raises,
and (status ``stopped``) when the account's kill switch, the global one, or a risk halt is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.alerts.model import Alert, AlertKind, AlertSink, Severity
from quantdesk.bus.base import EventBus, Subscription
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.core.market import QUOTES_CHANNEL_PREFIX, Bar, Quote
from quantdesk.errors import Conflict, NotFound, ValidationFailed
from quantdesk.market.calendars import ExchangeCalendar, exchange_of, get_calendar
from quantdesk.market.feed import Feed, ReplayFeed
from quantdesk.market.store import BarStore
from quantdesk.observability import audit
from quantdesk.orders.service import Oms, trade_date
from quantdesk.risk.models import GLOBAL_SCOPE, user_scope
from quantdesk.risk.service import get_state
from quantdesk.settings import Settings
from quantdesk.strategy.base import InvalidParams
from quantdesk.strategy.registry import Registry, UnknownStrategy

from .account import OmsAccount, deployment_prefix
from .bars import STEP, IntervalBars, QuoteBars
from .live import LiveBar, StrategyRunner
from .models import ACTIVE, DeploymentRow, DeploymentStatus
from .signals import ModelSignals, model_of

__all__ = ["DeploymentManager"]

log = structlog.get_logger("quantdesk.deploy")

INTERVALS = (*STEP, "1d")
CAUGHT_UP_SECONDS = 10.0
RISK_STOP_CODES = frozenset({"RISK_KILL_SWITCH", "RISK_ACCOUNT_HALTED"})


@dataclass
class _Live:
    row_id: str
    user_id: int
    runner: StrategyRunner
    account: OmsAccount
    aggregators: dict[str, IntervalBars]
    paused: bool = False
    model: str | None = None  # the registered model it trades (ml_signal)
    interval: str = "1m"
    bars: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class DeploymentManager:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        bus: EventBus | None,
        feed: Feed | None,
        paper: Any,
        store: BarStore,
        oms: Oms,
        alerts: AlertSink | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.bus = bus
        self.feed = feed
        self.paper = paper
        self.store = store
        self.oms = oms
        self.alerts = alerts
        self.live: dict[str, _Live] = {}
        self.signals = ModelSignals(settings, store, alerts)
        self.quote_bars: dict[str, QuoteBars] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: contextlib.AbstractAsyncContextManager[Subscription] | None = None
        self.restored = asyncio.Event()
        """Set once the deployments left running have been restarted."""

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Hook into the feed and restart the deployments left running or paused."""
        if isinstance(self.feed, ReplayFeed):
            self.feed.bar_listeners.append(self.on_replay_bars)
        elif self.bus is not None:
            # Quotes from this process's feed or, over Redis, another process's.
            self._subscription = self.bus.subscribe(patterns=[f"{QUOTES_CHANNEL_PREFIX}*"])
            sub = await self._subscription.__aenter__()
            self._tasks.append(asyncio.create_task(self._quotes(sub), name="deploy-quotes"))
            self._tasks.append(asyncio.create_task(self._flush_minutes(), name="deploy-flush"))
        self._tasks.append(asyncio.create_task(self._restore(), name="deploy-restore"))

    async def _restore(self) -> None:
        """Restart the deployments left running or paused; retried while the database is
        unreachable (the server starts anyway)."""
        while True:
            try:
                async with self.sessions() as db:
                    rows = list(
                        (
                            await db.execute(
                                select(DeploymentRow).where(DeploymentRow.status.in_(ACTIVE))
                            )
                        ).scalars()
                    )
                break
            except Exception as exc:
                log.warning("deployments_restore_waiting", error=repr(exc))
                await asyncio.sleep(5.0)
        for row in rows:
            if row.id in self.live:
                continue
            try:
                await self._launch(row)
            except Exception as exc:  # a deployment that cannot restart fails alone
                await self._fail(row.id, "DEPLOYMENT_RESTART_FAILED", repr(exc), None)
        if rows:
            log.info("deployments_restored", count=len(rows))
        self.restored.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._subscription is not None:
            await self._subscription.__aexit__(None, None, None)
            self._subscription = None
        if isinstance(self.feed, ReplayFeed) and self.on_replay_bars in self.feed.bar_listeners:
            self.feed.bar_listeners.remove(self.on_replay_bars)
        self.live.clear()
        try:
            await asyncio.to_thread(self.signals.close)
        except Exception as exc:  # a failed write must not block the shutdown
            log.error("model_signals_flush_failed", error=repr(exc))

    # --- commands -----------------------------------------------------------------------------

    async def create(
        self,
        db: AsyncSession,
        user_id: int,
        strategy: str,
        *,
        symbols: Sequence[str],
        interval: str,
        params: dict[str, Any],
        actor: audit.Actor,
    ) -> DeploymentRow:
        """Validate everything, store the deployment and start it; a 4xx changes nothing."""
        registry = Registry(self.settings.resolved_strategy_dir)
        try:
            cls = registry.get(strategy)
            parsed = cls(params).params
        except UnknownStrategy as exc:
            raise NotFound(str(exc), code=exc.code, details={"known": exc.known}) from exc
        except InvalidParams as exc:
            raise ValidationFailed(str(exc), code=exc.code, details={"errors": exc.errors}) from exc
        if interval not in INTERVALS:
            raise ValidationFailed(
                f"interval must be one of {', '.join(INTERVALS)}", code="DEPLOYMENT_BAD_INTERVAL"
            )
        for symbol in symbols:
            try:
                await self.oms.spec(db, symbol)
            except Exception as exc:
                raise ValidationFailed(
                    f"unknown instrument {symbol}", code="DEPLOYMENT_UNKNOWN_SYMBOL"
                ) from exc
        now = datetime.now(UTC)
        row = DeploymentRow(
            id=uuid.uuid4().hex,
            user_id=user_id,
            strategy=strategy,
            params=parsed.model_dump(mode="json"),
            symbols=list(symbols),
            interval=interval,
            status=DeploymentStatus.RUNNING.value,
            seq=0,
            bars=0,
            error=None,
            created_at=now,
            updated_at=now,
        )
        db.add(row)
        audit.record(
            db,
            actor,
            "deployment.create",
            target_type="deployment",
            target_id=row.id,
            changes={"strategy": strategy, "symbols": list(symbols), "interval": interval},
        )
        await db.commit()
        try:
            await self._launch(row)
        except Exception as exc:
            await self._fail(row.id, "DEPLOYMENT_START_FAILED", repr(exc), traceback.format_exc())
        await db.refresh(row)
        return row

    async def change(
        self, db: AsyncSession, row: DeploymentRow, action: str, actor: audit.Actor
    ) -> DeploymentRow:
        """``pause``, ``resume`` or ``stop``."""
        final = (DeploymentStatus.STOPPED.value, DeploymentStatus.FAILED.value)
        if row.status in final:
            raise Conflict(
                f"the deployment is {row.status}", code="DEPLOYMENT_ENDED", details={"id": row.id}
            )
        target = {
            "pause": DeploymentStatus.PAUSED,
            "resume": DeploymentStatus.RUNNING,
            "stop": DeploymentStatus.STOPPED,
        }[action]
        live = self.live.get(row.id)
        if live is not None:
            async with live.lock:
                live.paused = target is DeploymentStatus.PAUSED
                if target is DeploymentStatus.STOPPED:
                    self._end(row.id)
        elif target is DeploymentStatus.RUNNING:
            row.status = target.value
            await self._launch(row)
        row.status = target.value
        row.updated_at = datetime.now(UTC)
        audit.record(db, actor, f"deployment.{action}", target_type="deployment", target_id=row.id)
        await db.commit()
        return row

    # --- running ------------------------------------------------------------------------------

    async def _launch(self, row: DeploymentRow) -> None:
        registry = Registry(self.settings.resolved_strategy_dir)
        strategy = registry.get(row.strategy)(row.params)
        async with self.sessions() as db:
            specs: dict[str, InstrumentSpec] = {s: await self.oms.spec(db, s) for s in row.symbols}
        calendar = get_calendar(exchange_of(row.symbols[0]))
        account = OmsAccount(
            self.sessions, self.oms, user_id=row.user_id, deployment_id=row.id, paper=self.paper
        )
        model = model_of(row.strategy, row.params)
        if model is not None:
            await asyncio.to_thread(self.signals.attach, model, row.interval, row.user_id)
        runner = StrategyRunner(
            strategy,
            symbols=row.symbols,
            interval=row.interval,
            account=account,
            specs=specs,
            id_prefix=deployment_prefix(row.id),
            tz=calendar.tz,
            signals=None if model is None else self.signals.reader(model, row.interval),
        )
        await runner.start(seq=row.seq)
        live = _Live(
            row.id,
            row.user_id,
            runner,
            account,
            {s: IntervalBars(s, row.interval, calendar) for s in row.symbols},
            paused=row.status == DeploymentStatus.PAUSED.value,
            bars=row.bars,
            model=model,
            interval=row.interval,
        )
        self.live[row.id] = live
        log.info("deployment_started", id=row.id, strategy=row.strategy, symbols=row.symbols)

    def _end(self, row_id: str) -> None:
        live = self.live.pop(row_id, None)
        if live is not None:
            with contextlib.suppress(Exception):
                live.runner.stop()

    async def _fail(self, row_id: str, code: str, message: str, trace: str | None) -> None:
        live = self.live.get(row_id)
        self._end(row_id)
        status = DeploymentStatus.STOPPED if code in RISK_STOP_CODES else DeploymentStatus.FAILED
        async with self.sessions() as db:
            row = await db.get(DeploymentRow, row_id)
            if row is None:
                return
            row.status = status.value
            row.error = {"code": code, "message": message, **({"trace": trace} if trace else {})}
            row.updated_at = datetime.now(UTC)
            await db.commit()
            user_id = row.user_id
        log.warning("deployment_stopped", id=row_id, code=code, message=message)
        if self.alerts is not None:
            self.alerts.notify(
                Alert(
                    AlertKind.RISK_HALT if code in RISK_STOP_CODES else AlertKind.SYSTEM_ERROR,
                    Severity.WARNING if code in RISK_STOP_CODES else Severity.ERROR,
                    f"Strategy deployment {status.value}",
                    f"{row_id[:8]}: {message}",
                    live.user_id if live is not None else user_id,
                    dedup_key=f"deployment:{row_id}",
                )
            )

    async def _blocked(self, user_id: int) -> str | None:
        """The code of a kill switch or halt that stops this account's deployments."""
        async with self.sessions() as db:
            glob = await get_state(db, GLOBAL_SCOPE)
            mine = await get_state(db, user_scope(user_id))
        if glob.kill_engaged or mine.kill_engaged:
            return "RISK_KILL_SWITCH"
        day = trade_date(self.oms.clock())
        if mine.halt_kind is not None and (mine.halted_on(day) or mine.halt_kind == "drawdown"):
            return "RISK_ACCOUNT_HALTED"
        return None

    async def deliver(self, bars: Sequence[Bar], end: datetime | None = None) -> None:
        """One-minute bars of one bar time to every deployment trading their symbols."""
        for live in list(self.live.values()):
            closed: list[LiveBar] = []
            for bar in bars:
                agg = live.aggregators.get(bar.symbol)
                if agg is not None:
                    closed.extend(agg.add(bar, end))
            if not closed:
                continue
            await self._run(live, closed)

    async def _run(self, live: _Live, closed: list[LiveBar]) -> None:
        async with live.lock:
            if live.row_id not in self.live:
                return
            if live.model is not None:  # the model sees each bar before the strategy
                self.signals.feed(live.model, live.interval, closed)
            if live.paused:
                live.runner.warm_up(closed)  # indicators keep up; no callbacks, no orders
                return
            blocked = await self._blocked(live.user_id)
            if blocked is not None:
                await self._fail(live.row_id, blocked, "stopped by the risk controls", None)
                return
            by_time: dict[datetime, list[LiveBar]] = {}
            for bar in closed:
                by_time.setdefault(bar.time, []).append(bar)
            try:
                for moment in sorted(by_time):
                    await live.runner.on_bars(by_time[moment])
                    live.bars += 1
            except Exception as exc:
                await self._fail(
                    live.row_id,
                    "STRATEGY_FAILED",
                    f"{type(exc).__name__}: {exc}",
                    traceback.format_exc(),
                )
                return
            refused = set(live.account.refusals) & RISK_STOP_CODES
            live.account.refusals.clear()
            if refused:
                await self._fail(
                    live.row_id, sorted(refused)[0], "refused by the risk controls", None
                )
                return
            async with self.sessions() as db:
                row = await db.get(DeploymentRow, live.row_id)
                if row is not None:
                    row.seq = live.runner.seq
                    row.bars = live.bars
                    row.updated_at = datetime.now(UTC)
                    await db.commit()

    async def on_replay_bars(self, bars: list[Bar], end: datetime) -> None:
        if not self.live:
            return
        if self.paper is not None:
            await self._paper_caught_up(bars)
        await self.deliver(bars, end)

    async def _paper_caught_up(self, bars: list[Bar]) -> None:
        """Wait until the paper broker matched this bar time's quotes (its fills are in)."""
        wanted = {b.symbol for b in bars} & {s for lv in self.live.values() for s in lv.aggregators}
        feed = self.feed
        last = feed.last_quote_time if isinstance(feed, ReplayFeed) else None
        target = last if last is not None else max(b.ts for b in bars)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CAUGHT_UP_SECONDS
        while loop.time() < deadline:
            seen = self.paper.last
            if all(s in seen and seen[s].ts >= target for s in wanted):
                async with self.paper._lock:  # a quote being matched finishes first
                    return
            await asyncio.sleep(0.002)
        log.warning("deployment_paper_lagging", symbols=sorted(wanted))

    # --- bars from quotes (feeds without bars) ------------------------------------------------

    async def _quotes(self, sub: Subscription) -> None:
        async for channel, message in sub:
            try:
                quote = Quote.from_json(message)
                builder = self.quote_bars.setdefault(quote.symbol, QuoteBars(quote.symbol))
                bar = builder.add(quote)
                if bar is not None:
                    await self.deliver([bar])
            except Exception as exc:  # one bad quote must not stop the deployments
                log.error("deployment_quote_failed", channel=channel, error=repr(exc))

    async def _flush_minutes(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = datetime.now(UTC) - timedelta(seconds=2)
            done = [b for b in (q.flush(now) for q in self.quote_bars.values()) if b is not None]
            if done:
                try:
                    await self.deliver(done)
                except Exception as exc:
                    log.error("deployment_flush_failed", error=repr(exc))


def calendar_of(symbol: str) -> ExchangeCalendar:
    return get_calendar(exchange_of(symbol))
