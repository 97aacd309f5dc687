"""Feature set definitions: the default set, validation, YAML and the content hash."""

from __future__ import annotations

import subprocess
import sys

import pytest

from quantdesk.ml.features import KINDS, Feature, FeatureSet, default_feature_set


def test_default_set_has_the_issue_features_and_their_warm_ups() -> None:
    fs = default_feature_set()
    lookbacks = {f.name: f.lookback for f in fs.features}
    assert lookbacks == {
        "ret_1": 1,
        "ret_5": 5,
        "ret_20": 20,
        "logret_1": 1,
        "vol_20": 20,  # 20 log returns, the first of which needs one earlier bar
        "rsi_14": 14,
        "macd_line": 33,  # TA-Lib's MACD gives all three outputs from slow + signal - 2
        "macd_signal": 33,
        "macd_hist": 33,
        "atr_14": 14,
        "bb_pctb_20": 19,
        "volume_z_20": 19,
        "vwap_dist_20": 19,
        "gap": 1,
        "time_of_day": 0,
        "day_of_week": 0,
        "xs_rank_ret_5": 5,  # a rank warms up with its source
        "xs_rank_ret_20": 20,
        "xs_rank_vol_20": 20,
    }
    assert fs.lookback == 33
    assert fs.columns[: len(fs.series_columns)] == fs.series_columns
    assert [f.name for f in fs.features if f.is_rank] == [
        "xs_rank_ret_5",
        "xs_rank_ret_20",
        "xs_rank_vol_20",
    ]


def test_yaml_round_trip_keeps_the_definition_and_the_hash() -> None:
    fs = default_feature_set()
    again = FeatureSet.from_yaml(fs.to_yaml())
    assert again == fs
    assert again.hash == fs.hash
    assert "kind: bollinger_b" in fs.to_yaml()


def test_hash_is_the_same_in_another_process() -> None:
    code = "from quantdesk.ml.features import default_feature_set as d; print(d().hash)"
    # A fresh interpreter has another str-hash seed: the hash must not depend on it.
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    )
    assert out.stdout.strip() == default_feature_set().hash
    assert len(default_feature_set().hash) == 64


def test_hash_follows_content_not_spelling() -> None:
    base = "name: s\nversion: 1\nfeatures:\n- {name: b, kind: bollinger_b, period: 20, k: 2}\n"
    spelled = "version: 1\nname: s\nfeatures:\n- {kind: bollinger_b, k: 2.0, name: b}\n"
    assert FeatureSet.from_yaml(base).hash == FeatureSet.from_yaml(spelled).hash
    other = FeatureSet.from_yaml(base.replace("k: 2", "k: 2.5"))
    bumped = FeatureSet.from_yaml(base.replace("version: 1", "version: 2"))
    assert len({FeatureSet.from_yaml(base).hash, other.hash, bumped.hash}) == 3


def test_yaml_defaults_and_session_settings() -> None:
    fs = FeatureSet.from_yaml(
        "name: us\nversion: 3\ntimezone: America/New_York\nsession_open: '9:30'\n"
        "features:\n- {name: r, kind: rsi}\n- {name: m, kind: macd, output: hist}\n"
    )
    assert fs.session_open == "09:30"
    assert fs.feature("r").params == (("period", 14),)
    assert fs.feature("m").lookback == 26 + 9 - 2
    with pytest.raises(KeyError):
        fs.feature("nope")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("name: s\nversion: 1\nfeatures:\n- {name: a, kind: wavelet}\n", "unknown feature kind"),
        ("name: s\nversion: 1\nfeatures:\n- {name: a, kind: rsi, span: 3}\n", "no parameter"),
        ("name: s\nversion: 1\nfeatures:\n- {name: a, kind: return}\n", "needs the parameter"),
        ("name: s\nversion: 1\nfeatures:\n- {name: a, kind: return, horizon: 0}\n", ">= 1"),
        ("name: s\nversion: 1\nfeatures:\n- {name: a, kind: return, horizon: 1.5}\n", "integer"),
        ("name: s\nversion: 1\nfeatures:\n- {name: a, kind: bollinger_b, k: 0}\n", "> 0"),
        ("name: s\nversion: 1\nfeatures:\n- {name: a, kind: bollinger_b, k: .inf}\n", "finite"),
        ("name: s\nversion: 1\nfeatures:\n- {name: a, kind: macd, output: x}\n", "one of"),
        ("name: s\nversion: 1\nfeatures:\n- {name: a, kind: macd, fast: 30}\n", "fast"),
        ("name: s\nversion: 1\nfeatures:\n- {name: A!, kind: gap}\n", "feature name"),
        (
            "name: s\nversion: 1\nfeatures:\n- {name: a, kind: gap}\n- {name: a, kind: gap}\n",
            "duplicate",
        ),
        ("name: s\nversion: 1\nfeatures:\n- {name: a, kind: xs_rank, of: b}\n", "earlier"),
        ("name: s\nversion: 0\nfeatures:\n- {name: a, kind: gap}\n", "version"),
        ("name: s\nversion: 1\nsession_open: late\nfeatures:\n- {name: a, kind: gap}\n", "HH:MM"),
        ("name: s\nversion: 1\ncolour: red\nfeatures:\n- {name: a, kind: gap}\n", "unknown"),
        ("name: s\nversion: 1\nfeatures: []\n", "at least one"),
        ("- just a list\n", "mapping"),
    ],
)
def test_bad_definitions_are_refused_with_the_reason(yaml_text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FeatureSet.from_yaml(yaml_text)


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        FeatureSet("s", 1, (Feature.make("g", "gap"),), timezone="Mars/Olympus")


def test_a_rank_must_follow_a_per_symbol_feature() -> None:
    ret = Feature.make("r", "return", horizon=3)
    with pytest.raises(ValueError, match="earlier non-rank"):
        FeatureSet("s", 1, (Feature.rank("x", of="r"), ret))
    with pytest.raises(ValueError, match="earlier non-rank"):
        FeatureSet("s", 1, (ret, Feature.rank("x", of="r"), Feature.rank("y", of="x")))
    assert FeatureSet("s", 1, (ret, Feature.rank("x", of="r"))).feature("x").lookback == 3


def _next_close(bars: object) -> object:
    return bars


def test_custom_features_have_no_yaml_form_but_a_hash() -> None:
    custom = Feature.custom("peek", _next_close, lookback=0)
    fs = FeatureSet("c", 1, (custom,))
    with pytest.raises(ValueError, match="no YAML form"):
        fs.to_yaml()
    assert custom.definition()["function"] == f"{__name__}:_next_close"
    other = FeatureSet("c", 1, (Feature.custom("peek", _next_close, lookback=1),))
    assert fs.hash != other.hash
    with pytest.raises(ValueError, match=r"Feature\.custom"):
        Feature.make("peek", "custom")
    with pytest.raises(ValueError, match="lookback"):
        Feature.custom("peek", _next_close, lookback=-1)


def test_every_kind_documents_itself() -> None:
    assert all(kind.doc for kind in KINDS.values())
