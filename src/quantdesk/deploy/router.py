"""Deployments API: run a strategy on the paper broker as yourself; pause, resume, stop; see
its orders, fills and P&L."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy import select

from quantdesk.api.deps import CurrentUser, SessionDep, StateDep, TraderUser, user_actor
from quantdesk.auth.models import User
from quantdesk.auth.roles import Role
from quantdesk.core.orders import Side
from quantdesk.core.positions import Fill, Position
from quantdesk.errors import AppError, NotFound
from quantdesk.openapi import error_responses
from quantdesk.orders.models import OrderRow, TradeRow
from quantdesk.wallet.service import money_str

from .account import deployment_prefix
from .manager import DeploymentManager
from .models import DeploymentRow
from .schemas import (
    DeploymentActivityOut,
    DeploymentFillOut,
    DeploymentIn,
    DeploymentListOut,
    DeploymentOut,
)

router = APIRouter(tags=["deployments"])

DeploymentId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The deployment's id")]
StrategyName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,100}$")]


def get_manager(state: StateDep) -> DeploymentManager:
    manager = state.extras.get("deployments")
    if not isinstance(manager, DeploymentManager):
        raise AppError(
            "Strategy deployments do not run in this process (QUANTDESK_PAPER_ENGINE=false).",
            code="DEPLOYMENTS_UNAVAILABLE",
            status_code=503,
        )
    return manager


ManagerDep = Annotated[DeploymentManager, Depends(get_manager)]


async def _visible(db: SessionDep, user: User, deployment_id: str) -> DeploymentRow:
    row = await db.get(DeploymentRow, deployment_id)
    if row is None or (row.user_id != user.id and user.role not in (Role.ADMIN, Role.VIEWER)):
        raise NotFound("No such deployment.", code="DEPLOYMENT_NOT_FOUND")
    return row


@router.post(
    "/strategies/{name}/deployments",
    status_code=201,
    response_model=DeploymentOut,
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503),
    summary="Deploy a strategy on the paper broker, trading your account",
    description="Runs the strategy as you on the paper broker, on the live or replayed feed: "
    "bars are built at the strategy's interval, every order's client_order_id starts with "
    "`dep-<id>-`. Risk halts and kill switches stop it; it survives a restart. Unknown "
    "strategy: 404 STRATEGY_NOT_FOUND; bad parameters: 422 STRATEGY_BAD_PARAMS; unknown "
    "symbol: 422 DEPLOYMENT_UNKNOWN_SYMBOL.",
)
async def create_deployment(
    name: StrategyName,
    body: DeploymentIn,
    request: Request,
    db: SessionDep,
    user: TraderUser,
    manager: ManagerDep,
) -> DeploymentOut:
    row = await manager.create(
        db,
        user.id,
        name,
        symbols=[s.strip().upper() for s in body.symbols],
        interval=body.interval,
        params=body.params,
        actor=user_actor(request, user),
    )
    return DeploymentOut.of(row)


@router.get(
    "/deployments",
    response_model=DeploymentListOut,
    responses=error_responses(401, 422),
    summary="Deployments: your own (admins and viewers: everyone's), newest first",
)
async def list_deployments(db: SessionDep, user: CurrentUser) -> DeploymentListOut:
    q = select(DeploymentRow).order_by(DeploymentRow.created_at.desc(), DeploymentRow.id)
    if user.role not in (Role.ADMIN, Role.VIEWER):
        q = q.where(DeploymentRow.user_id == user.id)
    rows = (await db.execute(q.limit(500))).scalars()
    return DeploymentListOut(items=[DeploymentOut.of(r) for r in rows])


@router.get(
    "/deployments/{deployment_id}",
    response_model=DeploymentOut,
    responses=error_responses(401, 404, 422),
    summary="One deployment",
)
async def read_deployment(
    deployment_id: DeploymentId, db: SessionDep, user: CurrentUser
) -> DeploymentOut:
    return DeploymentOut.of(await _visible(db, user, deployment_id))


async def _change(
    deployment_id: str,
    action: str,
    request: Request,
    db: SessionDep,
    user: User,
    manager: DeploymentManager,
) -> DeploymentOut:
    row = await _visible(db, user, deployment_id)
    if row.user_id != user.id and user.role != Role.ADMIN:
        raise NotFound("No such deployment.", code="DEPLOYMENT_NOT_FOUND")
    row = await manager.change(db, row, action, user_actor(request, user))
    return DeploymentOut.of(row)


_CHANGE = {
    "response_model": DeploymentOut,
    "responses": error_responses(401, 403, 404, 409, 422, 503),
}


@router.post(
    "/deployments/{deployment_id}/pause",
    summary="Pause a deployment: indicators stay current, no orders are sent (audited)",
    **_CHANGE,  # type: ignore[arg-type]
)
async def pause_deployment(
    deployment_id: DeploymentId,
    request: Request,
    db: SessionDep,
    user: TraderUser,
    manager: ManagerDep,
) -> DeploymentOut:
    return await _change(deployment_id, "pause", request, db, user, manager)


@router.post(
    "/deployments/{deployment_id}/resume",
    summary="Resume a paused deployment (audited)",
    **_CHANGE,  # type: ignore[arg-type]
)
async def resume_deployment(
    deployment_id: DeploymentId,
    request: Request,
    db: SessionDep,
    user: TraderUser,
    manager: ManagerDep,
) -> DeploymentOut:
    return await _change(deployment_id, "resume", request, db, user, manager)


@router.post(
    "/deployments/{deployment_id}/stop",
    summary="Stop a deployment for good (409 DEPLOYMENT_ENDED afterwards; audited)",
    **_CHANGE,  # type: ignore[arg-type]
)
async def stop_deployment(
    deployment_id: DeploymentId,
    request: Request,
    db: SessionDep,
    user: TraderUser,
    manager: ManagerDep,
) -> DeploymentOut:
    return await _change(deployment_id, "stop", request, db, user, manager)


@router.get(
    "/deployments/{deployment_id}/activity",
    response_model=DeploymentActivityOut,
    responses=error_responses(401, 404, 422),
    summary="A deployment's fills, charges and P&L",
)
async def deployment_activity(
    deployment_id: DeploymentId, db: SessionDep, user: CurrentUser, state: StateDep
) -> DeploymentActivityOut:
    row = await _visible(db, user, deployment_id)
    mine = OrderRow.client_order_id.startswith(deployment_prefix(row.id), autoescape=True)
    orders = (
        await db.execute(select(OrderRow.id).where(OrderRow.user_id == row.user_id, mine))
    ).all()
    trades = (
        await db.execute(
            select(TradeRow, OrderRow.client_order_id)
            .join(OrderRow, OrderRow.id == TradeRow.order_id)
            .where(TradeRow.user_id == row.user_id, mine)
            .order_by(TradeRow.at, TradeRow.id)
        )
    ).all()
    positions: dict[str, Position] = defaultdict(lambda: Position(""))
    charges = Decimal(0)
    for t, _ in trades:
        pos = positions.get(t.symbol) or Position(t.symbol)
        positions[t.symbol] = pos.apply(
            Fill(t.symbol, Side(t.side), t.quantity, t.price, t.fees, t.broker_trade_id)
        )
        charges += t.fees
    oms = state.extras.get("oms_marks")
    marks: dict[str, Decimal] = {}
    if oms is not None and positions:
        marks = await oms(db, sorted(positions))
    realised = sum((p.realised_pnl for p in positions.values()), Decimal(0))
    unrealised = sum(
        (p.unrealised_pnl(marks[s]) for s, p in positions.items() if p.quantity and s in marks),
        Decimal(0),
    )
    pnl = realised + unrealised - charges
    return DeploymentActivityOut(
        deployment_id=row.id,
        orders=len(orders),
        fills=[
            DeploymentFillOut(
                order_id=t.order_id,
                client_order_id=coid,
                symbol=t.symbol,
                side=t.side,
                product=t.product,
                quantity=t.quantity,
                price=money_str(t.price, "INR"),
                fees=money_str(t.fees, "INR"),
                at=t.at,
            )
            for t, coid in trades
        ],
        charges=money_str(charges, "INR"),
        realised_pnl=money_str(realised, "INR"),
        unrealised_pnl=money_str(unrealised, "INR"),
        pnl=money_str(pnl, "INR"),
        positions={s: p.quantity for s, p in positions.items() if p.quantity},
    )
