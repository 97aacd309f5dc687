"""Risk API bodies. Money and percentages are decimal strings; a limit left out or null is
"no limit" (platform defaults) or "use the default" (an account's override)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from quantdesk.api.types import NO_NUL
from quantdesk.core.risk import LIMIT_FIELDS, RiskLimits
from quantdesk.risk.service import RiskState

_MONEY = r"^[0-9]{1,12}(\.[0-9]{1,2})?$"
_PCT = r"^[0-9]{1,3}(\.[0-9]{1,4})?$"
Money = Annotated[str, Field(pattern=_MONEY, examples=["500000.00"])]
Pct = Annotated[str, Field(pattern=_PCT, examples=["5"])]
Count = Annotated[int, Field(ge=1, le=10_000_000)]
Exchange = Literal["NSE", "BSE"]
ProductName = Literal["CNC", "MIS"]


class LimitsIn(BaseModel):
    """Every limit; money as a decimal string > 0, percentages in (0, 100]."""

    model_config = ConfigDict(extra="forbid")

    max_order_quantity: Count | None = Field(None, description="Shares per order")
    max_order_value: Money | None = Field(None, description="Worst-case value of one order")
    max_position_value: Money | None = Field(
        None, description="Absolute value of the position in one symbol, at the mark"
    )
    max_gross_exposure: Money | None = Field(
        None, description="Sum of absolute position values across symbols"
    )
    max_open_orders: Count | None = Field(None, description="Live orders at once")
    allowed_exchanges: list[Exchange] | None = Field(None, min_length=1, max_length=2)
    allowed_products: list[ProductName] | None = Field(
        None, min_length=1, max_length=2, description="Segments: CNC delivery, MIS intraday"
    )
    fat_finger_pct: Pct | None = Field(
        None, description="A limit price at most this far from the last price, in percent"
    )
    max_orders_per_minute: Count | None = None
    daily_loss_limit: Money | None = Field(
        None, description="Halt when the session's P&L falls below minus this amount"
    )
    max_drawdown_pct: Pct | None = Field(
        None, description="Halt when equity falls more than this far below its peak"
    )
    square_off_on_halt: bool | None = Field(
        None, description="Close positions at market when the account is halted"
    )

    @field_validator(
        "max_order_value",
        "max_position_value",
        "max_gross_exposure",
        "daily_loss_limit",
        "fat_finger_pct",
        "max_drawdown_pct",
    )
    @classmethod
    def _positive(cls, value: str | None) -> str | None:
        if value is not None and Decimal(value) <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("fat_finger_pct", "max_drawdown_pct")
    @classmethod
    def _percent(cls, value: str | None) -> str | None:
        if value is not None and Decimal(value) > 100:
            raise ValueError("must be at most 100")
        return value

    def to_limits(self) -> RiskLimits:
        values: dict[str, Any] = {}
        for f in LIMIT_FIELDS:
            v = getattr(self, f)
            if isinstance(v, str):
                v = Decimal(v)
            elif isinstance(v, list):
                v = frozenset(v)
            values[f] = v
        return RiskLimits(**values)


class LimitsOut(BaseModel):
    max_order_quantity: int | None
    max_order_value: str | None
    max_position_value: str | None
    max_gross_exposure: str | None
    max_open_orders: int | None
    allowed_exchanges: list[str] | None
    allowed_products: list[str] | None
    fat_finger_pct: str | None
    max_orders_per_minute: int | None
    daily_loss_limit: str | None
    max_drawdown_pct: str | None
    square_off_on_halt: bool | None

    @classmethod
    def of(cls, limits: RiskLimits) -> LimitsOut:
        values: dict[str, Any] = {}
        for f, v in limits.as_dict().items():
            if isinstance(v, Decimal):
                v = format(v.normalize(), "f")
            elif isinstance(v, frozenset):
                v = sorted(v)
            values[f] = v
        return cls(**values)


class AccountLimitsOut(BaseModel):
    user_id: int | None = Field(description="The account; null for the platform defaults")
    effective: LimitsOut = Field(description="What applies: the override over the defaults")
    defaults: LimitsOut
    override: LimitsOut | None


class StateOut(BaseModel):
    scope: str
    kill_switch: bool
    kill_reason: str | None
    kill_by: int | None
    kill_at: datetime | None
    halted: bool
    halt_kind: str | None
    halt_reason: str | None
    halted_at: datetime | None

    @classmethod
    def of(cls, s: RiskState, halted: bool) -> StateOut:
        return cls(
            scope=s.scope,
            kill_switch=s.kill_engaged,
            kill_reason=s.kill_reason,
            kill_by=s.kill_by,
            kill_at=s.kill_at,
            halted=halted,
            halt_kind=s.halt_kind if halted else None,
            halt_reason=s.halt_reason if halted else None,
            halted_at=s.halted_at if halted else None,
        )


class RiskStateOut(BaseModel):
    user_id: int
    global_: StateOut = Field(alias="global", serialization_alias="global")
    account: StateOut
    trading_allowed: bool

    model_config = ConfigDict(populate_by_name=True)


class KillSwitchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["global", "account"]
    user_id: Annotated[int, Field(ge=1, le=2_147_483_647)] | None = Field(
        None, description="scope=account: whose (default: your own); admins only for others"
    )
    engaged: bool
    reason: Annotated[str, Field(min_length=1, max_length=256, pattern=NO_NUL)]
    square_off: bool = Field(False, description="Also close every position at market")


class KillSwitchOut(BaseModel):
    state: StateOut
    cancelled_orders: int
    square_off_orders: int


class RearmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[int, Field(ge=1, le=2_147_483_647)]
