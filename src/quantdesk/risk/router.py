"""Risk endpoints: limits (platform defaults and per-account overrides), the risk state, kill
switches and re-arming a halted account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from quantdesk.api.deps import (
    AdminUser,
    CurrentUser,
    SessionDep,
    StateDep,
    TraderUser,
    own_or_admin,
    user_actor,
)
from quantdesk.auth.models import User
from quantdesk.auth.roles import Role
from quantdesk.auth.users import get_user
from quantdesk.errors import AppError, Conflict, Forbidden
from quantdesk.openapi import error_responses
from quantdesk.orders.service import trade_date
from quantdesk.risk import service
from quantdesk.risk.control import RiskControl
from quantdesk.risk.models import DEFAULT_SCOPE, GLOBAL_SCOPE, RiskLimitsRow, user_scope
from quantdesk.risk.schemas import (
    AccountLimitsOut,
    KillSwitchIn,
    KillSwitchOut,
    LimitsIn,
    LimitsOut,
    RearmIn,
    RiskStateOut,
    StateOut,
)

router = APIRouter(prefix="/risk", tags=["risk"])

UserQuery = Annotated[
    int | None,
    Query(ge=1, le=2_147_483_647, description="Admin only: another user's (default: your own)"),
]
ScopeUser = Annotated[
    int | None,
    Query(
        ge=1,
        le=2_147_483_647,
        description="The account whose override to set; omitted: the platform defaults",
    ),
]


def get_control(state: StateDep) -> RiskControl:
    control = state.extras.get("risk")
    if not isinstance(control, RiskControl):  # pragma: no cover - the lifespan always sets it
        raise AppError("Risk controls are not running.", code="RISK_UNAVAILABLE", status_code=503)
    return control


ControlDep = Annotated[RiskControl, Depends(get_control)]


def _whose(user: User, user_id: int | None) -> int:
    return own_or_admin(user, user_id, code="RISK_OTHER_USER", what="risk settings")


async def _require_user(db: SessionDep, user_id: int) -> None:
    await get_user(db, user_id)  # 404 USER_NOT_FOUND


@router.get(
    "/limits",
    response_model=AccountLimitsOut,
    responses=error_responses(401, 403, 404, 422),
    summary="Your risk limits: the effective ones, the platform defaults and your override",
)
async def read_limits(
    db: SessionDep, user: CurrentUser, user_id: UserQuery = None
) -> AccountLimitsOut:
    uid = _whose(user, user_id)
    await _require_user(db, uid)
    defaults = await service.get_limits(db, DEFAULT_SCOPE)
    row = await db.get(RiskLimitsRow, user_scope(uid))
    override = service.limits_of(row) if row is not None else None
    return AccountLimitsOut(
        user_id=uid,
        effective=LimitsOut.of(await service.effective_limits(db, uid)),
        defaults=LimitsOut.of(defaults),
        override=None if override is None else LimitsOut.of(override),
    )


@router.put(
    "/limits",
    response_model=AccountLimitsOut,
    responses=error_responses(400, 401, 403, 404, 422),
    summary="Set the platform default limits, or one account's override (admin)",
    description="Replaces every limit of the scope: a field left out or null is no limit (for "
    "the defaults) or the default (for an account). Audited as `risk.limits`. Bad values "
    "(zero, negative, over 100%, unknown exchange or product, unknown fields) are a 422 and "
    "change nothing.",
)
async def write_limits(
    body: LimitsIn, request: Request, db: SessionDep, admin: AdminUser, user_id: ScopeUser = None
) -> AccountLimitsOut:
    if user_id is not None:
        await _require_user(db, user_id)
    scope = DEFAULT_SCOPE if user_id is None else user_scope(user_id)
    actor = user_actor(request, admin)
    now = service.utc_now()
    await service.put_limits(db, scope, body.to_limits(), actor=actor, now=now)
    if user_id is None:
        defaults = await service.get_limits(db, DEFAULT_SCOPE)
        return AccountLimitsOut(
            user_id=None,
            effective=LimitsOut.of(defaults),
            defaults=LimitsOut.of(defaults),
            override=None,
        )
    return await read_limits(db, admin, user_id)


async def _state_out(db: SessionDep, uid: int, control: RiskControl) -> RiskStateOut:
    day = trade_date(control.now())
    glob = await service.get_state(db, GLOBAL_SCOPE)
    account = await service.get_state(db, user_scope(uid))
    halted = account.halted_on(day)
    return RiskStateOut(
        user_id=uid,
        global_=StateOut.of(glob, False),
        account=StateOut.of(account, halted),
        trading_allowed=not (glob.kill_engaged or account.kill_engaged or halted),
    )


@router.get(
    "/state",
    response_model=RiskStateOut,
    response_model_by_alias=True,
    responses=error_responses(401, 403, 404, 422),
    summary="Kill switches and halt of your account (and the global switch)",
)
async def read_state(
    db: SessionDep, user: CurrentUser, control: ControlDep, user_id: UserQuery = None
) -> RiskStateOut:
    uid = _whose(user, user_id)
    await _require_user(db, uid)
    return await _state_out(db, uid, control)


@router.post(
    "/kill-switch",
    response_model=KillSwitchOut,
    responses=error_responses(400, 401, 403, 404, 409, 422),
    summary="Engage or release a kill switch",
    description="`scope=global`: admins only. `scope=account`: an admin for any account, a "
    "trader for their own; a trader may release only a switch they engaged themselves. "
    "Engaging cancels every open order in scope (and with `square_off`, closes every position "
    "at market) and refuses new orders (`RISK_KILL_SWITCH`) until released. Persists across "
    "restarts; audited.",
)
async def kill_switch(
    body: KillSwitchIn, request: Request, db: SessionDep, user: TraderUser, control: ControlDep
) -> KillSwitchOut:
    if body.scope == "global":
        if user.role != Role.ADMIN:
            raise Forbidden(
                "Only an admin may engage or release the global kill switch.",
                code="RISK_GLOBAL_KILL_ADMIN_ONLY",
            )
        scope = GLOBAL_SCOPE
    else:
        uid = _whose(user, body.user_id)
        await _require_user(db, uid)
        scope = user_scope(uid)
        current = await service.get_state(db, scope)
        if (
            not body.engaged
            and user.role != Role.ADMIN
            and current.kill_engaged
            and current.kill_by != user.id
        ):
            raise Forbidden(
                "This kill switch was engaged by an admin; only an admin may release it.",
                code="RISK_KILL_SWITCH_LOCKED",
                details={"engaged_by": current.kill_by},
            )
    current = await service.get_state(db, scope)
    if current.kill_engaged == body.engaged:
        raise Conflict(
            f"The kill switch is already {'engaged' if body.engaged else 'released'}.",
            code="RISK_KILL_SWITCH_UNCHANGED",
            details={"scope": scope},
        )
    actor = user_actor(request, user)
    await db.rollback()  # end the read transaction: the switch is set in its own
    state, cancelled, placed = await control.kill_switch(
        scope, engaged=body.engaged, reason=body.reason, actor=actor, square_off=body.square_off
    )
    return KillSwitchOut(
        state=StateOut.of(state, False), cancelled_orders=cancelled, square_off_orders=placed
    )


@router.post(
    "/rearm",
    response_model=RiskStateOut,
    response_model_by_alias=True,
    responses=error_responses(400, 401, 403, 404, 409, 422),
    summary="Re-arm a halted account (admin)",
    description="Clears a daily-loss or drawdown halt; the drawdown peak restarts from the "
    "account's current equity. Audited as `risk.rearm`. `RISK_NOT_HALTED` (409) when it is not "
    "halted.",
)
async def rearm(
    body: RearmIn, request: Request, db: SessionDep, admin: AdminUser, control: ControlDep
) -> RiskStateOut:
    await _require_user(db, body.user_id)
    current = await service.get_state(db, user_scope(body.user_id))
    if current.halt_kind is None:
        raise Conflict(
            "The account is not halted.", code="RISK_NOT_HALTED", details={"user_id": body.user_id}
        )
    figures = await control.figures(db, body.user_id, trade_date(control.now()))
    actor = user_actor(request, admin)
    await db.rollback()
    await service.rearm(db, body.user_id, actor=actor, now=service.utc_now(), equity=figures.equity)
    return await _state_out(db, body.user_id, control)
