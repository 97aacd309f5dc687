"""`quantdesk ml train/models list/promote/predict/features build`: contracts and bad input.

Real parts throughout: bars in a Parquet store, XGBoost, the embedded MLflow store (SQLite) and
the backtester for the signal backtest.
"""

from __future__ import annotations

import itertools
import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quantdesk.cli import app
from quantdesk.market.store import BarStore
from quantdesk.ml.honesty import synthetic_daily

runner = CliRunner()
PLANTED = ["NSE:PATA", "NSE:PATB", "NSE:PATC"]
NOISE = ["NSE:RWA", "NSE:RWB", "NSE:RWC"]
START, END = date(2019, 1, 1), date(2023, 12, 31)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ml-cli")
    store = BarStore(root / "bars")
    for k, s in enumerate(PLANTED):
        store.write(s, synthetic_daily(s, START, END, phi=0.35, seed=k), "1d")
    for k, s in enumerate(NOISE):
        store.write(s, synthetic_daily(s, START, END, phi=0.0, seed=100 + k), "1d")
    return root


@pytest.fixture(autouse=True)
def _env(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTDESK_DATA_DIR", str(data_dir))
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["ml", *args])
    return result.exit_code, result.stdout, result.stderr


def _train(symbols: list[str], name: str, *extra: str) -> tuple[int, str, str]:
    return _run(
        "train",
        "--model",
        "xgboost",
        "--symbols",
        ",".join(symbols),
        "--interval",
        "1d",
        "--start",
        START.isoformat(),
        "--end",
        END.isoformat(),
        "--label",
        "forward:1",
        "--folds",
        "4",
        "--costs",
        "bps:3",
        "--name",
        name,
        "--json",
        *extra,
    )


def _models() -> dict[str, dict]:
    code, out, err = _run("models", "list", "--json")
    assert code == 0, err
    return {m["name"]: m for m in json.loads(out)}


