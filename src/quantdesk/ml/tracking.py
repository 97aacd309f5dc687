"""Experiment tracking and the model registry: the one place the ML engine talks to MLflow.

``Tracker`` wraps an explicit ``MlflowClient`` per tracking URI (never mlflow's global state), so
trackers for different stores coexist in one process. The default store is embedded (SQLite
under the data dir, artifacts on disk); ``http(s)://`` URIs talk to an ``mlflow server`` that
proxies artifacts (``--serve-artifacts``). Models are logged as plain artifact directories
(whatever our own ``Model.save`` wrote) under ``model/`` -- no MLflow flavors, so the model
format stays ours.

mlflow is imported lazily: importing this module is cheap and the platform starts without the
``ml`` extra; constructing a ``Tracker`` without it raises ``MLExtraMissing``.

Metric naming: aggregates under plain names (``auc``), per-fold values under ``fold_<i>/<name>``
(``RunHandle.log_fold_metrics``), curves over training as steps of one name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from quantdesk.errors import AppError, NotFound

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

    from quantdesk.settings import Settings

__all__ = [
    "MLExtraMissing",
    "MetricPoint",
    "ModelVersionInfo",
    "RegisteredModelInfo",
    "RunHandle",
    "RunInfo",
    "Tracker",
    "TrackingError",
]

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]

_SYSTEM_TAG_PREFIX = "mlflow."
_ERROR_TAG = "quantdesk.error"
_NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
_ALREADY_EXISTS_CODES = frozenset({"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"})
_INVALID_CODES = frozenset({"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE"})


class MLExtraMissing(AppError):
    """The ML engine needs the optional ``ml`` dependencies."""

    status_code = 503
    code = "ML_EXTRA_MISSING"


class TrackingError(AppError):
    """The tracking store failed (server unreachable, database error, ...)."""

    status_code = 502
    code = "ML_TRACKING_ERROR"


# ---------------------------------------------------------------------------------------------
# Values handed out (plain frozen dataclasses: callers never see mlflow entities)


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    name: str
    experiment_id: str
    status: str  # RUNNING, FINISHED, FAILED, KILLED (SCHEDULED for runs created elsewhere)
    start_time: datetime | None
    end_time: datetime | None
    params: dict[str, str]
    metrics: dict[str, float]  # the latest value of each metric (the highest step)
    tags: dict[str, str]  # ours; mlflow's own ``mlflow.*`` tags are left out
    artifact_uri: str


@dataclass(frozen=True, slots=True)
class MetricPoint:
    step: int
    value: float
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class ModelVersionInfo:
    name: str
    version: int
    run_id: str | None
    source: str  # where the version's files are (the run's ``model/`` artifact directory)
    tags: dict[str, str]
    aliases: tuple[str, ...]
    created: datetime


@dataclass(frozen=True, slots=True)
class RegisteredModelInfo:
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]  # alias -> version
    versions: tuple[ModelVersionInfo, ...]  # oldest first
    created: datetime
    updated: datetime


# ---------------------------------------------------------------------------------------------
# mlflow import, quiet defaults and one client per URI


_clients: dict[str, MlflowClient] = {}
_clients_lock = threading.Lock()


def _import_mlflow() -> Any:
    # Set before mlflow's first import: telemetry is started, and logging configured, on import.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # mlflow would otherwise replace the handlers of the host's sqlalchemy/alembic loggers.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    try:
        import mlflow
    except ImportError as exc:
        raise MLExtraMissing(
            "experiment tracking needs MLflow: pip install 'quantdesk[ml]'"
        ) from exc
    if not os.environ.get("MLFLOW_LOGGING_LEVEL"):
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    return mlflow


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores and in-memory)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


@contextlib.contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Creating a store runs ~80 alembic migrations, each logged at INFO."""
    logger = logging.getLogger("alembic")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise first-time store creation across processes (the API and a worker may race)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _client_for(uri: str) -> MlflowClient:
    """The process's client for ``uri``: the store (and its migrations) is set up once."""
    with _clients_lock:
        client = _clients.get(uri)
        if client is not None:
            return client
        mlflow = _import_mlflow()
        db = _sqlite_path(uri)
        lock: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
            lock = _file_lock(db.with_name(db.name + ".lock"))
        with lock, _quiet_alembic(), _translated(), warnings.catch_warnings():
            # SQLAlchemy deprecations inside mlflow's store set-up: nothing we can act on.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mlflow\.")
            client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
            if db is not None:  # both stores now, under the lock, rather than on first use
                client.search_experiments(max_results=1)
                client.search_registered_models(max_results=1)
        _clients[uri] = client
        return client


