"""``quantdesk ml ...``: build features, train, list, promote, predict, check."""

from __future__ import annotations

import json
import os
import sys
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from quantdesk.ml.tracking import Tracker
    from quantdesk.settings import Settings

ml_app = typer.Typer(
    help="The ML engine: features, training (purged walk-forward CV), MLflow models, signals.",
    no_args_is_help=True,
)
features_app = typer.Typer(help="Feature sets and the offline feature store.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models (MLflow registry).", no_args_is_help=True)
ml_app.add_typer(features_app, name="features")
ml_app.add_typer(models_app, name="models")
out = Console()
err = Console(stderr=True)

SymbolsOpt = Annotated[str, typer.Option("--symbols", help="NSE:INFY[,NSE:TCS...]")]
IntervalOpt = Annotated[str, typer.Option(help="1m|5m|15m|30m|1h|1d")]
StartOpt = Annotated[str, typer.Option(help="First session, YYYY-MM-DD.")]
EndOpt = Annotated[str, typer.Option(help="Last session, YYYY-MM-DD.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]


def _settings() -> Settings:
    from quantdesk.cli import _settings

    return _settings()


def _fail(code: str, message: str) -> typer.Exit:
    err.print(f"[bold red]Error[/] ({code}): {message}")
    return typer.Exit(2)


def _ml_ready() -> None:
    """The ML extra's packages, or a clear exit naming it."""
    # XGBoost's OpenMP threads spin while waiting by default: on a shared 2-core machine that
    # made 2 threads up to 10x slower than 1. Passive waiting, unless the user chose.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    missing = []
    for module in ("xgboost", "mlflow", "optuna", "talib"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise _fail(
            "ML_EXTRA_MISSING",
            f"{', '.join(missing)} not installed: pip install 'quantdesk[ml]'",
        )


def _tracker(settings: Settings) -> Tracker:
    from quantdesk.ml.tracking import Tracker

    return Tracker.from_settings(settings)


def _date(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _fail("ML_BAD_REQUEST", f"--{name} must be YYYY-MM-DD, got {text!r}") from None


def _symbols(text: str) -> list[str]:
    symbols = [s.strip() for s in text.split(",") if s.strip()]
    if not symbols:
        raise _fail("ML_BAD_REQUEST", "--symbols needs at least one EXCHANGE:SYMBOL")
    return symbols


def _store(settings: Settings) -> Any:
    from quantdesk.market.store import BarStore

    return BarStore(settings.data_dir / "bars", cache_bytes=0)


@ml_app.command("train")
def train_command(
    symbols: SymbolsOpt,
    start: StartOpt,
    end: EndOpt,
    model: Annotated[str, typer.Option("--model", help="xgboost|lstm")] = "xgboost",
    interval: IntervalOpt = "1d",
    label: Annotated[
        str, typer.Option(help="forward:H (sign of the H-bar return) or triple-barrier[:H:PT:SL]")
    ] = "forward:5",
    folds: Annotated[int, typer.Option(help="Walk-forward test folds (purged, embargoed).")] = 5,
    trials: Annotated[int, typer.Option(help="Optuna trials per fold (0: no search).")] = 0,
    name: Annotated[
        str | None, typer.Option(help="Registered model name; default MODEL-INTERVAL.")
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="ml_signal's entry probability in the signal backtest.")
    ] = 0.55,
    costs: Annotated[str, typer.Option(help="india or bps:N, for the signal backtest.")] = "india",
    dead_zone: Annotated[float, typer.Option(help="forward: |return| below this: no label.")] = 0.0,
    embargo: Annotated[float, typer.Option(help="Embargo: bars, or a fraction of them.")] = 0.01,
    seed: Annotated[int, typer.Option(help="Seed of the model and the search.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Train a model with purged walk-forward CV, backtest its signals, register it in MLflow.

    With --json: one JSON document with run_id, model_name, version, folds (per-fold metrics),
    oos (pooled out-of-sample auc, auc_se, sharpe_net, ...) and checks.
    """
    _ml_ready()
    from quantdesk.errors import AppError
    from quantdesk.ml.dataset import LabelSpec
    from quantdesk.ml.models import MissingDependencyError
    from quantdesk.ml.pipeline import TrainRequest, train

    if model not in ("xgboost", "lstm"):
        raise _fail("ML_BAD_REQUEST", f"--model must be xgboost or lstm, got {model!r}")
    try:
        spec = LabelSpec.parse(label, dead_zone)
    except ValueError as exc:
        raise _fail("ML_BAD_REQUEST", str(exc)) from None
    settings = _settings()
    request = TrainRequest(
        model=model,  # type: ignore[arg-type]
        symbols=_symbols(symbols),
        interval=interval,
        start=_date(start, "start"),
        end=_date(end, "end"),
        label=spec,
        folds=folds,
        trials=trials,
        embargo=embargo,
        seed=seed,
        name=name,
        threshold=threshold,
        costs=costs,
    )

    def progress(stage: str, done: int, total: int) -> None:
        err.print(f"[dim]{stage}: {done}/{total}[/]")

    try:
        result = train(
            request, store=_store(settings), tracker=_tracker(settings), progress=progress
        )
    except MissingDependencyError as exc:
        raise _fail("ML_EXTRA_MISSING", str(exc)) from None
    except AppError as exc:
        raise _fail(exc.code, exc.message) from None
    except ValueError as exc:
        raise _fail("ML_BAD_REQUEST", str(exc)) from None
    doc = result.to_json()
    if as_json:
        sys.stdout.write(json.dumps(doc) + "\n")
        return
    table = Table(title=f"{result.model_name} v{result.version} (run {result.run_id})")
    for col in ("fold", "rows", "start", "end", "auc", "accuracy", "ic_return"):
        table.add_column(col)
    for f in doc["folds"]:
        table.add_row(
            *(_cell(f.get(c)) for c in ("fold", "rows", "start", "end", "auc")),
            _cell(f.get("accuracy")),
            _cell(f.get("ic_return")),
        )
    out.print(table)
    oos = doc["oos"]
    out.print(
        f"out-of-sample: auc {_cell(oos.get('auc'))} (se {_cell(oos.get('auc_se'))}), "
        f"net Sharpe of the signals {_cell(oos.get('sharpe_net'))} ({request.costs}); "
        f"checks {'passed' if doc['checks']['passed'] else 'FAILED'}"
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, str) and "T" in value:
        return value[:10]
    return "-" if value is None else str(value)


@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Registered models with their versions, aliases and check results."""
    _ml_ready()
    from quantdesk.ml.pipeline import CHECKS_TAG

    models = _tracker(_settings()).list_models()
    doc: list[dict[str, Any]] = [
        {
            "name": m.name,
            "aliases": m.aliases,
            "versions": [
                {
                    "version": v.version,
                    "run_id": v.run_id,
                    "aliases": list(v.aliases),
                    "checks": v.tags.get(CHECKS_TAG),
                    "created": v.created.isoformat() if v.created else None,
                }
                for v in m.versions
            ],
        }
        for m in models
    ]
    if as_json:
        sys.stdout.write(json.dumps(doc) + "\n")
        return
    table = Table(title="Registered models")
    for col in ("name", "version", "aliases", "checks", "run"):
        table.add_column(col)
    for m in doc:
        for v in m["versions"]:
            table.add_row(
                m["name"], str(v["version"]), ",".join(v["aliases"]), str(v["checks"]), v["run_id"]
            )
    out.print(table)


@ml_app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Version to point the alias at.")],
    alias: Annotated[str, typer.Option(help="champion (served) or challenger.")] = "champion",
) -> None:
    """Point an alias at a model version (the inference service follows it without a restart).

    A version that failed its checks (look-ahead guard, out-of-sample edge) cannot be promoted.
    """
    _ml_ready()
    from quantdesk.errors import AppError
    from quantdesk.ml.pipeline import model_checks_passed

    if alias not in ("champion", "challenger"):
        raise _fail("ML_BAD_REQUEST", f"--alias must be champion or challenger, got {alias!r}")
    tracker = _tracker(_settings())
    try:
        if not model_checks_passed(tracker, name, version):
            raise _fail(
                "ML_CHECKS_FAILED",
                f"{name} v{version} failed its checks (see `quantdesk ml models list`); "
                "it cannot take an alias",
            )
        tracker.set_alias(name, alias, version)
    except AppError as exc:
        raise _fail(exc.code, exc.message) from None
    out.print(f"{name}: {alias} -> v{version}")


@ml_app.command("predict")
def predict(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    symbols: SymbolsOpt,
    alias: Annotated[str, typer.Option(help="Alias to load.")] = "champion",
    version: Annotated[int | None, typer.Option(help="A version instead of the alias.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The model's prediction on the latest stored bar of each symbol."""
    _ml_ready()
    from quantdesk.errors import AppError
    from quantdesk.ml.serving import predict_latest

    settings = _settings()
    try:
        rows = predict_latest(
            _tracker(settings), _store(settings), name, _symbols(symbols), alias, version
        )
    except AppError as exc:
        raise _fail(exc.code, exc.message) from None
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table(title=f"{name} predictions")
    for col in ("symbol", "time", "probability", "signal", "version"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["symbol"], r["time"], f"{r['value']:.4f}", str(r["signal"]), str(r["version"])
        )
    out.print(table)


@ml_app.command("check")
def check(as_json: JsonOpt = False, seed: int = 7) -> None:
    """The honesty checks: no edge on a random walk, a planted pattern found, a look-ahead
    feature refused. Exits 1 when any fails."""
    _ml_ready()
    from quantdesk.ml.honesty import run_checks

    result = run_checks(seed=seed, say=lambda m: err.print(f"[dim]{m}[/]"))
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        for key in ("random_walk", "planted_pattern", "lookahead"):
            r = result[key]
            out.print(f"{key}: {'passed' if r['passed'] else 'FAILED'} {json.dumps(r)}")
    if not result["passed"]:
        raise typer.Exit(1)


@features_app.command("build")
def features_build(
    symbols: SymbolsOpt,
    start: StartOpt,
    end: EndOpt,
    interval: IntervalOpt = "1d",
    as_json: JsonOpt = False,
) -> None:
    """Compute the platform's feature set over stored bars into the offline store (Parquet)."""
    _ml_ready()
    from quantdesk.errors import AppError
    from quantdesk.ml.features.build import build_offline_features

    settings = _settings()
    try:
        doc = build_offline_features(
            settings.data_dir,
            _store(settings),
            _symbols(symbols),
            interval,
            _date(start, "start"),
            _date(end, "end"),
            progress=lambda stage, d, t: err.print(f"[dim]{stage}: {d}/{t}[/]"),
        )
    except AppError as exc:
        raise _fail(exc.code, exc.message) from None
    if as_json:
        sys.stdout.write(json.dumps(doc) + "\n")
    else:
        out.print(
            f"{doc['rows']} rows of {doc['feature_set']} v{doc['version']} "
            f"({doc['hash'][:12]}) -> {doc['path']}"
        )
