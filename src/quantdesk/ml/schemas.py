"""Request and response shapes of the ML API: training runs (jobs), registered models and their
promotion, stored signal series and drift reports.

Like the backtests API, the schema documents the value ranges (``minimum``, ``enum``, ...) and
the service enforces them, so a value the pipeline refuses answers ``ML_BAD_REQUEST`` (422) with
details naming the field, as ``quantdesk ml train`` does; only a wrong JSON type is the
platform's generic ``VALIDATION_ERROR``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quantdesk.api.types import NO_NUL
from quantdesk.ml.models_db import MLRunRow, MLRunStatus

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
"""A registered model's name: also a file name (signals, drift reports), so no separators."""
MODEL_KINDS = ("xgboost", "lstm")
ALIASES = ("champion", "challenger")
INTERVALS = ("1m", "5m", "15m", "30m", "1h", "1d")
MAX_EQUITY_POINTS = 20_000
DEFAULT_EQUITY_POINTS = 2_000
MAX_SIGNAL_POINTS = 100_000
DEFAULT_SIGNAL_POINTS = 10_000

Symbol = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)]
ModelName = Annotated[str, Field(max_length=100, pattern=MODEL_NAME_PATTERN)]


def _doc(**schema: Any) -> Any:
    """Document a range the service enforces (see the module docstring)."""
    return Field(json_schema_extra=schema)


# --- training runs ----------------------------------------------------------------------------


class MLRunIn(BaseModel):
    """What to train: the options of ``quantdesk ml train``."""

    model_config = ConfigDict(extra="forbid")

    model: Annotated[str, _doc(enum=list(MODEL_KINDS))] = "xgboost"
    symbols: Annotated[list[Symbol], Field(max_length=200, examples=[["NSE:INFY", "NSE:TCS"]])]
    interval: Annotated[str, Field(max_length=8), _doc(enum=list(INTERVALS))] = "1d"
    start: date = Field(description="First session")
    end: date = Field(description="Last session (included)")
    label: Annotated[str, Field(max_length=64, pattern=NO_NUL)] = Field(
        default="forward:5",
        description="forward:H (sign of the H-bar forward return) or triple-barrier[:H[:PT[:SL]]]",
    )
    dead_zone: Annotated[float, _doc(minimum=0, exclusiveMaximum=1)] = Field(
        default=0.0, description="forward: a |return| below this gets no label"
    )
    folds: Annotated[int, _doc(minimum=2, maximum=20)] = Field(
        default=5, description="Walk-forward test folds (purged, embargoed)"
    )
    trials: Annotated[int, _doc(minimum=0, maximum=500)] = Field(
        default=0, description="Optuna trials per fold (0: no search)"
    )
    embargo: Annotated[int | float, _doc(minimum=0)] = Field(
        default=0.01, description="Embargo: whole bars (an integer) or a fraction in [0, 1)"
    )
    name: ModelName | None = Field(
        default=None, description="Registered model name; default MODEL-INTERVAL"
    )
    threshold: Annotated[float, _doc(exclusiveMinimum=0, exclusiveMaximum=1)] = Field(
        default=0.55, description="ml_signal's entry probability in the signal backtest"
    )
    costs: Annotated[str, Field(max_length=32, pattern=NO_NUL)] = Field(
        default="india", description="Costs of the signal backtest: india or bps:N"
    )
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0


class MLRunRequestOut(BaseModel):
    """The request as it runs: symbols, label and costs normalised, the model name resolved."""

    model: str
    symbols: list[str]
    interval: str
    start: date
    end: date
    label: str
    dead_zone: float
    folds: int
    trials: int
    embargo: int | float
    name: str
    threshold: float
    costs: str
    seed: int


class MLProgressOut(BaseModel):
    stage: str | None = Field(
        description="The job's stage: features, folds, backtest, ... for a training run; load, "
        "compute, write for a feature build (null while queued)"
    )
    done: int
    total: int
    fraction: float = Field(ge=0, le=1, description="0 to 1 over the whole run; 1 once done")


class MLErrorOut(BaseModel):
    code: str = Field(description="ML_NO_DATA, ML_TOO_FEW_SAMPLES, ML_TIMEOUT, ...")
    message: str
    trace: str | None = Field(default=None, description="The traceback, when code raised")


class TrainResultOut(BaseModel):
    """The document ``quantdesk ml train --json`` prints."""

    run_id: str = Field(description="The MLflow run")
    model_name: str
    version: int = Field(description="The registered version")
    folds: list[dict[str, Any]] = Field(description="Per fold: rows, start, end, auc, ...")
    oos: dict[str, Any] = Field(
        description="Pooled out-of-sample: auc, auc_se, ic_return, sharpe_net (the signal "
        "backtest net of costs), trades, ..."
    )
    checks: dict[str, Any] = Field(description="lookahead, edge and passed")
    rows: int
    features: list[str]
    importance: dict[str, float]
    data: dict[str, Any] = Field(description="Symbols, range, bars used, fingerprint, label")


