"""GET /api/v1/market/candles and /market/quotes, and the live feed behind `serve`, on both
database backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI

from quantdesk.api import create_app
from quantdesk.core.market import Quote, is_on_tick
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.market.instruments import seed_demo_universe
from quantdesk.market.store import BarStore
from quantdesk.settings import Settings
from tests.conftest import AuthedUser, client_for, make_settings

CANDLES = "/api/v1/market/candles"
QUOTES = "/api/v1/market/quotes"
IST = "Asia/Kolkata"


@pytest.fixture
async def demo_universe(settings: Settings) -> None:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            await seed_demo_universe(db)
            await db.commit()
    finally:
        await engine.dispose()


def minute_bars(day: str, start_price: float, n: int = 375) -> pd.DataFrame:
    """A session of 1-minute bars from 09:15 IST; bar i: open p, high p+0.3, low p-0.2,
    close p+0.1 with p = start + 0.1 i; volume 100 + i."""
    times = pd.date_range(f"{day} 09:15", periods=n, freq="1min", tz=IST).tz_convert("UTC")
    p = [round(start_price + 0.1 * i, 2) for i in range(n)]
    return pd.DataFrame(
        {
            "timestamp": times,
            "open": p,
            "high": [x + 0.3 for x in p],
            "low": [x - 0.2 for x in p],
            "close": [x + 0.1 for x in p],
            "volume": [100 + i for i in range(n)],
        }
    )


@pytest.fixture
def infy_bars(settings: Settings, demo_universe: None) -> pd.DataFrame:
    bars = pd.concat([minute_bars("2024-01-01", 1500.0), minute_bars("2024-01-02", 1520.0)])
    BarStore(settings.data_dir / "bars").write("NSE:INFY", bars, "1m")
    return bars


async def test_hourly_candles_start_at_the_session_open(
    client: httpx.AsyncClient, trader: AuthedUser, infy_bars: pd.DataFrame
) -> None:
    r = await client.get(
        CANDLES,
        params={
            "symbol": "NSE:INFY",
            "interval": "1h",
            "start": "2024-01-01T00:00:00+05:30",
            "end": "2024-01-02T00:00:00+05:30",
        },
        headers=trader.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["timezone"] == IST
    candles = body["candles"]
    # 09:15-10:15 ... 14:15-15:15, then the 15 minutes to 15:30: 7 candles.
    assert len(candles) == 7
    first = candles[0]
    assert datetime.fromisoformat(first["time"].replace("Z", "+00:00")) == datetime(
        2024, 1, 1, 3, 45, tzinfo=UTC
    )
    assert first["open"] == "1500.00"
    assert first["close"] == "1506.00"  # bar 59: 1500 + 5.9, closes +0.1
    assert first["high"] == "1506.20"
    assert first["low"] == "1499.80"
    assert first["volume"] == sum(100 + i for i in range(60))
    assert sum(c["volume"] for c in candles) == sum(100 + i for i in range(375))


async def test_a_daily_candle_is_the_whole_session(
    client: httpx.AsyncClient, trader: AuthedUser, infy_bars: pd.DataFrame
) -> None:
    r = await client.get(
        CANDLES, params={"symbol": "nse:infy", "interval": "1d"}, headers=trader.headers
    )
    candles = r.json()["candles"]
    assert [c["open"] for c in candles] == ["1500.00", "1520.00"]
    assert candles[0]["close"] == f"{1500 + 37.4 + 0.1:.2f}"
    assert candles[1]["volume"] == sum(100 + i for i in range(375))
    assert r.json()["symbol"] == "NSE:INFY"


async def test_without_start_the_latest_limit_candles_are_returned(
    client: httpx.AsyncClient, trader: AuthedUser, infy_bars: pd.DataFrame
) -> None:
    r = await client.get(
        CANDLES,
        params={"symbol": "NSE:INFY", "interval": "1m", "limit": 10},
        headers=trader.headers,
    )
    body = r.json()
    assert body["truncated"] is True
    assert len(body["candles"]) == 10
    assert body["candles"][-1]["volume"] == 100 + 374


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"symbol": "NSE:NOSUCH", "interval": "1d"}, 404, "INSTRUMENT_NOT_FOUND"),
        ({"symbol": "NSE:INFY", "interval": "2m"}, 422, "VALIDATION_ERROR"),
        ({"symbol": "NSE:INFY", "start": "2024-01-01T09:15:00"}, 422, "MARKET_NAIVE_TIME"),
        (
            {"symbol": "NSE:INFY", "start": "2024-01-03T00:00:00Z", "end": "2024-01-01T00:00:00Z"},
            422,
            "MARKET_BAD_RANGE",
        ),
        (
            {"symbol": "NSE:INFY", "interval": "1m", "start": "2023-01-01T00:00:00Z", "limit": 100},
            422,
            "MARKET_RANGE_TOO_LARGE",
        ),
        ({"symbol": "INFY"}, 422, "VALIDATION_ERROR"),
    ],
)
async def test_bad_candle_queries_get_a_clear_4xx(
    client: httpx.AsyncClient,
    trader: AuthedUser,
    infy_bars: pd.DataFrame,
    params: dict[str, str],
    status: int,
    code: str,
) -> None:
    r = await client.get(CANDLES, params=params, headers=trader.headers)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


async def test_candles_of_a_symbol_without_bars_are_empty(
    client: httpx.AsyncClient, viewer: AuthedUser, demo_universe: None
) -> None:
    r = await client.get(CANDLES, params={"symbol": "NSE:TCS"}, headers=viewer.headers)
    assert r.status_code == 200
    assert r.json()["candles"] == []


async def test_quotes_come_from_the_cache_and_missing_symbols_are_listed(
    app: FastAPI, client: httpx.AsyncClient, viewer: AuthedUser
) -> None:
    cache = app.state.qd.extras["quote_cache"]
    now = datetime.now(UTC)
    await cache.set(
        Quote("NSE:INFY", Decimal("1441.80"), Decimal("1441.70"), Decimal("1441.90"), 1200, now)
    )
    r = await client.get(
        QUOTES, params={"symbols": "NSE:INFY, nse:infy,NSE:TCS"}, headers=viewer.headers
    )
    assert r.status_code == 200
    body = r.json()
    assert [q["symbol"] for q in body["quotes"]] == ["NSE:INFY"]
    assert body["quotes"][0]["last"] == "1441.80"
    assert body["missing"] == ["NSE:TCS"]


@pytest.mark.parametrize(
    "symbols", ["bad symbol", ",".join(f"NSE:S{i}" for i in range(201)), " , "]
)
async def test_bad_quote_requests_are_422(
    client: httpx.AsyncClient, viewer: AuthedUser, symbols: str
) -> None:
    r = await client.get(QUOTES, params={"symbols": symbols}, headers=viewer.headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"].startswith(("MARKET_", "VALIDATION"))


async def _wait_for_quotes(
    c: httpx.AsyncClient, headers: dict[str, str], symbols: str
) -> list[dict[str, object]]:
    for _ in range(100):
        r = await c.get(QUOTES, params={"symbols": symbols}, headers=headers)
        if not r.json()["missing"]:
            return r.json()["quotes"]  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no quotes for {symbols}: {r.text}")


async def test_random_feed_quotes_every_instrument_on_its_tick(
    db_url: str, tmp_path: Path, demo_universe: None, trader: AuthedUser
) -> None:
    settings = make_settings(db_url, tmp_path, feed="random", feed_interval_seconds=0.02)
    app = create_app(settings)
    async with app.router.lifespan_context(app), client_for(app) as c:
        quotes = await _wait_for_quotes(c, trader.headers, "NSE:INFY,NSE:ITC,NSE:MARUTI,NSE:WIPRO")
    ticks = {
        "NSE:INFY": Decimal("0.10"),
        "NSE:ITC": Decimal("0.05"),
        "NSE:MARUTI": Decimal("1.00"),
        "NSE:WIPRO": Decimal("0.01"),
    }
    for q in quotes:
        tick = ticks[str(q["symbol"])]
        for field in ("last", "bid", "ask"):
            assert is_on_tick(Decimal(str(q[field])), tick), q
        assert Decimal(str(q["bid"])) < Decimal(str(q["ask"]))


async def test_replay_feed_replays_the_last_stored_session(
    db_url: str, tmp_path: Path, demo_universe: None, trader: AuthedUser
) -> None:
    bars = pd.concat([minute_bars("2024-01-01", 1500.0, 30), minute_bars("2024-01-02", 1520.0, 30)])
    BarStore(tmp_path / "bars").write("NSE:INFY", bars, "1m")
    settings = make_settings(db_url, tmp_path, feed="replay", replay_speed=0)
    app = create_app(settings)
    async with app.router.lifespan_context(app), client_for(app) as c:
        for _ in range(100):
            q = (await _wait_for_quotes(c, trader.headers, "NSE:INFY"))[0]
            if q["volume"] == sum(100 + i for i in range(30)):
                break
            await asyncio.sleep(0.05)
    # Only the last session is replayed: its close, its volume, its (historical) time.
    assert q["last"] == f"{1520 + 2.9 + 0.1:.2f}"
    assert str(q["ts"]).startswith("2024-01-02")