# ---------------------------------------------------------------------------------------------
# Error translation: no MlflowException leaves this module


def _error_code(exc: BaseException) -> str | None:
    code = getattr(exc, "error_code", None)
    return code if isinstance(code, str) else None


def _is_mlflow_error(exc: BaseException) -> bool:
    from mlflow.exceptions import MlflowException  # imported already: only a Tracker gets here

    return isinstance(exc, MlflowException)


@contextlib.contextmanager
def _translated(not_found: Callable[[], AppError] | None = None) -> Iterator[None]:
    """Map mlflow's exceptions to ours; ``not_found`` builds the error for a missing resource."""
    try:
        yield
    except AppError:
        raise
    except Exception as exc:
        if not _is_mlflow_error(exc):
            raise
        _raise_translated(exc, not_found)


def _raise_translated(exc: Exception, not_found: Callable[[], AppError] | None) -> NoReturn:
    code = _error_code(exc)
    message = getattr(exc, "message", None) or str(exc)
    details = {"mlflow_error_code": code}
    if code in _NOT_FOUND_CODES and not_found is not None:
        raise not_found() from exc
    if code in _NOT_FOUND_CODES:
        raise NotFound(message, code="ML_NOT_FOUND", details=details) from exc
    if code in _INVALID_CODES:
        raise AppError(message, code="ML_INVALID_REQUEST", details=details) from exc
    raise TrackingError(message, details=details) from exc


def _model_not_found(name: str) -> NotFound:
    return NotFound(f"no registered model {name!r}", code="MODEL_NOT_FOUND", details={"name": name})


def _version_not_found(name: str, version: int) -> NotFound:
    return NotFound(
        f"model {name!r} has no version {version}",
        code="MODEL_VERSION_NOT_FOUND",
        details={"name": name, "version": version},
    )


def _alias_not_found(name: str, alias: str) -> NotFound:
    return NotFound(
        f"model {name!r} has no alias {alias!r}",
        code="MODEL_ALIAS_NOT_FOUND",
        details={"name": name, "alias": alias},
    )


def _run_not_found(run_id: str) -> NotFound:
    return NotFound(f"no run {run_id!r}", code="RUN_NOT_FOUND", details={"run_id": run_id})


# ---------------------------------------------------------------------------------------------
# Conversions


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _dt0(ms: int | None) -> datetime:
    return _dt(ms) or datetime.fromtimestamp(0, tz=UTC)


def _user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if not k.startswith(_SYSTEM_TAG_PREFIX)}


def _run_info(run: Run) -> RunInfo:
    info, data = run.info, run.data
    return RunInfo(
        run_id=info.run_id,
        name=info.run_name or "",
        experiment_id=info.experiment_id,
        status=info.status,
        start_time=_dt(info.start_time),
        end_time=_dt(info.end_time),
        params=dict(data.params),
        metrics={k: float(v) for k, v in data.metrics.items()},
        tags=_user_tags(data.tags),
        artifact_uri=info.artifact_uri or "",
    )


def _version_info(mv: ModelVersion, aliases: Mapping[str, int] | None = None) -> ModelVersionInfo:
    version = int(mv.version)
    if aliases is None:
        names = tuple(sorted(mv.aliases or ()))
    else:  # from the registered model: the same answer on every store, in one query
        names = tuple(sorted(a for a, v in aliases.items() if v == version))
    return ModelVersionInfo(
        name=mv.name,
        version=version,
        run_id=mv.run_id or None,
        source=mv.source or "",
        tags=dict(mv.tags or {}),
        aliases=names,
        created=_dt0(mv.creation_timestamp),
    )


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"xgb": {"max_depth": 3}}`` -> ``{"xgb.max_depth": "3"}`` (MLflow params are strings)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "experiment"


def _paged(search: Callable[..., Any], **kwargs: Any) -> list[Any]:
    """Every page of an mlflow search call (the REST store pages its answers)."""
    items: list[Any] = []
    token: str | None = None
    while True:
        page = search(page_token=token, **kwargs)
        items.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return items


# ---------------------------------------------------------------------------------------------
# Runs


