"""The look-ahead guard catches features that read later bars, and passes causal ones."""

from __future__ import annotations

import pandas as pd
import pytest

from quantdesk.ml.features import (
    Feature,
    FeatureSet,
    LookAheadError,
    assert_no_lookahead,
    default_feature_set,
)

from .test_features_batch import walk


def next_close(bars: pd.DataFrame) -> pd.Series:
    return bars["close"].shift(-1)


def centred_mean(bars: pd.DataFrame) -> pd.Series:
    return bars["close"].rolling(5, center=True).mean()


def test_the_default_set_has_no_look_ahead() -> None:
    assert_no_lookahead(default_feature_set(), walk(400), checkpoints=12)


def test_the_default_panel_has_no_look_ahead_ranks_included() -> None:
    bars = {"A": walk(150, 1), "B": walk(150, 2), "C": walk(150, 3).iloc[20:]}
    assert_no_lookahead(default_feature_set(), bars, checkpoints=6)


def test_a_feature_reading_the_next_close_is_caught_with_its_name_and_time() -> None:
    fs = FeatureSet(
        "peeking",
        1,
        (Feature.make("ret_1", "return", horizon=1), Feature.custom("peek", next_close, 0)),
    )
    bars = walk(100)
    with pytest.raises(LookAheadError) as caught:
        assert_no_lookahead(fs, bars, checkpoints=[40, 70])
    error = caught.value
    assert (error.feature, error.timestamp) == ("peek", bars.index[40])
    assert error.full == bars["close"].iloc[41]
    assert pd.isna(error.truncated)
    assert "'peek'" in str(error) and str(bars.index[40]) in str(error)


def test_a_centred_window_is_caught_too() -> None:
    fs = FeatureSet("centred", 1, (Feature.custom("smooth", centred_mean, 2),))
    with pytest.raises(LookAheadError, match="'smooth'"):
        assert_no_lookahead(fs, walk(60))


def test_a_plain_callable_can_be_checked() -> None:
    def features(bars: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"ok": bars["close"].pct_change(), "bad": next_close(bars)})

    with pytest.raises(LookAheadError, match="'bad'"):
        assert_no_lookahead(features, walk(50), checkpoints=[pd.Timestamp(walk(50).index[10])])
    assert_no_lookahead(lambda b: features(b)[["ok"]], walk(50))


def test_a_small_difference_within_tolerance_passes() -> None:
    calls = {"n": 0}

    def drifting(bars: pd.DataFrame) -> pd.DataFrame:
        calls["n"] += 1
        return pd.DataFrame({"x": bars["close"] + calls["n"] * 1e-12})

    with pytest.raises(LookAheadError):
        assert_no_lookahead(drifting, walk(30))
    assert_no_lookahead(drifting, walk(30), tolerance=1e-9)


def test_too_short_a_history_cannot_be_checked() -> None:
    with pytest.raises(ValueError, match="too few bars"):
        assert_no_lookahead(default_feature_set(), walk(30))
    with pytest.raises(TypeError, match="FeatureSet"):
        assert_no_lookahead(lambda b: b, {"A": walk(30)})
