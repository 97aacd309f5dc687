"""Bar stores built for backtest tests: hand-made daily and 1-minute bars on NSE sessions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from quantdesk.backtest.costs import parse_costs
from quantdesk.backtest.data import Dataset, load_dataset
from quantdesk.backtest.engine import EngineConfig
from quantdesk.core.fills import FillModel
from quantdesk.core.instruments import InstrumentSpec
from quantdesk.market.calendars import get_calendar
from quantdesk.market.store import BarStore

IST = ZoneInfo("Asia/Kolkata")
SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "market"


def sessions(start: date, count: int) -> list[date]:
    cal = get_calendar("NSE")
    out: list[date] = []
    day = start
    while len(out) < count:
        if cal.is_session(day):
            out.append(day)
        day += timedelta(days=1)
    return out


def daily_frame(
    days: Sequence[date], rows: Sequence[tuple[float, float, float, float]]
) -> pd.DataFrame:
    """(open, high, low, close) per session; volume 1,000,000."""
    return pd.DataFrame(
        {
            "timestamp": [datetime.combine(d, time(9, 15), IST) for d in days],
            "open": [r[0] for r in rows],
            "high": [r[1] for r in rows],
            "low": [r[2] for r in rows],
            "close": [r[3] for r in rows],
            "volume": [1_000_000] * len(rows),
        }
    )


def minute_frame(day: date, closes: Sequence[float], start: time = time(9, 15)) -> pd.DataFrame:
    """Flat-range 1-minute bars (open = previous close) from ``start`` on ``day``."""
    first = datetime.combine(day, start, IST)
    opens = [closes[0], *closes[:-1]]
    return pd.DataFrame(
        {
            "timestamp": [first + timedelta(minutes=k) for k in range(len(closes))],
            "open": opens,
            "high": [max(o, c) for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) for o, c in zip(opens, closes, strict=True)],
            "close": list(closes),
            "volume": [1000] * len(closes),
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> BarStore:
    return BarStore(tmp_path / "bars")


def config(costs: str = "bps:0", cash: int = 1_000_000, **model: object) -> EngineConfig:
    return EngineConfig(
        cash=Decimal(cash),
        costs=parse_costs(costs),
        fill_model=FillModel(max_volume_share=None, **model),  # type: ignore[arg-type]
        specs={},
    )


def with_specs(cfg: EngineConfig, data: Dataset, tick: str = "0.05") -> EngineConfig:
    from dataclasses import replace

    return replace(cfg, specs={s: InstrumentSpec(Decimal(tick)) for s in data.symbols})


Loader = Callable[..., Dataset]


@pytest.fixture
def load(store: BarStore) -> Loader:
    def _load(symbols: list[str], interval: str, start: date, end: date) -> Dataset:
        return load_dataset(store, symbols, interval, start, end)

    return _load
