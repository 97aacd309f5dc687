"""Request and response shapes of the strategies and backtests API. Money is a decimal string;
the equity curve's values are rupees as decimal strings, its drawdown a fraction."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quantdesk.api.types import NO_NUL
from quantdesk.backtest.models import BacktestRunRow, BacktestStatus

MAX_EQUITY_POINTS = 20_000
DEFAULT_EQUITY_POINTS = 2_000

Interval = Literal["1m", "5m", "15m", "30m", "1h", "1d"]
Engine = Literal["event", "vector"]
# The schema documents the formats; BacktestRequest enforces them (positive, at most 10^12,
# EXCHANGE:SYMBOL, india | bps:N, ...), so every value it refuses answers BACKTEST_BAD_REQUEST
# with details naming the field.
_DECIMAL_SCHEMA = {"pattern": r"^[0-9]{1,13}(\.[0-9]{1,8})?$", "maxLength": 32}
DecimalInput = Annotated[str, Field(json_schema_extra=_DECIMAL_SCHEMA)] | int | float


# --- strategies -------------------------------------------------------------------------------


class StrategyOut(BaseModel):
    name: str
    description: str
    source: Literal["builtin", "user"]
    file: str | None = Field(description="The user strategy's file (null for a built-in)")
    default_interval: str
    vectorized: bool = Field(description="Has a vectorized form (engine=vector)")
    params_schema: dict[str, Any] = Field(description="The parameters' JSON Schema")


class StrategyLoadErrorOut(BaseModel):
    file: str
    line: int | None
    message: str


class StrategiesOut(BaseModel):
    strategies: list[StrategyOut]
    errors: list[StrategyLoadErrorOut] = Field(
        description="User strategy files that failed to load (skipped)"
    )


# --- backtests --------------------------------------------------------------------------------


class BacktestIn(BaseModel):
    """What to backtest: the fields of ``quantdesk backtest run`` (a unit test keeps them equal
    to :class:`~quantdesk.backtest.runner.BacktestRequest`'s)."""

    model_config = ConfigDict(extra="forbid")

    strategy: Annotated[
        str,
        Field(min_length=1, max_length=100, pattern=NO_NUL, description="See GET /strategies"),
    ]
    symbols: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)]],
        Field(min_length=1, max_length=200, examples=[["NSE:INFY"]]),
    ]
    interval: Interval = "1d"
    start: date = Field(description="First session")
    end: date = Field(description="Last session (included)")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Strategy parameters (its params_schema)"
    )
    cash: DecimalInput = Field(
        default="1000000", description="Starting cash in rupees, > 0 and <= 10^12"
    )
    costs: Annotated[str, Field(max_length=32, pattern=NO_NUL)] = Field(
        default="india", description="india (the dated NSE schedule) or bps:N"
    )
    slippage_bps: DecimalInput | None = Field(
        default=None, description="0 to 1000; default: the paper broker's fill model"
    )
    engine: Engine = "event"
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    benchmark: Annotated[str | None, Field(max_length=64, pattern=NO_NUL)] = Field(
        default=None, description="A symbol (default: the symbol, or their equal weight)"
    )


class BacktestRequestOut(BaseModel):
    """The request as it runs: symbols and costs normalised, defaults filled in."""

    strategy: str
    symbols: list[str]
    interval: str
    start: date
    end: date
    params: dict[str, Any]
    cash: str
    costs: str
    slippage_bps: str | None
    engine: str
    seed: int
    benchmark: str | None


class BacktestErrorOut(BaseModel):
    code: str
    message: str
    trace: str | None = Field(default=None, description="The traceback, when code raised")


class BacktestOut(BaseModel):
    id: str
    user_id: int
    status: BacktestStatus
    progress: float = Field(ge=0, le=1, description="0 to 1; 1 once it succeeded")
    request: BacktestRequestOut
    summary: dict[str, Any] | None = Field(
        description="When succeeded: counts, final equity, charges, metrics, reproducibility "
        "(the document `quantdesk backtest run --json` prints)"
    )
    error: BacktestErrorOut | None = Field(description="When failed")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: BacktestRunRow) -> BacktestOut:
        return cls(
            id=row.id,
            user_id=row.user_id,
            status=BacktestStatus(row.status),
            progress=row.progress,
            request=BacktestRequestOut.model_validate(row.request),
            summary=row.summary,
            error=None if row.error is None else BacktestErrorOut.model_validate(row.error),
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


class BacktestPageOut(BaseModel):
    items: list[BacktestOut]
    next_cursor: str | None = Field(description="Pass as `before` for the next (older) page")


class BacktestFillOut(BaseModel):
    time: datetime
    order_id: str
    symbol: str
    side: str
    product: str
    quantity: int
    price: str
    fees: str
    tag: str | None


class RoundTripOut(BaseModel):
    symbol: str
    side: Literal["LONG", "SHORT"]
    quantity: int
    entry_time: datetime
    exit_time: datetime
    entry_price: str = Field(description="Average entry price")
    exit_price: str = Field(description="Average exit price")
    gross_pnl: str
    charges: str
    net_pnl: str
    bars_held: int


class BacktestTradesOut(BaseModel):
    fills: list[BacktestFillOut]
    round_trips: list[RoundTripOut]


class EquityPointOut(BaseModel):
    time: datetime = Field(description="Bar end, UTC")
    equity: str = Field(description="Cash plus positions at the close, rupees")
    benchmark: str | None = Field(description="The benchmark bought with the initial cash")
    drawdown: float | None = Field(description="Fraction below the running peak (<= 0)")


class BacktestEquityOut(BaseModel):
    points: list[EquityPointOut]
