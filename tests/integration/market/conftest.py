"""Fixtures for market-data tests on the real NSE files in ``../shared/data/market``.

The files are development data outside the repository; tests using them skip (with the reason)
when the folder is absent. ``QUANTDESK_SHARED_DIR`` points elsewhere if needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from quantdesk.market.store import BarStore


def _shared_dir() -> Path:
    configured = os.environ.get("QUANTDESK_SHARED_DIR")
    if configured:
        return Path(configured)
    return (Path(__file__).resolve().parents[3] / ".." / "shared").resolve()


@pytest.fixture(scope="session")
def market_data_dir() -> Path:
    folder = _shared_dir() / "data" / "market"
    if not folder.is_dir():
        pytest.skip(
            f"real market data not found at {folder}: set QUANTDESK_SHARED_DIR or check out "
            "../shared next to the repository"
        )
    return folder


@pytest.fixture(scope="session")
def nifty_minutes(market_data_dir: Path) -> pd.DataFrame:
    """The NSE 1-minute index file (NIFTY50 and BANKNIFTY, bars labelled by END time)."""
    return pd.read_parquet(market_data_dir / "nse_index_intraday_1min.parquet")


@pytest.fixture
def store(tmp_path: Path) -> BarStore:
    return BarStore(tmp_path / "bars")
