"""The tracking wrapper on the embedded store (SQLite + artifacts on disk), no server."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from quantdesk.errors import AppError, NotFound
from quantdesk.ml.tracking import MLExtraMissing, RunHandle, Tracker
from quantdesk.settings import Settings


@pytest.fixture(scope="module")
def tracker(tmp_path_factory: pytest.TempPathFactory) -> Tracker:
    # One store per module (per xdist worker): creating it runs MLflow's migrations (~1-2 s).
    root = tmp_path_factory.mktemp("mlflow")
    return Tracker(f"sqlite:///{(root / 'mlflow.db').as_posix()}")


@pytest.fixture
def name() -> str:
    """A fresh experiment / model name, so tests sharing the store do not see each other."""
    return f"t-{uuid.uuid4().hex[:8]}"


def _model_dir(root: Path, payload: str = "booster-bytes") -> Path:
    model = root / "saved_model"
    (model / "parts").mkdir(parents=True)
    (model / "model.json").write_text(json.dumps({"kind": "xgboost", "payload": payload}))
    (model / "parts" / "booster.ubj").write_bytes(payload.encode() * 3)
    return model


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _registered_version(tracker: Tracker, name: str, tmp_path: Path, payload: str) -> int:
    with tracker.start_run(name, run_name=f"train-{payload}") as run:
        run.log_model_dir(_model_dir(tmp_path / payload, payload))
    return tracker.register(run.run_id, name, tags={"payload": payload})


def test_importing_the_module_does_not_import_mlflow() -> None:
    code = "import sys, quantdesk.ml.tracking; print('mlflow' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_without_mlflow_the_tracker_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # makes `import mlflow` raise ImportError
    with pytest.raises(MLExtraMissing, match=r"pip install 'quantdesk\[ml\]'") as err:
        Tracker(f"sqlite:///{(tmp_path / 'm.db').as_posix()}")
    assert err.value.code == "ML_EXTRA_MISSING"


def test_the_default_store_is_created_under_the_data_dir_apart_from_others(
    tracker: Tracker, tmp_path: Path, name: str
) -> None:
    settings = Settings(data_dir=tmp_path / "var", mlflow_tracking_uri=None)
    embedded = Tracker.from_settings(settings)
    with embedded.start_run(name, run_name="there") as run:
        run.log_text("hello", "notes/hello.txt")

    assert (tmp_path / "var" / "mlflow" / "mlflow.db").is_file()
    assert embedded.artifact_dir == (tmp_path / "var" / "mlflow" / "artifacts").resolve()
    logged = list(embedded.artifact_dir.rglob("hello.txt"))
    assert [p.read_text() for p in logged] == ["hello"]

    # One client (one store set-up) per URI; trackers on other URIs see only their own runs.
    assert Tracker.from_settings(settings)._client is embedded._client
    assert embedded._client is not tracker._client
    assert [r.name for r in embedded.list_runs(name)] == ["there"]
    assert tracker.list_runs(name) == []


def test_a_run_records_params_metrics_and_tags(tracker: Tracker, name: str) -> None:
    with tracker.start_run(name, run_name="xgb-baseline", tags={"symbol": "NIFTY"}) as run:
        run.log_params({"model": "xgboost", "xgb": {"max_depth": 4, "eta": 0.1}, "folds": 5})
        run.log_metrics({"auc": 0.61, "logloss": 0.68})
        run.set_tags({"stage": "cv"})

    info = tracker.get_run(run.run_id)
    assert info.name == "xgb-baseline"
    assert info.status == "FINISHED"
    assert info.start_time is not None
    assert info.end_time is not None
    assert info.end_time >= info.start_time
    assert info.params == {"model": "xgboost", "xgb.max_depth": "4", "xgb.eta": "0.1", "folds": "5"}
    assert info.metrics == {"auc": pytest.approx(0.61), "logloss": pytest.approx(0.68)}
    assert info.tags == {"symbol": "NIFTY", "stage": "cv"}  # no mlflow.* system tags


def test_per_fold_metrics_are_prefixed_names_and_steps(tracker: Tracker, name: str) -> None:
    fold_auc = [0.58, 0.63, 0.60]
    with tracker.start_run(name) as run:
        for fold, auc in enumerate(fold_auc):
            run.log_fold_metrics(fold, {"auc": auc})
            run.log_metrics({"cv_auc": auc}, step=fold)
        run.log_metrics({"auc": sum(fold_auc) / 3})

    metrics = tracker.get_run(run.run_id).metrics
    assert {k: metrics[k] for k in ("fold_0/auc", "fold_1/auc", "fold_2/auc")} == {
        f"fold_{i}/auc": pytest.approx(v) for i, v in enumerate(fold_auc)
    }
    assert metrics["auc"] == pytest.approx(0.60333, abs=1e-4)
    assert metrics["cv_auc"] == pytest.approx(0.60)  # the value at the highest step
    history = tracker.get_metric_history(run.run_id, "cv_auc")
    assert [(p.step, p.value) for p in history] == [
        (0, pytest.approx(0.58)),
        (1, pytest.approx(0.63)),
        (2, pytest.approx(0.60)),
    ]


def test_artifacts_round_trip(tracker: Tracker, name: str, tmp_path: Path) -> None:
    model = _model_dir(tmp_path)
    report = tmp_path / "report.html"
    report.write_text("<h1>report</h1>")
    with tracker.start_run(name) as run:
        run.log_dict({"features": ["rsi_14", "ret_5"]}, "features.json")
        run.log_text("fold,auc\n0,0.6\n", "cv/folds.csv")
        run.log_artifact(report, "reports")
        assert run.log_model_dir(model) == "model"

    dst = tmp_path / "download"
    local_model = tracker.download_artifacts(run.run_id, "model", dst)
    assert _files(local_model) == _files(model)  # the model's files, as they were: no flavor
    features = tracker.download_artifacts(run.run_id, "features.json", dst)
    assert json.loads(features.read_text()) == {"features": ["rsi_14", "ret_5"]}
    csv = tracker.download_artifacts(run.run_id, "cv/folds.csv", dst)
    assert csv.read_text() == "fold,auc\n0,0.6\n"
    html = tracker.download_artifacts(run.run_id, "reports/report.html", dst)
    assert html.read_text() == "<h1>report</h1>"

    # The embedded store keeps the files under the tracker's artifact dir.
    assert tracker.artifact_dir is not None
    assert tracker.artifact_dir.as_uri() in tracker.get_run(run.run_id).artifact_uri


def test_register_versions_and_move_aliases(tracker: Tracker, name: str, tmp_path: Path) -> None:
    v1 = _registered_version(tracker, name, tmp_path, "one")
    v2 = _registered_version(tracker, name, tmp_path, "two")
    assert (v1, v2) == (1, 2)

    tracker.set_alias(name, "champion", 1)
    tracker.set_alias(name, "challenger", 2)
    champion = tracker.get_by_alias(name, "champion")
    assert (champion.name, champion.version, champion.aliases) == (name, 1, ("champion",))
    assert champion.tags == {"payload": "one"}
    assert (
        champion.run_id
        == tracker.list_runs(name, filter="tags.mlflow.runName = 'train-one'")[0].run_id
    )
    assert champion.source.endswith("/model")

    # Promotion: champion moves to version 2, which now holds both aliases.
    tracker.set_alias(name, "champion", 2)
    assert tracker.get_by_alias(name, "champion").version == 2
    assert tracker.get_version(name, 2).aliases == ("challenger", "champion")
    assert tracker.get_version(name, 1).aliases == ()
    tracker.delete_alias(name, "challenger")
    assert tracker.get_version(name, 2).aliases == ("champion",)

    tracker.set_version_tag(name, 1, "retired", True)
    assert tracker.get_version(name, 1).tags == {"payload": "one", "retired": "True"}

    [model] = [m for m in tracker.list_models() if m.name == name]
    assert model.aliases == {"champion": 2}
    assert [(v.version, v.aliases) for v in model.versions] == [(1, ()), (2, ("champion",))]

    local = tracker.download_model(name, 2, tmp_path / "served")
    assert json.loads((local / "model.json").read_text())["payload"] == "two"


def test_a_run_that_raises_ends_failed(tracker: Tracker, name: str) -> None:
    def train(run: RunHandle) -> None:
        run.log_params({"lr": 0.1})
        _ = 1 / 0

    run = tracker.start_run(name, run_name="broken")
    with pytest.raises(ZeroDivisionError), run:
        train(run)

    info = tracker.get_run(run.run_id)
    assert info.status == "FAILED"
    assert info.tags["quantdesk.error"].startswith("ZeroDivisionError")
    assert info.params == {"lr": "0.1"}


def test_list_runs_newest_first_with_a_filter(tracker: Tracker, name: str) -> None:
    for i, auc in enumerate([0.55, 0.62, 0.58]):
        with tracker.start_run(name, run_name=f"r{i}") as run:
            run.log_metrics({"auc": auc})

    assert [r.name for r in tracker.list_runs(name)] == ["r2", "r1", "r0"]
    assert [r.name for r in tracker.list_runs(name, max_results=1)] == ["r2"]
    good = tracker.list_runs(name, filter="metrics.auc > 0.57", order_by=["metrics.auc DESC"])
    assert [r.name for r in good] == ["r1", "r2"]
    assert tracker.list_runs(f"{name}-never-used") == []


def test_missing_things_raise_our_not_found(tracker: Tracker, name: str, tmp_path: Path) -> None:
    _registered_version(tracker, name, tmp_path, "one")
    tracker.set_alias(name, "champion", 1)
    with tracker.start_run(name) as empty_run:
        pass

    cases = {
        "RUN_NOT_FOUND": lambda: tracker.get_run("0" * 32),
        "MODEL_NOT_FOUND": lambda: tracker.get_version("no-such-model", 1),
        "MODEL_VERSION_NOT_FOUND": lambda: tracker.get_version(name, 9),
        "MODEL_ALIAS_NOT_FOUND": lambda: tracker.get_by_alias(name, "challenger"),
        "ARTIFACT_NOT_FOUND": lambda: tracker.register(empty_run.run_id, name),
    }
    more = {
        "MODEL_NOT_FOUND": [
            lambda: tracker.get_by_alias("no-such-model", "champion"),
            lambda: tracker.set_alias("no-such-model", "champion", 1),
            lambda: tracker.delete_alias("no-such-model", "champion"),
            lambda: tracker.set_version_tag("no-such-model", 1, "k", "v"),
        ],
        "MODEL_VERSION_NOT_FOUND": [
            lambda: tracker.set_alias(name, "champion", 9),
            lambda: tracker.set_version_tag(name, 9, "k", "v"),
            lambda: tracker.download_model(name, 9, tmp_path / "dl"),
        ],
        "MODEL_ALIAS_NOT_FOUND": [lambda: tracker.delete_alias(name, "challenger")],
        "RUN_NOT_FOUND": [
            lambda: tracker.register("0" * 32, name),
            lambda: tracker.download_artifacts("0" * 32, "model", tmp_path / "dl"),
            lambda: tracker.get_metric_history("0" * 32, "auc"),
        ],
        "ARTIFACT_NOT_FOUND": [
            lambda: tracker.download_artifacts(empty_run.run_id, "model", tmp_path / "dl")
        ],
    }
    calls = [(code, fn) for code, fn in cases.items()]
    calls += [(code, fn) for code, fns in more.items() for fn in fns]
    for code, call in calls:
        with pytest.raises(NotFound) as err:
            call()
        assert err.value.code == code, err.value.message
        assert err.value.status_code == 404


def test_mlflow_rejections_become_app_errors(tracker: Tracker, name: str) -> None:
    with tracker.start_run(name) as run:
        run.log_params({"lr": 0.1})
        with pytest.raises(AppError) as err:
            run.log_params({"lr": 0.2})  # a param cannot change value
    assert err.value.code == "ML_INVALID_REQUEST"
    assert err.value.status_code == 400
    assert type(err.value.__cause__).__name__ == "MlflowException"


def test_an_unknown_database_store_needs_an_artifact_dir() -> None:
    with pytest.raises(ValueError, match="artifact_dir"):
        Tracker("postgresql://u@db/mlflow")


def test_starting_a_run_restores_an_experiment_deleted_in_the_ui(
    tracker: Tracker, name: str
) -> None:
    with tracker.start_run(name, run_name="before") as run:
        pass
    tracker._client.delete_experiment(run.experiment_id)
    fresh = Tracker(tracker.tracking_uri)  # no remembered experiment ids

    assert fresh.list_runs(name) == []  # reading does not bring it back
    with fresh.start_run(name, run_name="after") as again:
        pass
    assert again.experiment_id == run.experiment_id
    assert "after" in [r.name for r in fresh.list_runs(name)]
