"""Risk actions that move orders: kill switches (engage: cancel every open order in scope, and
optionally square off), halts from the risk monitor (daily loss, drawdown), and the monitor's
loop. The decisions are :mod:`quantdesk.core.risk`; the state is :mod:`quantdesk.risk.service`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from quantdesk.core.orders import LIVE_STATUSES, OrderType, Product, Side, TimeInForce
from quantdesk.core.risk import HaltKind, drawdown_pct, loss_breached
from quantdesk.errors import AppError
from quantdesk.observability import audit
from quantdesk.orders.models import OrderRow, TradeRow
from quantdesk.orders.service import Oms, PlaceRequest, trade_date
from quantdesk.risk import service as risk
from quantdesk.risk.models import GLOBAL_SCOPE, RiskStateRow, user_scope
from quantdesk.wallet import service as wallet_service

log = structlog.get_logger("quantdesk.risk")

SYSTEM: Final = audit.Actor(None, "system:risk", None, None)
_IST: Final = ZoneInfo("Asia/Kolkata")
_ZERO: Final = Decimal(0)
_LIVE: Final = tuple(s.value for s in LIVE_STATUSES)

# (kind, title, body, user_id or None, dedup key): the alerts hook.
Notify = Callable[[str, str, str, int | None, str], None]


@dataclass(frozen=True, slots=True)
class Figures:
    """An account's session P&L (today's change in value, net of today's charges), equity (cash
    plus positions at their marks) and net deposits."""

    session_pnl: Decimal
    equity: Decimal
    flows: Decimal


class RiskControl:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        oms: Oms,
        *,
        notify: Notify | None = None,
        on_halt: Callable[[str], None] | None = None,
        on_kill_switch: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.oms = oms
        self.notify = notify
        self.on_halt = on_halt
        self.on_kill_switch = on_kill_switch
        self._task: asyncio.Task[None] | None = None

    def now(self) -> datetime:
        return self.oms.clock()

    # --- kill switches ------------------------------------------------------------------------

    async def kill_switch(
        self,
        scope: str,
        *,
        engaged: bool,
        reason: str,
        actor: audit.Actor,
        square_off: bool = False,
    ) -> tuple[risk.RiskState, int, int]:
        """Engage (cancel every open order in scope, square off if asked) or release a kill
        switch; (state, orders cancelled, square-off orders placed)."""
        async with self.sessions() as db:
            state = await risk.set_kill_switch(
                db, scope, engaged=engaged, reason=reason, actor=actor, now=self.now()
            )
        if self.on_kill_switch is not None:
            self.on_kill_switch(scope, engaged)
        cancelled = placed = 0
        if engaged:
            user_id = None if scope == GLOBAL_SCOPE else int(scope.split(":")[1])
            cancelled = await self.cancel_open(user_id, f"kill switch: {reason}")
            if square_off:
                for uid in [user_id] if user_id is not None else await self._users_with_positions():
                    placed += await self.square_off(uid, f"kill switch: {reason}")
            self._notify(
                "kill_switch",
                f"Kill switch engaged ({scope})",
                f"{reason}. Cancelled {cancelled} open orders"
                + (f", placed {placed} square-off orders." if square_off else "."),
                user_id,
                f"kill:{scope}",
            )
        return state, cancelled, placed

    async def cancel_open(self, user_id: int | None, reason: str) -> int:
        """Cancel every live order (of one user, or everyone's); how many were cancelled."""
        async with self.sessions() as db:
            q = select(OrderRow.id).where(OrderRow.status.in_(_LIVE))
            if user_id is not None:
                q = q.where(OrderRow.user_id == user_id)
            ids = list((await db.execute(q)).scalars())
        done = 0
        for order_id in ids:
            try:
                async with self.sessions() as db:
                    await self.oms.cancel(db, order_id, owner_id=None, actor=SYSTEM, reason=reason)
                done += 1
            except AppError:  # filled or ended meanwhile
                continue
        return done

    async def square_off(self, user_id: int, reason: str) -> int:
        """Close every open position of ``user_id`` at market (system orders, no risk checks);
        how many orders were placed."""
        async with self.sessions() as db:
            views = await self.oms.positions(db, user_id)
        stamp = self.now().strftime("%Y%m%dT%H%M%S")
        placed = 0
        for view in views:
            p = view.row
            if p.quantity == 0 or (p.product == Product.CNC.value and p.quantity < 0):
                continue
            req = PlaceRequest(
                p.symbol,
                Side.SELL if p.quantity > 0 else Side.BUY,
                OrderType.MARKET,
                abs(p.quantity),
                Product(p.product),
                TimeInForce.DAY,
                client_order_id=f"risk:{stamp}:{p.product}:{p.symbol}"[:64],
            )
            try:
                async with self.sessions() as db:
                    await self.oms.place(db, user_id, req, actor=SYSTEM, system=True)
                placed += 1
            except AppError as exc:
                log.error(
                    "risk_square_off_failed", user_id=user_id, symbol=p.symbol, error=exc.code
                )
        log.warning("risk_square_off", user_id=user_id, orders=placed, reason=reason)
        return placed

    async def _users_with_positions(self) -> list[int]:
        from quantdesk.orders.models import PositionRow

        async with self.sessions() as db:
            q = select(PositionRow.user_id).where(PositionRow.quantity != 0).distinct()
            return sorted(uid for (uid,) in (await db.execute(q)).all())

    # --- the monitor --------------------------------------------------------------------------

    async def figures(self, db: AsyncSession, user_id: int, day: date) -> Figures:
        views = await self.oms.positions(db, user_id)
        start = datetime.combine(day, datetime.min.time(), _IST).astimezone(UTC)
        fees = (
            await db.execute(
                select(func.coalesce(func.sum(TradeRow.fees), 0)).where(
                    TradeRow.user_id == user_id,
                    TradeRow.at >= start,
                    TradeRow.at < start + timedelta(days=1),
                )
            )
        ).scalar_one()
        session = sum((v.day_pnl or _ZERO for v in views), _ZERO) - Decimal(fees)
        wallet = (await wallet_service.wallet(db, user_id))["INR"]
        held_value = _ZERO
        for v in views:
            mark = v.mark
            if mark is None or v.row.quantity == 0:
                continue
            if v.row.product == Product.MIS.value:
                held_value += v.row.quantity * mark - v.row.open_cost
            else:
                held_value += v.row.quantity * mark
        return Figures(session, wallet.total + held_value, await risk.net_flows(db, user_id))

    async def evaluate(self, user_id: int) -> HaltKind | None:
        """Check one account's session loss and drawdown; halt it (cancel its orders, square
        off when its limits say so, alert) on a breach; the kind of halt started, if any."""
        now = self.now()
        day = trade_date(now)
        async with self.sessions() as db:
            limits = await risk.effective_limits(db, user_id)
            if limits.daily_loss_limit is None and limits.max_drawdown_pct is None:
                return None
            fig = await self.figures(db, user_id, day)
            state_row = await db.get(RiskStateRow, user_scope(user_id), populate_existing=True)
            state = risk.RiskState.of(state_row, user_scope(user_id))
            peak, peak_flows = (
                (state_row.peak_equity, state_row.peak_flows)
                if state_row is not None and state_row.peak_equity is not None
                else (None, None)
            )
        kind: HaltKind | None = None
        reason = ""
        if loss_breached(fig.session_pnl, limits.daily_loss_limit) and not state.halted_on(day):
            kind = HaltKind.DAILY_LOSS
            reason = (
                f"session P&L {fig.session_pnl.quantize(Decimal('0.01'))} is below the daily "
                f"loss limit of -{limits.daily_loss_limit}"
            )
        adjusted = fig.equity if peak_flows is None else fig.equity - (fig.flows - peak_flows)
        if peak is None or adjusted > peak:
            await self._set_peak(user_id, fig.equity, fig.flows, now)
        elif limits.max_drawdown_pct is not None and kind is None:
            dd = drawdown_pct(adjusted, peak)
            if dd > limits.max_drawdown_pct and state.halt_kind != HaltKind.DRAWDOWN:
                kind = HaltKind.DRAWDOWN
                cents = Decimal("0.01")
                reason = (
                    f"equity {adjusted.quantize(cents)} is {dd.quantize(cents)}% below its peak "
                    f"of {peak}; the limit is {limits.max_drawdown_pct}%"
                )
        if kind is None:
            return None
        async with self.sessions() as db:
            started = await risk.halt(db, user_id, kind, reason, day=day, now=now)
        if not started:
            return None
        if self.on_halt is not None:
            self.on_halt(kind.value)
        cancelled = await self.cancel_open(user_id, f"risk halt: {reason}")
        placed = await self.square_off(user_id, reason) if limits.square_off_on_halt else 0
        self._notify(
            "drawdown" if kind is HaltKind.DRAWDOWN else "risk_halt",
            f"Account {user_id} halted: {kind.value}",
            f"{reason}. Cancelled {cancelled} open orders; {placed} square-off orders.",
            user_id,
            f"halt:{user_id}:{kind.value}:{day.isoformat()}",
        )
        return kind

    async def _set_peak(self, user_id: int, equity: Decimal, flows: Decimal, now: datetime) -> None:
        async with self.sessions() as db:
            row = await risk._locked_state(db, user_scope(user_id), now)
            row.peak_equity, row.peak_flows, row.updated_at = equity, flows, now
            await db.commit()

    async def evaluate_all(self) -> int:
        async with self.sessions() as db:
            users = await risk.users_to_watch(db)
        halted = 0
        for uid in users:
            try:
                halted += int(await self.evaluate(uid) is not None)
            except Exception as exc:  # one account's failure must not stop the others
                log.error("risk_evaluate_failed", user_id=uid, error=repr(exc))
        return halted

    def start(self, interval: float) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.evaluate_all()
                except Exception as exc:  # the database is down: next round
                    log.error("risk_monitor_failed", error=repr(exc))

        self._task = asyncio.create_task(loop(), name="risk-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _notify(self, kind: str, title: str, body: str, user_id: int | None, key: str) -> None:
        if self.notify is None:
            return
        try:
            self.notify(kind, title, body, user_id, key)
        except Exception as exc:  # alerts never break risk actions
            log.error("risk_alert_failed", error=repr(exc))
