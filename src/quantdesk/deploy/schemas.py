"""Request and response shapes of the deployments API. Money is a decimal string."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .models import DeploymentRow

Interval = Literal["1m", "5m", "15m", "30m", "1h", "1d"]


class DeploymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbols: list[str] = Field(
        min_length=1,
        max_length=100,
        description="Instruments to trade, EXCHANGE:SYMBOL (they must be in the instruments list)",
    )
    interval: Interval = Field("1m", description="Bar interval the strategy runs on")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Strategy parameters (see GET /strategies)"
    )


class DeploymentOut(BaseModel):
    id: str
    user_id: int
    strategy: str
    params: dict[str, Any]
    symbols: list[str]
    interval: str
    status: Literal["running", "paused", "stopped", "failed"]
    orders_sent: int = Field(description="Orders the strategy has sent")
    bars: int = Field(description="Bars the strategy has seen")
    error: dict[str, Any] | None = Field(
        description="Why it stopped on its own: {code, message, trace?}"
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: DeploymentRow) -> DeploymentOut:
        return cls(
            id=row.id,
            user_id=row.user_id,
            strategy=row.strategy,
            params=row.params,
            symbols=row.symbols,
            interval=row.interval,
            status=row.status,
            orders_sent=row.seq,
            bars=row.bars,
            error=row.error,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class DeploymentListOut(BaseModel):
    items: list[DeploymentOut]


class DeploymentFillOut(BaseModel):
    order_id: str
    client_order_id: str
    symbol: str
    side: str
    product: str
    quantity: int
    price: str
    fees: str
    at: datetime


class DeploymentActivityOut(BaseModel):
    """What a deployment did: its orders' fills and its P&L (net of charges, positions at the
    last price)."""

    deployment_id: str
    orders: int
    fills: list[DeploymentFillOut]
    charges: str
    realised_pnl: str
    unrealised_pnl: str
    pnl: str
    positions: dict[str, int]
