"""The offline (Parquet) and online (in-process, Redis) feature stores."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from quantdesk.ml.features import (
    Feature,
    FeatureSet,
    FeatureSetMismatchError,
    InProcessOnlineStore,
    OfflineFeatureStore,
    OnlineFeatureStore,
    RedisOnlineStore,
    default_feature_set,
)


def bars(n: int, seed: int, start: str = "2024-03-04 03:45") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    return pd.DataFrame(
        {
            "open": close * (1 + rng.normal(0, 0.0005, n)),
            "high": close * 1.002,
            "low": close * 0.998,
            "close": close,
            "volume": rng.integers(1, 10_000, n),
        },
        index=pd.date_range(start, periods=n, freq="min", tz="UTC"),
    )


@pytest.fixture
def universe() -> dict[str, pd.DataFrame]:
    return {"NSE:RELIANCE": bars(200, 1), "NSE:M&M": bars(200, 2), "NSE:TCS": bars(150, 3)}


# -- offline -------------------------------------------------------------------------------------


def test_build_stores_one_file_per_symbol_and_reads_the_panel_back(
    tmp_path: Path, universe: dict[str, pd.DataFrame]
) -> None:
    fs = default_feature_set()
    store = OfflineFeatureStore(tmp_path, fs)
    calls: list[tuple[int, int]] = []
    panel = store.build(universe, "1m", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert store.symbols("1m") == sorted(universe)
    assert store.path("NSE:M&M").relative_to(tmp_path).parts[:2] == ("features", fs.hash)
    back = store.read(universe, interval="1m")
    pd.testing.assert_frame_equal(back, panel, check_freq=False)
    assert store.stored_definition("NSE:TCS") == json.loads(fs.canonical_json())


def test_read_keeps_start_inclusive_end_exclusive(
    tmp_path: Path, universe: dict[str, pd.DataFrame]
) -> None:
    store = OfflineFeatureStore(tmp_path, default_feature_set())
    store.build(universe)
    index = universe["NSE:TCS"].index
    part = store.read(["NSE:TCS", "NSE:RELIANCE"], start=index[10], end=index[20])
    stamps = part.index.get_level_values("timestamp").unique()
    assert list(stamps) == list(index[10:20])
    assert part.index.get_level_values("symbol").unique().tolist() == [
        "NSE:RELIANCE",
        "NSE:TCS",
    ]
    naive = store.read(["NSE:TCS"], start=index[10].tz_localize(None), end=None)
    assert len(naive) == 140  # a naive bound is UTC


def test_parquet_metadata_carries_the_definition(tmp_path: Path) -> None:
    fs = default_feature_set()
    store = OfflineFeatureStore(tmp_path, fs)
    path = store.write("NSE:TCS", fs.compute_batch(bars(50, 1)), "5m")
    metadata = pq.read_schema(path).metadata
    assert metadata[b"quantdesk.feature_set.hash"] == fs.hash.encode()
    assert (
        FeatureSet.from_definition(json.loads(metadata[b"quantdesk.feature_set.definition"])) == fs
    )
    assert store.read_symbol("NSE:TCS", interval="5m").columns.tolist() == fs.series_columns


def test_a_file_of_another_definition_is_refused(tmp_path: Path) -> None:
    fs = default_feature_set()
    mine = OfflineFeatureStore(tmp_path, fs)
    path = mine.write("NSE:TCS", fs.compute_batch(bars(50, 1)))
    other_set = FeatureSet("default", 2, fs.features)  # same features, another version
    other = OfflineFeatureStore(tmp_path, other_set)
    with pytest.raises(FileNotFoundError, match="no 1m features stored for NSE:TCS"):
        other.read(["NSE:TCS"])
    other.path("NSE:TCS").parent.mkdir(parents=True)
    shutil.copy(path, other.path("NSE:TCS"))  # a file moved by hand
    with pytest.raises(FeatureSetMismatchError, match="recompute"):
        other.read(["NSE:TCS"])


def test_write_refuses_columns_of_another_set(tmp_path: Path) -> None:
    fs = default_feature_set()
    store = OfflineFeatureStore(tmp_path, fs)
    frame = fs.compute_batch(bars(40, 1))
    with pytest.raises(ValueError, match="not those of feature set default v1"):
        store.write("NSE:TCS", frame.drop(columns="gap"))
    small = FeatureSet("s", 1, (Feature.make("gap", "gap"),))
    with pytest.raises(ValueError, match="not those"):
        store.write("NSE:TCS", small.compute_batch(bars(40, 1)))
    for symbol, interval in (("NSE:TCS", "../1m"), ("..", "1m"), ("", "1m")):
        with pytest.raises(ValueError, match="bad symbol or interval"):
            store.path(symbol, interval)


# -- online --------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def online(request: pytest.FixtureRequest) -> AsyncIterator[OnlineFeatureStore]:
    if request.param == "memory":
        yield InProcessOnlineStore()
        return
    from redis.asyncio import Redis

    client = Redis.from_url(request.getfixturevalue("redis_url"))
    prefix = request.getfixturevalue("redis_prefix")
    try:
        yield RedisOnlineStore(client, prefix)
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


T0 = pd.Timestamp("2024-03-04 09:16", tz="Asia/Kolkata")


async def test_online_store_keeps_the_latest_vector(online: OnlineFeatureStore) -> None:
    assert await online.get("NSE:TCS") is None
    assert await online.put("NSE:TCS", T0, {"rsi_14": 55.5, "vol_20": math.nan})
    later = T0 + pd.Timedelta(minutes=1)
    assert await online.put("NSE:TCS", later, {"rsi_14": 60.0, "vol_20": 0.01})
    assert not await online.put("NSE:TCS", T0, {"rsi_14": 1.0, "vol_20": 1.0})  # stale
    vector = await online.get("NSE:TCS")
    assert vector is not None
    assert vector.ts == later and str(vector.ts.tz) == "UTC"
    assert vector.values == {"rsi_14": 60.0, "vol_20": 0.01}
    assert await online.put("NSE:TCS", later, {"rsi_14": 61.0, "vol_20": 0.02})  # same bar


async def test_online_store_round_trips_nan_and_refuses_inf(online: OnlineFeatureStore) -> None:
    await online.put("NSE:INFY", T0, {"macd_line": math.nan, "gap": -0.001})
    vector = await online.get("NSE:INFY")
    assert vector is not None and math.isnan(vector.values["macd_line"])
    assert vector.values["gap"] == -0.001
    with pytest.raises(ValueError, match="infinite"):
        await online.put("NSE:INFY", T0, {"gap": math.inf})


async def test_get_many_returns_the_symbols_that_have_a_vector(
    online: OnlineFeatureStore,
) -> None:
    for i, symbol in enumerate(["A", "B", "C"]):
        await online.put(symbol, T0.tz_localize(None), {"x": float(i)})  # naive = UTC
    found = await online.get_many(["C", "A", "missing", "A"])
    assert sorted(found) == ["A", "C"]
    assert found["C"].values == {"x": 2.0}
    assert found["A"].ts == T0.tz_localize(None).tz_localize("UTC")
    assert await online.get_many([]) == {}


@pytest.mark.redis
async def test_redis_store_works_with_decoded_responses(redis_url: str, redis_prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        store = RedisOnlineStore(client, redis_prefix)
        await store.put("NSE:TCS", T0, {"x": 1.5})
        assert await client.hget(f"{redis_prefix}NSE:TCS", "ts_us") == str(T0.value // 1000)
        vector = await store.get("NSE:TCS")
        assert vector is not None and vector.values == {"x": 1.5}
    finally:
        await client.delete(f"{redis_prefix}NSE:TCS")
        await client.aclose()