def test_train_json_contract_versions_and_promotion(data_dir: Path) -> None:
    code, out, err = _train(PLANTED, "planted")
    assert code == 0, err
    doc = json.loads(out)
    assert {"run_id", "model_name", "version", "folds", "oos"} <= set(doc)
    assert doc["model_name"] == "planted" and doc["version"] == 1
    assert len(doc["folds"]) == 4
    assert all({"auc", "start", "end", "rows"} <= set(f) for f in doc["folds"])
    # The planted AR(1) pattern is found out of sample, and its signals were backtested.
    assert doc["oos"]["auc"] > 0.5 + 4 * doc["oos"]["auc_se"]
    assert isinstance(doc["oos"]["sharpe_net"], float)
    assert doc["oos"]["trades"] > 0
    assert doc["checks"]["passed"] is True
    # Folds are in time order and do not overlap.
    ends = [(f["start"], f["end"]) for f in doc["folds"]]
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ends))

    code, out, err = _train(PLANTED, "planted")
    assert code == 0, err
    assert json.loads(out)["version"] == 2

    code, _, err = _run("promote", "planted", "1", "--alias", "champion")
    assert code == 0, err
    model = _models()["planted"]
    assert model["aliases"] == {"champion": 1}
    assert [v["checks"] for v in model["versions"]] == ["passed", "passed"]

    code, out, err = _run("predict", "planted", "--symbols", ",".join(PLANTED), "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["symbol"] for r in rows] == PLANTED
    assert all(0.0 <= r["value"] <= 1.0 and r["version"] == 1 for r in rows)
    assert all(r["signal"] in (-1, 0, 1) for r in rows)

    code, out, err = _run("promote", "planted", "2")
    assert code == 0, err
    code, out, _ = _run("predict", "planted", "--symbols", PLANTED[0], "--json")
    assert json.loads(out)[0]["version"] == 2


def test_a_model_without_edge_is_registered_but_cannot_be_promoted() -> None:
    code, out, err = _train(NOISE, "noise")
    assert code == 0, err
    doc = json.loads(out)
    assert abs(doc["oos"]["auc"] - 0.5) <= 4 * doc["oos"]["auc_se"]
    assert doc["checks"]["passed"] is False
    code, _, err = _run("promote", "noise", str(doc["version"]))
    assert code == 2
    assert "ML_CHECKS_FAILED" in err
    assert _models()["noise"]["aliases"] == {}


@pytest.mark.parametrize(
    ("args", "code_text"),
    [
        (
            ["--symbols", "NSE:NOPE", "--start", "2019-01-01", "--end", "2023-12-31"],
            "ML_UNKNOWN_SYMBOL",
        ),
        (["--symbols", PLANTED[0], "--start", "2023-12-31", "--end", "2019-01-01"], "ML_BAD_DATA"),
        (["--symbols", PLANTED[0], "--start", "2010-01-01", "--end", "2010-12-31"], "ML_NO_DATA"),
        (
            ["--symbols", PLANTED[0], "--start", "2023-10-01", "--end", "2023-12-31"],
            "ML_TOO_FEW_SAMPLES",
        ),
        (
            ["--symbols", PLANTED[0], "--start", "2023-12-01", "--end", "2023-12-20"],
            "ML_NAN_FEATURES",
        ),
        (
            [
                "--symbols",
                PLANTED[0],
                "--start",
                "2019-01-01",
                "--end",
                "2023-12-31",
                "--label",
                "backward:3",
            ],
            "ML_BAD_REQUEST",
        ),
        (
            [
                "--symbols",
                PLANTED[0],
                "--start",
                "2019-01-01",
                "--end",
                "2023-12-31",
                "--model",
                "forest",
            ],
            "ML_BAD_REQUEST",
        ),
        (
            [
                "--symbols",
                PLANTED[0],
                "--start",
                "2019-01-01",
                "--end",
                "2023-12-31",
                "--folds",
                "1",
            ],
            "ML_BAD_REQUEST",
        ),
    ],
)
def test_bad_training_input_is_refused_and_registers_nothing(
    args: list[str], code_text: str
) -> None:
    before = _models()
    code, _, err = _run("train", "--name", "bad-input", "--costs", "bps:3", *args)
    assert code == 2
    assert code_text in err
    assert "bad-input" not in _models()
    assert set(_models()) == set(before)


def test_promote_and_predict_unknown_names_and_versions() -> None:
    code, _, err = _run("promote", "no-such-model", "1")
    assert code == 2 and "NOT_FOUND" in err
    code, _, err = _run("predict", "no-such-model", "--symbols", PLANTED[0])
    assert code == 2 and "NOT_FOUND" in err
    code, _, err = _run("promote", "planted", "1", "--alias", "leader")
    assert code == 2 and "ML_BAD_REQUEST" in err


def test_features_build_writes_the_offline_store(data_dir: Path) -> None:
    code, out, err = _run(
        "features",
        "build",
        "--symbols",
        ",".join(PLANTED),
        "--start",
        "2022-01-01",
        "--end",
        "2022-12-31",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["symbols"] == PLANTED
    assert doc["rows"] > 700
    from quantdesk.ml.features import OfflineFeatureStore, default_feature_set

    store = OfflineFeatureStore(data_dir, default_feature_set())
    frame = store.read(PLANTED, interval="1d")
    assert set(frame.index.get_level_values("symbol")) == set(PLANTED)
    assert doc["hash"] == default_feature_set().hash


def test_the_lstm_trains_through_the_same_pipeline() -> None:
    code, out, err = _run(
        "train",
        "--model",
        "lstm",
        "--symbols",
        ",".join(PLANTED),
        "--interval",
        "1d",
        "--start",
        "2021-01-01",
        "--end",
        END.isoformat(),
        "--label",
        "forward:1",
        "--folds",
        "3",
        "--costs",
        "bps:3",
        "--name",
        "planted-lstm",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["model_name"] == "planted-lstm" and len(doc["folds"]) == 3
    # Sequences of the same features find the AR(1) pattern too.
    assert doc["oos"]["auc"] > 0.5 + 3 * doc["oos"]["auc_se"]
    code, out, err = _run(
        "predict", "planted-lstm", "--version", "1", "--symbols", PLANTED[0], "--json"
    )
    assert code == 0, err
    assert 0.0 <= json.loads(out)[0]["value"] <= 1.0
