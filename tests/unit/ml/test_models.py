"""The model interface: the registry, loading by the saved class, and clear errors when an
optional library is missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from quantdesk.ml.models import LSTMModel, Model, XGBoostModel, make_model


def test_make_model_builds_each_registered_model():
    assert isinstance(make_model("xgboost", "regressor", max_depth=3), XGBoostModel)
    lstm = make_model("lstm", "classifier", window=4)
    assert isinstance(lstm, LSTMModel)
    assert (lstm.kind, lstm.params["window"]) == ("classifier", 4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: make_model("forest"), "unknown model 'forest'"),
        (lambda: make_model("xgboost", "ranker"), "kind must be"),
        (lambda: make_model("xgboost", max_deep=3), "unknown XGBoost params"),
        (lambda: make_model("lstm", hidden=3), "unknown LSTM params"),
    ],
)
def test_bad_model_requests_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_model_load_picks_the_saved_class_and_subclasses_refuse_others(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 2)), rng.integers(0, 2, 200)
    path = XGBoostModel(n_estimators=5).fit(X, y).save(tmp_path / "m")
    loaded = Model.load(path)
    assert isinstance(loaded, XGBoostModel)
    assert loaded.feature_names == ["f0", "f1"]
    with pytest.raises(ValueError, match="holds a XGBoostModel, not a LSTMModel"):
        LSTMModel.load(path)


def test_an_unfitted_model_cannot_be_saved_or_used(tmp_path):
    model = XGBoostModel()
    with pytest.raises(ValueError, match="not been fitted"):
        model.save(tmp_path / "m")
    with pytest.raises(ValueError, match="not been fitted"):
        model.predict(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="not been fitted"):
        LSTMModel().predict(np.zeros((2, 2)))


def test_the_package_imports_without_torch_or_xgboost_and_names_the_extras():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None
        sys.modules["xgboost"] = None
        import quantdesk.ml.models as models
        for name, extra in [("lstm", "quantdesk[lstm]"), ("xgboost", "quantdesk[ml]")]:
            try:
                models.make_model(name)
            except models.MissingDependencyError as exc:
                assert f"pip install '{extra}'" in str(exc), exc
                assert isinstance(exc, ImportError)
            else:
                raise AssertionError(name + " built without its library")
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