class MLRunOut(BaseModel):
    id: str
    user_id: int
    kind: Literal["train"]
    status: MLRunStatus
    progress: MLProgressOut
    request: MLRunRequestOut
    result: TrainResultOut | None = Field(description="When succeeded")
    error: MLErrorOut | None = Field(description="When failed")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: MLRunRow) -> MLRunOut:
        stage = row.stage or {}
        return cls(
            id=row.id,
            user_id=row.user_id,
            kind="train",
            status=MLRunStatus(row.status),
            progress=MLProgressOut(
                stage=stage.get("stage"),
                done=int(stage.get("done", 0)),
                total=int(stage.get("total", 0)),
                fraction=row.progress,
            ),
            request=MLRunRequestOut.model_validate(row.request),
            result=None if row.result is None else TrainResultOut.model_validate(row.result),
            error=None if row.error is None else MLErrorOut.model_validate(row.error),
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


class MLRunPageOut(BaseModel):
    items: list[MLRunOut]
    next_cursor: str | None = Field(description="Pass as `before` for the next (older) page")


# --- feature builds ---------------------------------------------------------------------------


class FeatureBuildIn(BaseModel):
    """What to build: the options of ``quantdesk ml features build``."""

    model_config = ConfigDict(extra="forbid")

    symbols: Annotated[list[Symbol], Field(max_length=200, examples=[["NSE:INFY", "NSE:TCS"]])]
    interval: Annotated[str, Field(max_length=8), _doc(enum=list(INTERVALS))] = "1d"
    start: date = Field(description="First session")
    end: date = Field(description="Last session (included)")


class FeatureBuildRequestOut(BaseModel):
    symbols: list[str]
    interval: str
    start: date
    end: date


class FeatureBuildResultOut(BaseModel):
    """What ``quantdesk ml features build --json`` prints (less the server's path)."""

    feature_set: str
    version: int
    hash: str = Field(description="The feature set's content hash (the store's key)")
    columns: list[str]
    symbols: list[str]
    rows: int = Field(description="Bars whose features were stored")
    fingerprint: str = Field(description="Of the bars used, as training records it")


class FeatureBuildOut(BaseModel):
    id: str
    user_id: int
    kind: Literal["features"]
    status: MLRunStatus
    progress: MLProgressOut
    request: FeatureBuildRequestOut
    result: FeatureBuildResultOut | None = Field(description="When succeeded")
    error: MLErrorOut | None = Field(description="When failed")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: MLRunRow) -> FeatureBuildOut:
        stage = row.stage or {}
        return cls(
            id=row.id,
            user_id=row.user_id,
            kind="features",
            status=MLRunStatus(row.status),
            progress=MLProgressOut(
                stage=stage.get("stage"),
                done=int(stage.get("done", 0)),
                total=int(stage.get("total", 0)),
                fraction=row.progress,
            ),
            request=FeatureBuildRequestOut.model_validate(row.request),
            result=None if row.result is None else FeatureBuildResultOut.model_validate(row.result),
            error=None if row.error is None else MLErrorOut.model_validate(row.error),
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


class FeatureBuildPageOut(BaseModel):
    items: list[FeatureBuildOut]
    next_cursor: str | None = Field(description="Pass as `before` for the next (older) page")


class MLEquityPointOut(BaseModel):
    time: datetime = Field(description="Bar end, UTC")
    equity: str = Field(description="Equity of the signal backtest, rupees")


class MLEquityOut(BaseModel):
    run_id: str = Field(description="The MLflow run")
    points: list[MLEquityPointOut]


class FeatureImportanceOut(BaseModel):
    feature: str
    importance: float


class MLImportanceOut(BaseModel):
    run_id: str = Field(description="The MLflow run")
    features: list[FeatureImportanceOut] = Field(
        description="Most important first (empty for a model without importances: lstm)"
    )


# --- registered models ------------------------------------------------------------------------


class ModelVersionOut(BaseModel):
    version: int
    run_id: str | None
    aliases: list[str]
    checks: Literal["passed", "failed"] | None = Field(
        description="Whether the version passed the pipeline's checks (only a passed one may "
        "take an alias)"
    )
    oos: dict[str, float] = Field(
        description="The run's out-of-sample metrics (oos_auc -> auc, oos_sharpe_net -> "
        "sharpe_net, ...)"
    )
    user_id: int | None = Field(description="Who trained it over the API (null: the CLI)")
    job_id: str | None = Field(description="The training run (GET /ml/runs/{id})")
    created: datetime


class RegisteredModelOut(BaseModel):
    name: str
    description: str
    aliases: dict[str, int] = Field(description="alias -> version")
    versions: list[ModelVersionOut] = Field(description="Oldest first")
    created: datetime
    updated: datetime


class ModelsOut(BaseModel):
    models: list[RegisteredModelOut]


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Annotated[int, Field(ge=1, le=2**31 - 1)]
    alias: Annotated[str, Field(max_length=32), _doc(enum=list(ALIASES))] = "champion"


class PromoteOut(BaseModel):
    name: str
    alias: str
    version: int
    previous_version: int | None = Field(description="Where the alias pointed before")


# --- signals and drift ------------------------------------------------------------------------


class SignalPointOut(BaseModel):
    time: datetime = Field(description="When the signal is known (the bar's end), UTC")
    value: float | None = Field(description="The model's probability (or prediction)")
    signal: int = Field(description="-1, 0 or +1 after the thresholds")
    model_version: int


class SignalsOut(BaseModel):
    model: str
    symbol: str
    points: list[SignalPointOut]
    truncated: bool = Field(description="More points matched than `limit`: the latest are kept")


class DriftOut(BaseModel):
    """The latest drift check of a model's served version (``DriftReport``)."""

    model: str
    version: int | None = None
    samples: int = 0
    checked_at: datetime | None = None
    psi: dict[str, float | None] = Field(default_factory=dict, description="PSI per feature")
    levels: dict[str, str] = Field(
        default_factory=dict, description="stable, moderate or significant per feature"
    )
    features: list[str] = Field(default_factory=list, description="Significantly drifted")
    outcomes: int = 0
    metric: str | None = None
    live: dict[str, float | None] = Field(default_factory=dict)
    validation: float | None = None
    degraded: bool = False
    alerted: list[str] = Field(default_factory=list)
