"""The tracking wrapper against a real ``mlflow server`` process (artifacts proxied by the server).

The server runs in its own process group, so teardown stops it and its uvicorn worker together.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from quantdesk.errors import NotFound
from quantdesk.ml.tracking import Tracker

START_TIMEOUT = 60.0  # a busy 2-core CI machine: the server imports a lot and migrates its store
MLFLOW = Path(sys.executable).parent / "mlflow"


@dataclass
class MlflowServer:
    url: str
    root: Path  # backend db and the server's artifact destination
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def artifacts(self) -> Path:
        return self.root / "art"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a recycled group of another user
        return False
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole group, then SIGKILL whatever is left after 15 s."""
    pgid = proc.pid  # start_new_session: the server leads its own group
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader: a zombie still counts as a member of its group
        if not _group_alive(pgid):
            break
        time.sleep(0.1)
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait(timeout=15)


def _start(root: Path, log: Path) -> MlflowServer:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env.update(
        MLFLOW_DISABLE_TELEMETRY="true",
        # Job execution starts a runner and seven huey consumers: not needed for tracking.
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )
    cmd = [
        str(MLFLOW),
        "server",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
        "--backend-store-uri", f"sqlite:///{(root / 'm.db').as_posix()}",
        "--artifacts-destination", str(root / "art"),
        "--serve-artifacts",
    ]  # fmt: skip
    # 127.0.0.1 is among the security middleware's default allowed hosts: no --allowed-hosts.
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return MlflowServer(f"http://127.0.0.1:{port}", root, proc, log)


def _wait_healthy(server: MlflowServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.proc.returncode}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"mlflow server not healthy after {START_TIMEOUT:.0f} s")


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    root = tmp_path / "server"
    root.mkdir()
    log = tmp_path / "mlflow-server.log"
    server: MlflowServer | None = None
    try:
        for _attempt in range(3):  # the free port may be taken between probe and bind
            server = _start(root, log)
            try:
                _wait_healthy(server)
                break
            except RuntimeError:
                if "address already in use" not in log.read_text(errors="replace").lower():
                    raise
                _stop(server.proc)
                server = None
        else:
            raise RuntimeError("no free port for the mlflow server after 3 attempts")
        assert server is not None
        yield server
    except Exception:
        print(f"--- mlflow server log ({log}) ---\n{log.read_text(errors='replace')}")
        raise
    finally:
        if server is not None:
            _stop(server.proc)
            assert not _group_alive(server.proc.pid), "mlflow server processes leaked"