class RunHandle:
    """A run being logged to. As a context manager it ends the run FINISHED, or FAILED when the
    block raises (KILLED on KeyboardInterrupt and the like)."""

    def __init__(self, client: MlflowClient, run: Run) -> None:
        self._client = client
        self.run_id: str = run.info.run_id
        self.experiment_id: str = run.info.experiment_id
        self.name: str = run.info.run_name or ""
        self.artifact_uri: str = run.info.artifact_uri or ""
        self.ended = False

    def __repr__(self) -> str:
        return f"RunHandle(run_id={self.run_id!r}, name={self.name!r})"

    def __enter__(self) -> RunHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.ended:
            return
        if exc is None:
            self.end("FINISHED")
            return
        # Recording the failure must never hide the exception that caused it.
        with contextlib.suppress(Exception):
            self.set_tags({_ERROR_TAG: f"{type(exc).__name__}: {exc}"[:5000]})
        with contextlib.suppress(Exception):
            self.end("FAILED" if isinstance(exc, Exception) else "KILLED")

    def end(self, status: RunStatus = "FINISHED") -> None:
        with _translated(lambda: _run_not_found(self.run_id)):
            self._client.set_terminated(self.run_id, status)
        self.ended = True

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log hyperparameters; nested mappings flatten to dotted names. A param, once logged,
        cannot change value (MLflow's rule)."""
        from mlflow.entities import Param

        flat = _flatten(params)
        with _translated(lambda: _run_not_found(self.run_id)):
            self._client.log_batch(self.run_id, params=[Param(k, v) for k, v in flat.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log metric values (at ``step``, 0 when None); the same name at several steps makes a
        curve, and the run's metric is the value at the highest step."""
        from mlflow.entities import Metric

        now = int(datetime.now(UTC).timestamp() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        with _translated(lambda: _run_not_found(self.run_id)):
            self._client.log_batch(self.run_id, metrics=batch)

    def log_fold_metrics(self, fold: int, metrics: Mapping[str, float]) -> None:
        """Log one cross-validation fold's metrics as ``fold_<fold>/<name>``, at step ``fold``."""
        self.log_metrics({f"fold_{fold}/{k}": v for k, v in metrics.items()}, step=fold)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, str(v)) for k, v in tags.items()]
        with _translated(lambda: _run_not_found(self.run_id)):
            self._client.log_batch(self.run_id, tags=batch)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """Write ``obj`` as JSON (YAML for a ``.yaml``/``.yml`` name) to ``artifact_file``."""
        with _translated(lambda: _run_not_found(self.run_id)):
            self._client.log_dict(self.run_id, obj, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        with _translated(lambda: _run_not_found(self.run_id)):
            self._client.log_text(self.run_id, text, artifact_file)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file (or a directory, which keeps its own name) under ``artifact_path``."""
        path = Path(local_path)
        if not path.exists():
            raise FileNotFoundError(path)
        with _translated(lambda: _run_not_found(self.run_id)):
            self._client.log_artifact(self.run_id, str(path), artifact_path)

    def log_model_dir(self, local_dir: str | Path, artifact_path: str = "model") -> str:
        """Upload the *contents* of a saved model directory as ``artifact_path/...`` (plain files,
        no MLflow flavor) and return ``artifact_path``: what ``Tracker.register`` expects."""
        path = Path(local_dir)
        if not path.is_dir():
            raise NotADirectoryError(f"a model is a directory of files: {path}")
        with _translated(lambda: _run_not_found(self.run_id)):
            self._client.log_artifacts(self.run_id, str(path), artifact_path)
        return artifact_path


# ---------------------------------------------------------------------------------------------
# The tracker


class Tracker:
    """Runs, artifacts and the model registry on one MLflow store.

    ``artifact_dir`` is where the embedded (database) store keeps artifacts; for SQLite it
    defaults to ``<db dir>/artifacts``. A tracking server (``http(s)://``) chooses its own
    artifact location (proxied with ``--serve-artifacts``), so ``artifact_dir`` is ignored there.
    """

    def __init__(self, tracking_uri: str, artifact_dir: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_dir: Path | None = None
        if not self.is_remote:
            if artifact_dir is None:
                db = _sqlite_path(tracking_uri)
                if db is None:
                    raise ValueError(f"artifact_dir is required for the store {tracking_uri!r}")
                artifact_dir = db.parent / "artifacts"
            self.artifact_dir = artifact_dir.resolve()
        self._client = _client_for(tracking_uri)
        self._experiments: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Tracker(tracking_uri={self.tracking_uri!r}, artifact_dir={self.artifact_dir!r})"

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracker:
        return cls(settings.resolved_mlflow_tracking_uri, settings.mlflow_artifact_dir)

    @property
    def is_remote(self) -> bool:
        return self.tracking_uri.split(":", 1)[0].lower() in ("http", "https")

    # -- experiments and runs -----------------------------------------------------------------

    def _experiment_id(self, name: str, *, create: bool) -> str | None:
        """The experiment's id; with ``create``, made (or restored, if deleted in the UI: its
        name stays taken) on first use, else None when there is no live experiment."""
        cached = self._experiments.get(name)
        if cached is not None:
            return cached
        with _translated():
            exp = self._client.get_experiment_by_name(name)
            deleted = exp is not None and exp.lifecycle_stage == "deleted"
            if not create and (exp is None or deleted):
                return None
            if exp is None:
                exp_id = self._create_experiment(name)
            else:
                exp_id = exp.experiment_id
                if deleted:
                    self._client.restore_experiment(exp_id)
        self._experiments[name] = exp_id
        return exp_id

    def _create_experiment(self, name: str) -> str:
        location = None
        if self.artifact_dir is not None:
            location = (self.artifact_dir / _slug(name)).as_uri()
        try:
            with _translated():
                return self._client.create_experiment(name, artifact_location=location)
        except AppError:  # another process created it first
            with _translated():
                exp = self._client.get_experiment_by_name(name)
            if exp is None:
                raise
            return str(exp.experiment_id)

    def start_run(
        self,
        experiment: str,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> RunHandle:
        """Create a run (RUNNING) in ``experiment``, creating the experiment on first use."""
        exp_id = self._experiment_id(experiment, create=True)
        assert exp_id is not None
        str_tags = {k: str(v) for k, v in (tags or {}).items()}
        with _translated():
            run = self._client.create_run(exp_id, run_name=run_name, tags=str_tags)
        return RunHandle(self._client, run)

    def get_run(self, run_id: str) -> RunInfo:
        with _translated(lambda: _run_not_found(run_id)):
            return _run_info(self._client.get_run(run_id))

    def list_runs(
        self,
        experiment: str,
        max_results: int = 100,
        filter: str = "",  # mlflow's search syntax: "metrics.auc > 0.6"
        order_by: list[str] | None = None,
    ) -> list[RunInfo]:
        """Runs of ``experiment``, newest first unless ``order_by``; [] for an unknown one."""
        exp_id = self._experiment_id(experiment, create=False)
        if exp_id is None:
            return []
        with _translated():
            runs = self._client.search_runs(
                [exp_id],
                filter_string=filter,
                max_results=max_results,
                order_by=order_by or ["attributes.start_time DESC"],
            )
        return [_run_info(r) for r in runs]

    def get_metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every value of one metric, by step."""
        with _translated(lambda: _run_not_found(run_id)):
            points = self._client.get_metric_history(run_id, key)
        if not points:
            self.get_run(run_id)  # RUN_NOT_FOUND rather than an empty history
        out = [MetricPoint(int(m.step), float(m.value), _dt0(m.timestamp)) for m in points]
        return sorted(out, key=lambda p: (p.step, p.timestamp))

    def download_artifacts(self, run_id: str, path: str, dst: str | Path) -> Path:
        """Copy the run's artifact file or directory ``path`` into ``dst``; the local path."""
        Path(dst).mkdir(parents=True, exist_ok=True)
        self.get_run(run_id)  # RUN_NOT_FOUND rather than a missing artifact

        def missing() -> NotFound:
            return NotFound(
                f"run {run_id!r} has no artifact {path!r}",
                code="ARTIFACT_NOT_FOUND",
                details={"run_id": run_id, "path": path},
            )

        with _translated(missing):
            return Path(self._client.download_artifacts(run_id, path, str(dst)))

    # -- registry ------------------------------------------------------------------------------

    def register(
        self,
        run_id: str,
        name: str,
        artifact_path: str = "model",
        tags: Mapping[str, Any] | None = None,
    ) -> int:
        """Register the run's ``artifact_path`` directory as the next version of ``name``
        (creating the model on first use); the new version number."""
        run = self.get_run(run_id)
        with _translated(lambda: _run_not_found(run_id)):
            logged = self._client.list_artifacts(run_id, artifact_path)
        if not logged:
            raise NotFound(
                f"run {run_id!r} has no artifacts under {artifact_path!r}",
                code="ARTIFACT_NOT_FOUND",
                details={"run_id": run_id, "path": artifact_path},
            )
        self._ensure_registered_model(name)
        source = f"{run.artifact_uri.rstrip('/')}/{artifact_path.strip('/')}"
        str_tags = {k: str(v) for k, v in (tags or {}).items()}
        with _translated():
            mv = self._client.create_model_version(
                name, source=source, run_id=run_id, tags=str_tags, await_creation_for=0
            )
        return int(mv.version)

    def _ensure_registered_model(self, name: str) -> None:
        try:
            with _translated():
                self._client.create_registered_model(name)
        except AppError as exc:
            cause = exc.__cause__
            if cause is None or _error_code(cause) not in _ALREADY_EXISTS_CODES:
                raise

    def _raise_missing_version(self, name: str, version: int) -> NoReturn:
        """A version lookup failed: say whether the model or just the version is missing."""
        self._registered_model(name)
        raise _version_not_found(name, version)

    def _registered_model(self, name: str) -> Any:
        with _translated(lambda: _model_not_found(name)):
            return self._client.get_registered_model(name)

    def get_version(self, name: str, version: int) -> ModelVersionInfo:
        try:
            with _translated():
                return _version_info(self._client.get_model_version(name, str(version)))
        except NotFound:
            self._raise_missing_version(name, version)

    def get_by_alias(self, name: str, alias: str) -> ModelVersionInfo:
        """The version ``alias`` (``champion``, ``challenger``) points at."""
        rm = self._registered_model(name)
        if alias not in (rm.aliases or {}):
            raise _alias_not_found(name, alias)
        with _translated(lambda: _alias_not_found(name, alias)):
            return _version_info(self._client.get_model_version_by_alias(name, alias))

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` at ``version`` (moving it off the version it was on)."""
        try:
            with _translated():
                self._client.set_registered_model_alias(name, alias, str(version))
        except NotFound:
            self._raise_missing_version(name, version)

    def delete_alias(self, name: str, alias: str) -> None:
        rm = self._registered_model(name)
        if alias not in (rm.aliases or {}):
            raise _alias_not_found(name, alias)
        with _translated(lambda: _model_not_found(name)):
            self._client.delete_registered_model_alias(name, alias)

    def set_version_tag(self, name: str, version: int, key: str, value: Any) -> None:
        try:
            with _translated():
                self._client.set_model_version_tag(name, str(version), key, str(value))
        except NotFound:
            self._raise_missing_version(name, version)

    def list_models(self) -> list[RegisteredModelInfo]:
        """Every registered model with all its versions and aliases, by name."""
        with _translated():
            models = _paged(self._client.search_registered_models, max_results=1000)
            versions = _paged(self._client.search_model_versions, max_results=10000)
        by_name: dict[str, list[Any]] = {}
        for mv in versions:
            by_name.setdefault(mv.name, []).append(mv)
        out = []
        for rm in sorted(models, key=lambda m: m.name):
            aliases = {a: int(v) for a, v in (rm.aliases or {}).items()}
            infos = sorted(
                (_version_info(mv, aliases) for mv in by_name.get(rm.name, [])),
                key=lambda v: v.version,
            )
            out.append(
                RegisteredModelInfo(
                    name=rm.name,
                    description=rm.description or "",
                    tags=dict(rm.tags or {}),
                    aliases=aliases,
                    versions=tuple(infos),
                    created=_dt0(rm.creation_timestamp),
                    updated=_dt0(rm.last_updated_timestamp),
                )
            )
        return out

    def download_model(self, name: str, version: int, dst: str | Path) -> Path:
        """Copy a registered version's model directory into ``dst``; the local directory."""
        mv = self.get_version(name, version)
        Path(dst).mkdir(parents=True, exist_ok=True)
        _import_mlflow()
        from mlflow.artifacts import download_artifacts

        with _translated(lambda: _version_not_found(name, version)):
            local = download_artifacts(
                artifact_uri=mv.source,
                dst_path=str(dst),
                tracking_uri=self.tracking_uri,
                registry_uri=self.tracking_uri,
            )
        return Path(local)
