"""Fixtures for the market-data unit tests: a calendar, an empty bar store, small bar sets."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from quantdesk.market.calendars import ExchangeCalendar, get_calendar
from quantdesk.market.store import BarStore
from quantdesk.market.synthetic import generate_bars


@pytest.fixture(scope="session")
def nse() -> ExchangeCalendar:
    return get_calendar("NSE")


@pytest.fixture
def store(tmp_path: Path) -> BarStore:
    return BarStore(tmp_path / "bars")


@pytest.fixture(scope="session")
def week_of_bars() -> pd.DataFrame:
    """Synthetic 1-minute bars for NSE:TEST over 2024-01-01..2024-01-12 (10 sessions)."""
    return generate_bars("NSE:TEST", date(2024, 1, 1), date(2024, 1, 12), seed=7)


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write text to a CSV file in the test's temp folder and return its path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text.lstrip())
        return path

    return write
