"""Built-in strategies behave as documented."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from quantdesk.backtest.data import load_dataset
from quantdesk.backtest.engine import EventEngine
from quantdesk.market.store import BarStore
from quantdesk.strategy.builtin import MomentumRotation

from .conftest import config, daily_frame, sessions, with_specs

GROWTH = {"NSE:AAA": 0.0020, "NSE:BBB": -0.0010, "NSE:CCC": 0.0015, "NSE:DDD": 0.0005}


def test_momentum_rotation_holds_the_top_n_and_trades_only_at_month_starts(
    tmp_path: Path,
) -> None:
    store = BarStore(tmp_path)
    days = sessions(date(2024, 1, 1), 320)
    for symbol, g in GROWTH.items():
        closes = [100 * (1 + g) ** k for k in range(len(days))]
        rows = [(c, c * 1.001, c * 0.999, c) for c in closes]
        store.write(symbol, daily_frame(days, rows), "1d")
    data = load_dataset(store, list(GROWTH), "1d", days[0], days[-1])
    cfg = with_specs(config("bps:0"), data, tick="0.01")
    run = EventEngine(MomentumRotation({"top": 2, "lookback": 252, "skip": 21}), data, cfg).run()
    fills = run.book.fills
    assert fills, "it must trade once 12 months of history exist"
    assert {f.symbol for f in fills} == {"NSE:AAA", "NSE:CCC"}  # the two strongest
    held = {s: q for s, q in run.book.net.items() if q}
    assert set(held) == {"NSE:AAA", "NSE:CCC"}
    # Orders are placed on each month's first session and fill at the next session's open.
    for f in fills:
        placed = days[f.index - 1]
        assert days[f.index - 2].month != placed.month, (placed, f)
    # Never before the lookback is complete.
    assert min(f.index for f in fills) > 252
