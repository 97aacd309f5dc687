"""Risk service: limits (platform defaults and per-account overrides), the pre-trade gate the
OMS calls while placing, kill switches, halts and their re-arm, and the account evaluation the
risk monitor runs (session loss, drawdown from the equity peak).

Concurrency (DESIGN invariant 3 and the kill switch's "nothing slips through"): the OMS calls
:meth:`RiskGate.pre_trade` after locking the account's wallet. Engaging an account's kill
switch (or halting it) locks the same wallet rows first, so a placement either committed before
(and its order is cancelled by the engage that follows) or sees the switch. The global switch
is one row every placement reads ``FOR SHARE`` (placements do not block each other) and an
engage locks ``FOR UPDATE``. On SQLite the database's single writer serialises both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import structlog
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from quantdesk.core import ledger
from quantdesk.core.orders import LIVE_STATUSES, Order, Side
from quantdesk.core.risk import (
    LIMIT_FIELDS,
    HaltKind,
    OrderContext,
    RiskLimits,
    RiskViolation,
    check_order,
)
from quantdesk.errors import AppError, Conflict, TooManyRequests, ValidationFailed
from quantdesk.observability import audit
from quantdesk.orders.models import OrderRow, PositionRow
from quantdesk.risk.models import (
    DEFAULT_SCOPE,
    GLOBAL_SCOPE,
    RiskLimitsRow,
    RiskStateRow,
    user_scope,
)
from quantdesk.wallet.models import AccountBalance

log = structlog.get_logger("quantdesk.risk")

_ZERO: Final = Decimal(0)
_LIVE: Final = tuple(s.value for s in LIVE_STATUSES)
_LISTS: Final = ("allowed_exchanges", "allowed_products")
# Limits that concern the order itself (422) rather than the account's state (409), and rate.
_SHAPE: Final = {
    "RISK_EXCHANGE_NOT_ALLOWED",
    "RISK_PRODUCT_NOT_ALLOWED",
    "RISK_MAX_ORDER_QUANTITY",
    "RISK_MAX_ORDER_VALUE",
    "RISK_FAT_FINGER",
}


# The latest marks of some symbols (the OMS's quote cache, else the last close).
MarksOf = Callable[[AsyncSession, Sequence[str]], Awaitable[Mapping[str, Decimal]]]


def risk_error(v: RiskViolation) -> AppError:
    """The API error of a broken limit: 422 for the order's own shape, 429 for the order rate,
    409 for the account's position, exposure or open orders."""
    if v.code == "RISK_ORDER_RATE":
        return TooManyRequests(v.message, code=v.code, details=v.details)
    if v.code in _SHAPE:
        return ValidationFailed(v.message, code=v.code, details=v.details)
    return Conflict(v.message, code=v.code, details=v.details)


# --- limits -----------------------------------------------------------------------------------


def limits_of(row: RiskLimitsRow | None) -> RiskLimits:
    if row is None:
        return RiskLimits()
    values: dict[str, Any] = {f: getattr(row, f) for f in LIMIT_FIELDS}
    for f in _LISTS:
        if values[f] is not None:
            values[f] = frozenset(x for x in values[f].split(",") if x)
    return RiskLimits(**values)


def _column_value(field: str, value: Any) -> Any:
    if field in _LISTS and value is not None:
        return ",".join(sorted(value))
    return value


async def get_limits(db: AsyncSession, scope: str) -> RiskLimits:
    return limits_of(await db.get(RiskLimitsRow, scope, populate_existing=True))


async def effective_limits(db: AsyncSession, user_id: int) -> RiskLimits:
    rows = (
        await db.execute(
            select(RiskLimitsRow).where(
                RiskLimitsRow.scope.in_([DEFAULT_SCOPE, user_scope(user_id)])
            )
        )
    ).scalars()
    by_scope = {r.scope: limits_of(r) for r in rows}
    default = by_scope.get(DEFAULT_SCOPE, RiskLimits())
    return by_scope.get(user_scope(user_id), RiskLimits()).over(default)


async def put_limits(
    db: AsyncSession,
    scope: str,
    limits: RiskLimits,
    *,
    actor: audit.Actor,
    now: datetime,
) -> RiskLimits:
    """Replace a scope's limits (every field; None clears it); audited; commits."""
    row = await db.get(RiskLimitsRow, scope, with_for_update=True)
    before = limits_of(row)
    if row is None:
        row = RiskLimitsRow(scope=scope, updated_at=now)
        db.add(row)
    for f in LIMIT_FIELDS:
        setattr(row, f, _column_value(f, getattr(limits, f)))
    row.updated_at, row.updated_by = now, actor.user_id
    audit.record(
        db,
        actor,
        "risk.limits",
        target_type="risk_limits",
        target_id=scope,
        changes={
            f: {"from": _jsonable(getattr(before, f)), "to": _jsonable(getattr(limits, f))}
            for f in LIMIT_FIELDS
            if getattr(before, f) != getattr(limits, f)
        },
        at=now,
    )
    await db.commit()
    return limits


def _jsonable(value: Any) -> Any:
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