def _model_dir(root: Path, payload: str) -> Path:
    model = root / f"model-{payload}"
    (model / "parts").mkdir(parents=True)
    (model / "model.json").write_text(json.dumps({"kind": "xgboost", "payload": payload}))
    (model / "parts" / "booster.ubj").write_bytes(payload.encode() * 100)
    return model


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow  # ~7 s to start the server alone, 10-13 s in all on a busy 2-core machine
def test_runs_artifacts_and_registry_through_a_tracking_server(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    tracker = Tracker(tracking_uri=mlflow_server.url, artifact_dir=tmp_path / "ignored")
    assert tracker.is_remote
    assert tracker.artifact_dir is None

    versions = []
    for i, payload in enumerate(["one", "two"]):
        model = _model_dir(tmp_path, payload)
        with tracker.start_run("xgb-nifty", run_name=f"train-{payload}", tags={"i": i}) as run:
            run.log_params({"xgb": {"max_depth": 4 + i}, "folds": 3})
            for fold in range(3):
                run.log_fold_metrics(fold, {"auc": 0.55 + fold / 100})
            run.log_metrics({"auc": 0.56 + i / 100})
            run.log_dict({"features": ["rsi_14"]}, "features.json")
            run.log_model_dir(model)
        versions.append(tracker.register(run.run_id, "nifty-direction", tags={"payload": payload}))
    assert versions == [1, 2]

    info = tracker.get_run(run.run_id)
    assert info.status == "FINISHED"
    assert info.params == {"xgb.max_depth": "5", "folds": "3"}
    assert info.metrics["fold_2/auc"] == pytest.approx(0.57)
    assert info.tags == {"i": "1"}
    assert info.artifact_uri.startswith("mlflow-artifacts:")  # the server chose, and proxies
    assert [r.name for r in tracker.list_runs("xgb-nifty")] == ["train-two", "train-one"]

    # The files went through the server to its artifact destination.
    stored = list(mlflow_server.artifacts.rglob("booster.ubj"))
    assert len(stored) == 2

    tracker.set_alias("nifty-direction", "champion", 1)
    tracker.set_alias("nifty-direction", "challenger", 2)
    tracker.set_alias("nifty-direction", "champion", 2)
    champion = tracker.get_by_alias("nifty-direction", "champion")
    assert (champion.version, champion.run_id) == (2, run.run_id)
    assert champion.aliases == ("challenger", "champion")
    assert champion.tags == {"payload": "two"}
    [listed] = [m for m in tracker.list_models() if m.name == "nifty-direction"]
    assert listed.aliases == {"champion": 2, "challenger": 2}
    assert [v.version for v in listed.versions] == [1, 2]

    downloaded = tracker.download_artifacts(run.run_id, "model", tmp_path / "dl-run")
    assert _files(downloaded) == _files(tmp_path / "model-two")
    served = tracker.download_model("nifty-direction", champion.version, tmp_path / "dl-model")
    assert _files(served) == _files(tmp_path / "model-two")

    with pytest.raises(NotFound) as err:
        tracker.get_by_alias("nifty-direction", "retired")
    assert err.value.code == "MODEL_ALIAS_NOT_FOUND"
    with pytest.raises(NotFound) as err:
        tracker.get_version("nifty-direction", 7)
    assert err.value.code == "MODEL_VERSION_NOT_FOUND"

    failing = tracker.start_run("xgb-nifty", run_name="broken")
    with pytest.raises(RuntimeError), failing:
        raise RuntimeError("diverged")
    assert tracker.get_run(failing.run_id).status == "FAILED"


def test_the_training_pipeline_and_serving_through_a_tracking_server(
    mlflow_server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same flow as the embedded store: train, register, promote, predict via the alias."""
    from datetime import date

    from quantdesk.market.store import BarStore
    from quantdesk.ml.dataset import LabelSpec
    from quantdesk.ml.honesty import synthetic_daily
    from quantdesk.ml.pipeline import TrainRequest, model_checks_passed, train
    from quantdesk.ml.serving import predict_latest

    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    symbols = ["NSE:SRVA", "NSE:SRVB"]
    store = BarStore(tmp_path / "bars")
    for k, s in enumerate(symbols):
        store.write(
            s, synthetic_daily(s, date(2020, 1, 1), date(2023, 12, 31), phi=0.35, seed=k), "1d"
        )
    tracker = Tracker(tracking_uri=mlflow_server.url)
    result = train(
        TrainRequest(
            model="xgboost",
            symbols=symbols,
            interval="1d",
            start=date(2020, 1, 1),
            end=date(2023, 12, 31),
            label=LabelSpec("forward", 1),
            folds=3,
            name="served-ar1",
            costs="bps:3",
        ),
        store=store,
        tracker=tracker,
    )
    assert result.version == 1 and model_checks_passed(tracker, "served-ar1", 1)
    run = tracker.get_run(result.run_id)
    assert run.metrics["oos_auc"] == pytest.approx(result.oos["auc"])
    assert "fold_2/auc" in run.metrics
    assert run.params["feature_set_hash"] and run.params["label"] == "forward:1"
    # The bundle went to the server's artifact store and serves from there.
    assert list(mlflow_server.artifacts.rglob("bundle.json"))
    tracker.set_alias("served-ar1", "champion", 1)
    rows = predict_latest(tracker, store, "served-ar1", symbols)
    assert [r["version"] for r in rows] == [1, 1]
