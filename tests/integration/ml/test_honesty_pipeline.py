"""The whole pipeline's honesty checks (what `quantdesk ml check` runs), as tests."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from quantdesk.cli import app


@pytest.mark.slow
def test_ml_check_finds_no_edge_in_noise_finds_the_planted_pattern_refuses_lookahead(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    result = CliRunner().invoke(app, ["ml", "check", "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    rw, planted = doc["random_walk"], doc["planted_pattern"]
    # (a) noise: the out-of-sample AUC sits within noise of 0.5
    assert abs(rw["auc"] - 0.5) <= 4 * rw["auc_se"]
    # (b) the AR(1) pattern is found, far outside that band (the two rules disagree on it)
    assert planted["auc"] > 0.5 + 4 * planted["auc_se"]
    assert planted["auc"] > rw["auc"] + 0.05
    # (c) the peeking feature is named by the guard
    assert doc["lookahead"] == {"passed": True, "refused": "next_close"}
    assert doc["passed"] is True