# --- state --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiskState:
    scope: str
    kill_engaged: bool
    kill_reason: str | None
    kill_by: int | None
    kill_at: datetime | None
    halt_kind: str | None
    halt_reason: str | None
    halted_at: datetime | None
    halt_day: date | None

    @classmethod
    def of(cls, row: RiskStateRow | None, scope: str) -> RiskState:
        if row is None:
            return cls(scope, False, None, None, None, None, None, None, None)
        return cls(
            scope,
            row.kill_engaged,
            row.kill_reason,
            row.kill_by,
            row.kill_at,
            row.halt_kind,
            row.halt_reason,
            row.halted_at,
            row.halt_day,
        )

    def halted_on(self, day: date) -> bool:
        """A drawdown halt holds until re-armed; a daily-loss halt only on its own day."""
        if self.halt_kind == HaltKind.DRAWDOWN:
            return True
        return self.halt_kind == HaltKind.DAILY_LOSS and self.halt_day == day


async def get_state(db: AsyncSession, scope: str) -> RiskState:
    return RiskState.of(await db.get(RiskStateRow, scope, populate_existing=True), scope)


async def _locked_state(db: AsyncSession, scope: str, now: datetime) -> RiskStateRow:
    insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    await db.execute(
        insert(RiskStateRow)
        .values(scope=scope, kill_engaged=False, updated_at=now)
        .on_conflict_do_nothing()
    )
    q = (
        select(RiskStateRow)
        .where(RiskStateRow.scope == scope)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await db.execute(q)).scalar_one()


async def lock_account(db: AsyncSession, user_id: int, currency: str, now: datetime) -> None:
    """Take the locks a placement takes on the account (its wallet rows), so a change of the
    account's risk state serialises with placements."""
    from quantdesk.wallet import service as wallet_service

    keys = [(ledger.user_cash(user_id), currency), (ledger.user_held(user_id), currency)]
    await wallet_service.lock_balances(db, keys, at=now)


async def set_kill_switch(
    db: AsyncSession,
    scope: str,
    *,
    engaged: bool,
    reason: str,
    actor: audit.Actor,
    now: datetime,
) -> RiskState:
    """Engage or release a kill switch (``global`` or ``user:<id>``); audited; commits. The
    caller cancels the open orders after the commit (an order placed before it is visible
    then; one placed after it is refused)."""
    if scope != GLOBAL_SCOPE:
        await lock_account(db, int(scope.split(":")[1]), "INR", now)
    row = await _locked_state(db, scope, now)
    row.kill_engaged = engaged
    row.kill_reason, row.kill_by, row.kill_at = reason, actor.user_id, now
    row.updated_at = now
    audit.record(
        db,
        actor,
        "risk.kill_switch.engage" if engaged else "risk.kill_switch.release",
        target_type="risk_state",
        target_id=scope,
        changes={"engaged": engaged, "reason": reason},
        at=now,
    )
    await db.commit()
    log.warning("kill_switch", scope=scope, engaged=engaged, reason=reason, by=actor.user_id)
    return RiskState.of(row, scope)


async def halt(
    db: AsyncSession,
    user_id: int,
    kind: HaltKind,
    reason: str,
    *,
    day: date,
    now: datetime,
) -> bool:
    """Halt an account (idempotent: False when it already was, for this kind and day);
    audited as the system; commits."""
    scope = user_scope(user_id)
    await lock_account(db, user_id, "INR", now)
    row = await _locked_state(db, scope, now)
    if RiskState.of(row, scope).halted_on(day):
        await db.rollback()
        return False
    row.halt_kind, row.halt_reason, row.halted_at, row.halt_day = kind.value, reason, now, day
    row.updated_at = now
    audit.record(
        db,
        audit.Actor(None, "system:risk", None, None),
        "risk.halt",
        target_type="risk_state",
        target_id=scope,
        changes={"kind": kind.value, "reason": reason, "day": day.isoformat()},
        at=now,
    )
    await db.commit()
    log.warning("risk_halt", user_id=user_id, kind=kind.value, reason=reason)
    return True


async def rearm(
    db: AsyncSession, user_id: int, *, actor: audit.Actor, now: datetime, equity: Decimal | None
) -> RiskState:
    """Clear an account's halt (an admin's decision); the drawdown peak restarts from the
    current equity; audited; commits."""
    scope = user_scope(user_id)
    row = await _locked_state(db, scope, now)
    before = row.halt_kind
    row.halt_kind = row.halt_reason = row.halted_at = row.halt_day = None
    if equity is not None:
        row.peak_equity = equity
        row.peak_flows = await net_flows(db, user_id)
    row.updated_at = now
    audit.record(
        db,
        actor,
        "risk.rearm",
        target_type="risk_state",
        target_id=scope,
        changes={"halt_kind": before},
        at=now,
    )
    await db.commit()
    return RiskState.of(row, scope)


