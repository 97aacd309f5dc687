"""Batch / stream parity, ranks and the look-ahead guard on the real NSE files in
``../shared/data/market`` (NIFTY 1-minute index bars without volume; 50 daily stocks with
volume, listed at different dates). Skipped, with the reason, when the files are absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantdesk.ml.features import (
    FeatureSet,
    StreamingFeatures,
    assert_no_lookahead,
    default_feature_set,
    nan_only_features,
)

from .test_features_stream import assert_parity, stream_frame

SHARED = (
    Path(os.environ.get("QUANTDESK_SHARED_DIR") or Path(__file__).resolve().parents[4] / "shared")
    / "data"
    / "market"
)
INTRADAY = SHARED / "nse_index_intraday_1min.parquet"
DAILY = SHARED / "nse_daily_nifty50_upstox.parquet"


def _load(path: Path) -> dict[str, pd.DataFrame]:
    if not path.is_file():
        pytest.skip(
            f"real market data not found at {path}: set QUANTDESK_SHARED_DIR or check "
            "out ../shared next to the repository"
        )
    frame = pd.read_parquet(
        path, columns=["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    )
    return {
        str(s): g.drop(columns="symbol").set_index("timestamp")
        for s, g in frame.groupby("symbol", sort=True)
    }


@pytest.fixture(scope="module")
def minutes() -> dict[str, pd.DataFrame]:
    """NIFTY50 and BANKNIFTY, the first 20 sessions (pre-open and post-close bars included)."""
    bars = _load(INTRADAY)
    dates = bars["NIFTY50"].index.normalize().unique()[:20]
    return {s: f[f.index.normalize().isin(dates)] for s, f in bars.items()}


@pytest.fixture(scope="module")
def daily() -> dict[str, pd.DataFrame]:
    return _load(DAILY)


@pytest.fixture(scope="module")
def fs() -> FeatureSet:
    return default_feature_set()


def test_stream_equals_batch_on_twenty_days_of_nifty_minutes(
    fs: FeatureSet, minutes: dict[str, pd.DataFrame]
) -> None:
    bars = minutes["NIFTY50"]
    assert len(bars) > 7000 and (bars["volume"] == 0).all()
    batch = fs.compute_batch(bars, symbol="NIFTY50")
    assert_parity(batch, stream_frame(fs, bars, "NIFTY50"))
    assert nan_only_features(batch) == []
    after = batch.iloc[fs.lookback :]
    assert np.isfinite(after.to_numpy()).all()  # no volume: no inf or NaN left behind
    assert (after["volume_z_20"] == 0.0).all()
    opening = batch["time_of_day"].iloc[batch.index.indexer_at_time("09:16")]
    assert len(opening) == 20 and (opening == 1.0).all()  # bars labelled by their end


def test_index_ranks_match_between_panel_and_stream(
    fs: FeatureSet, minutes: dict[str, pd.DataFrame]
) -> None:
    bars = {s: f.iloc[:1200] for s, f in minutes.items()}
    panel = fs.compute_panel(bars)
    live = StreamingFeatures(fs, list(bars))
    for ts in panel.index.get_level_values("timestamp").unique():
        for symbol, frame in bars.items():
            if ts in frame.index:
                live.update(symbol, ts, *frame.loc[ts])
        assert_parity(panel.xs(ts, level="timestamp"), live.vector(ts, require_all=False))


def test_daily_stock_panel_and_stream_agree_ranks_included(
    fs: FeatureSet, daily: dict[str, pd.DataFrame]
) -> None:
    panel = fs.compute_panel(daily)
    assert panel.index.get_level_values("symbol").nunique() == 50
    live = StreamingFeatures(fs, list(daily))
    columns = {s: [f.index, *(f[c].to_numpy() for c in f.columns)] for s, f in daily.items()}
    rows = {
        s: dict(zip(cols[0], zip(*cols[1:], strict=True), strict=True))
        for s, cols in columns.items()
    }
    ranks = [f.name for f in fs.features if f.is_rank]
    for ts, want in panel.groupby(level="timestamp", sort=True):
        for symbol in want.index.get_level_values("symbol"):
            live.update(symbol, ts, *rows[symbol][ts])
        got = live.vector(ts, require_all=False)
        want = want.droplevel("timestamp")
        assert_parity(want, got)
        np.testing.assert_array_equal(got[ranks].to_numpy(), want[ranks].to_numpy())
    jiofin = panel.xs("JIOFIN", level="symbol")  # listed 2023-08-21: ranked from then on
    assert jiofin.index[0] == pd.Timestamp("2023-08-21")
    assert jiofin["xs_rank_ret_20"].first_valid_index() == jiofin.index[20]


def test_daily_volume_features_are_real_numbers(
    fs: FeatureSet, daily: dict[str, pd.DataFrame]
) -> None:
    out = fs.compute_batch(daily["RELIANCE"], symbol="RELIANCE").iloc[fs.lookback :]
    assert np.isfinite(out.to_numpy()).all()
    assert out["volume_z_20"].abs().max() > 2  # volume spikes exist
    assert out["vwap_dist_20"].abs().max() < 0.5
    assert (out["day_of_week"] == out.index.day_of_week).all()  # naive dates: UTC midnight


def test_no_look_ahead_on_real_bars(
    fs: FeatureSet, minutes: dict[str, pd.DataFrame], daily: dict[str, pd.DataFrame]
) -> None:
    assert_no_lookahead(fs, minutes["BANKNIFTY"].iloc[:3000], checkpoints=10)
    some = {s: daily[s] for s in ("ETERNAL", "HDFCBANK", "INFY", "JIOFIN", "TCS")}
    assert_no_lookahead(fs, some, checkpoints=[pd.Timestamp("2023-09-20"), "2024-06-04"])