async def net_flows(db: AsyncSession, user_id: int) -> Decimal:
    """Net cash brought in from outside by the user (deposits less withdrawals), all time."""
    from quantdesk.wallet.models import JournalEntryRow, PostingRow

    q = (
        select(func.coalesce(func.sum(PostingRow.amount), 0))
        .join(JournalEntryRow, JournalEntryRow.id == PostingRow.entry_id)
        .where(
            PostingRow.account == ledger.user_cash(user_id),
            JournalEntryRow.kind.in_([ledger.EntryKind.DEPOSIT, ledger.EntryKind.WITHDRAWAL]),
        )
    )
    return Decimal((await db.execute(q)).scalar_one())


# --- the pre-trade gate -------------------------------------------------------------------------


class RiskGate:
    """What the OMS asks before accepting an order (called with the account's wallet locked).

    ``on_reject`` (optional) hears each rejection's code: metrics."""

    def __init__(self, on_reject: Callable[[str], None] | None = None) -> None:
        self.on_reject = on_reject

    async def pre_trade(
        self,
        db: AsyncSession,
        user_id: int,
        order: Order,
        *,
        value: Decimal,
        reference: Decimal | None,
        marks: MarksOf,
        now: datetime,
        day: date,
    ) -> None:
        """Refuse (AppError with a ``RISK_...`` code) an order the kill switches, a halt or a
        limit forbid."""
        try:
            await self._switches_and_halt(db, user_id, day)
            await self._limits(db, user_id, order, value, reference, marks, now)
        except AppError as exc:
            if self.on_reject is not None:
                self.on_reject(exc.code)
            raise

    @staticmethod
    async def _switches_and_halt(db: AsyncSession, user_id: int, day: date) -> None:
        glob = (
            await db.execute(
                select(RiskStateRow)
                .where(RiskStateRow.scope == GLOBAL_SCOPE)
                .with_for_update(read=True)
            )
        ).scalar_one_or_none()
        if glob is not None and glob.kill_engaged:
            raise Conflict(
                f"Trading is stopped by the global kill switch: {glob.kill_reason}",
                code="RISK_KILL_SWITCH",
                details={"scope": GLOBAL_SCOPE, "reason": glob.kill_reason},
            )
        account = await get_state(db, user_scope(user_id))
        if account.kill_engaged:
            raise Conflict(
                f"Trading is stopped on this account by its kill switch: {account.kill_reason}",
                code="RISK_KILL_SWITCH",
                details={"scope": account.scope, "reason": account.kill_reason},
            )
        if account.halted_on(day):
            raise Conflict(
                f"The account is halted ({account.halt_kind}): {account.halt_reason}",
                code="RISK_ACCOUNT_HALTED",
                details={"kind": account.halt_kind, "reason": account.halt_reason},
            )

    @staticmethod
    async def _limits(
        db: AsyncSession,
        user_id: int,
        order: Order,
        value: Decimal,
        reference: Decimal | None,
        marks: MarksOf,
        now: datetime,
    ) -> None:
        limits = await effective_limits(db, user_id)
        if limits == RiskLimits() or all(
            getattr(limits, f) is None for f in LIMIT_FIELDS if f != "square_off_on_halt"
        ):
            return
        positions = (
            (await db.execute(select(PositionRow).where(PositionRow.user_id == user_id)))
            .scalars()
            .all()
        )
        net: dict[str, int] = {}
        for p in positions:
            net[p.symbol] = net.get(p.symbol, 0) + p.quantity
        signed = order.quantity if order.side is Side.BUY else -order.quantity
        net[order.symbol] = net.get(order.symbol, 0) + signed
        price_of = dict(await marks(db, sorted(net)))
        if order.symbol not in price_of and order.quantity:
            price_of[order.symbol] = value / order.quantity
        gross = sum((abs(q) * price_of.get(s, _ZERO) for s, q in net.items()), _ZERO)
        open_orders = (
            await db.execute(
                select(func.count()).where(OrderRow.user_id == user_id, OrderRow.status.in_(_LIVE))
            )
        ).scalar_one()
        recent = (
            await db.execute(
                select(func.count()).where(
                    OrderRow.user_id == user_id,
                    OrderRow.created_at > now - timedelta(minutes=1),
                )
            )
        ).scalar_one()
        ctx = OrderContext(
            exchange=order.symbol.partition(":")[0],
            product=order.product.value,
            quantity=order.quantity,
            limit_price=order.limit_price,
            value=value,
            reference=reference,
            position_value=abs(net[order.symbol]) * price_of.get(order.symbol, _ZERO),
            gross_exposure=gross,
            open_orders=int(open_orders),
            orders_last_minute=int(recent),
        )
        try:
            check_order(limits, ctx)
        except RiskViolation as v:
            raise risk_error(v) from v


# --- evaluation (the monitor) -------------------------------------------------------------------


async def users_to_watch(db: AsyncSession) -> Sequence[int]:
    """Users with a position row or a wallet: everyone who could lose money."""
    users = {uid for (uid,) in (await db.execute(select(PositionRow.user_id).distinct())).all()}
    accounts = (
        await db.execute(
            select(AccountBalance.account).where(AccountBalance.account.like("user:%:cash"))
        )
    ).scalars()
    for account in accounts:
        users.add(int(account.split(":")[1]))
    return sorted(users)


def utc_now() -> datetime:
    return datetime.now(UTC)
