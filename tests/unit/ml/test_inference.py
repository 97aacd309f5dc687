"""The inference service end to end on an embedded MLflow store: bundles logged and aliased in
the registry, bars fed one at a time, predictions equal to batch, signals stored, hot swaps."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantdesk.market.synthetic import generate_bars
from quantdesk.ml.drift import DriftThresholds, ReferenceBins
from quantdesk.ml.features import Feature, FeatureSet, default_feature_set, nan_only_features
from quantdesk.ml.inference import Bundle, InferenceService, Prediction
from quantdesk.ml.models import Model, make_model
from quantdesk.ml.signals import SignalReader, SignalStore, Thresholds
from quantdesk.ml.tracking import Tracker

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SYMBOLS = ("NSE:AAA", "NSE:BBB", "NSE:CCC")
NAME = "ml-signal"
PER_SYMBOL = FeatureSet(  # no cross-sectional ranks: predictions per symbol
    "trend",
    1,
    (
        Feature.make("ret_5", "return", horizon=5),
        Feature.make("rsi_14", "rsi", period=14),
        Feature.make("vol_20", "volatility", window=20),
    ),
)


def _daily(minute_bars: pd.DataFrame) -> pd.DataFrame:
    """Daily bars indexed by the session's END time (the last minute bar's start + 1 min)."""
    bars = minute_bars.set_index("timestamp")
    day = bars.groupby(bars.index.date)
    out = pd.DataFrame(
        {
            "open": day["open"].first(),
            "high": day["high"].max(),
            "low": day["low"].min(),
            "close": day["close"].last(),
            "volume": day["volume"].sum().astype(float),
        }
    )
    out.index = pd.DatetimeIndex(day.apply(lambda g: g.index[-1]).to_numpy(), name="timestamp")
    out.index += pd.Timedelta(minutes=1)
    return out


@pytest.fixture(scope="module")
def bars() -> dict[str, pd.DataFrame]:
    first, last = date(2023, 1, 1), date(2024, 3, 31)  # ~300 sessions
    return {s: _daily(generate_bars(s, first, last, seed=i)) for i, s in enumerate(SYMBOLS)}


@dataclass
class Registry:
    tracker: Tracker
    root: Path
    models: dict[int, Model]
    panels: dict[int, pd.DataFrame]
    columns: dict[int, list[str]]

    def publish(
        self,
        bars: dict[str, pd.DataFrame],
        fs: FeatureSet,
        seed: int,
        *,
        kind: str = "xgboost",
        label: str | None = None,
        validation: float = 0.55,
    ) -> int:
        """Train on the panel of ``fs`` with random labels, log the bundle, register it."""
        panel = fs.compute_panel(bars)
        columns = [c for c in fs.columns if c not in nan_only_features(panel)]
        train = panel[columns].dropna()
        y = np.random.default_rng(seed).normal(size=len(train))
        if kind == "lstm":
            model = make_model(
                "lstm", "classifier", window=4, hidden_size=8, max_epochs=3, seed=seed
            )
        else:
            model = make_model("xgboost", "classifier", n_estimators=20, max_depth=3, seed=seed)
        model.fit(train, y)
        bundle = self.root / f"bundle-{seed}"
        model.save(bundle / "model")
        meta = {
            "feature_set": fs.definition(),
            "feature_set_hash": fs.hash,
            "columns": columns,
            "interval": "1d",
            "symbols": list(SYMBOLS),
            "threshold": {"long": 0.5, "short": 0.45, "min_confidence": 0.0},
            "reference_bins": ReferenceBins.fit(train).to_dict(),
            "validation": {"auc": validation},
        }
        if label is not None:
            meta["label"] = label
        (bundle / "bundle.json").write_text(json.dumps(meta))
        with self.tracker.start_run(NAME) as run:
            run.log_model_dir(bundle)
        version = self.tracker.register(run.run_id, NAME)
        self.models[version], self.panels[version] = model, panel
        self.columns[version] = columns
        return version


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, bars: dict[str, pd.DataFrame]) -> Registry:
    # One store per module: creating it runs MLflow's migrations (a few seconds).
    root = tmp_path_factory.mktemp("mlflow")
    tracker = Tracker(f"sqlite:///{(root / 'm.db').as_posix()}", artifact_dir=root / "art")
    reg = Registry(tracker, root, {}, {}, {})
    assert reg.publish(bars, default_feature_set(), seed=1) == 1
    assert reg.publish(bars, default_feature_set(), seed=2) == 2
    assert reg.publish(bars, PER_SYMBOL, seed=3) == 3
    return reg


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _service(registry: Registry, tmp_path: Path, clock: Clock, **kw: object) -> InferenceService:
    return InferenceService(
        registry.tracker,
        NAME,
        SignalStore(tmp_path / "signals"),
        download_dir=tmp_path / "dl",
        clock=clock,
        reload_every=60.0,
        **kw,  # type: ignore[arg-type]
    )


def _bar_stream(bars: dict[str, pd.DataFrame]) -> list[tuple[str, pd.Timestamp, tuple[float, ...]]]:
    """Every bar of every symbol in time order (symbols in turn within a timestamp)."""
    rows = [
        (ts, s, tuple(float(x) for x in row))
        for s, frame in bars.items()
        for ts, row in zip(
            frame.index, frame[["open", "high", "low", "close", "volume"]].to_numpy()
        )
    ]
    rows.sort(key=lambda r: r[0])
    return [(s, ts, prices) for ts, s, prices in rows]


def _expected(registry: Registry, version: int, predictions: list[Prediction]) -> np.ndarray:
    panel = registry.panels[version]
    keys = [(pd.Timestamp(p.time), p.symbol) for p in predictions]
    rows = panel.loc[keys, registry.columns[version]]
    return registry.models[version].predict(rows)


def _complete_rows(registry: Registry, version: int) -> int:
    return len(registry.panels[version][registry.columns[version]].dropna())


def test_streamed_predictions_equal_batch_and_are_stored(
    registry: Registry, bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    registry.tracker.set_alias(NAME, "champion", 1)
    service = _service(registry, tmp_path, Clock())
    assert service.load() == 1 and service.bundle.cross_sectional
    assert service.bundle.thresholds == Thresholds(long=0.5, short=0.45)

    out: list[Prediction] = []
    stream = _bar_stream(bars)
    for symbol, ts, prices in stream:
        got = service.on_bar(symbol, ts, *prices)
        # Cross-sectional: nothing until the timestamp's last symbol arrives.
        assert got == [] or symbol == SYMBOLS[-1]
        out.extend(got)

    assert len(out) == _complete_rows(registry, 1) > 500
    assert {p.version for p in out} == {1} and {p.model for p in out} == {NAME}
    values = np.array([p.value for p in out])
    np.testing.assert_allclose(values, _expected(registry, 1, out), rtol=0, atol=1e-9)
    assert [p.signal for p in out] == Thresholds(long=0.5, short=0.45).apply(values).tolist()

    store = service.store
    assert store.models() == [NAME] and store.symbols(NAME) == sorted(SYMBOLS)
    stored = store.read(NAME, "NSE:BBB")
    mine = [p for p in out if p.symbol == "NSE:BBB"]
    assert stored["time"].tolist() == [pd.Timestamp(p.time) for p in mine]
    np.testing.assert_array_equal(stored["value"], [p.value for p in mine])
    assert set(stored["model_version"]) == {1}
    # The stored series is what a backtest reads back, as of each bar's end.
    reader = SignalReader(store)
    last = mine[-1]
    assert reader(NAME, "NSE:BBB", last.time) == last.value
    assert reader(NAME, "NSE:BBB", last.time - pd.Timedelta(seconds=1)) == mine[-2].value
    # Served on exactly its training rows: the live distribution is the reference's.
    report = service.monitor.check()
    assert report.samples == len(out) and not report.drifted
    assert max(report.psi.values()) < 1e-3  # (a value on a decile edge may differ by 1e-12)


def test_a_promotion_is_picked_up_without_a_restart(
    registry: Registry, bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    registry.tracker.set_alias(NAME, "champion", 1)
    clock = Clock()
    service = _service(registry, tmp_path, clock)
    service.load()
    stream = _bar_stream(bars)
    half = len(stream) // 2
    before = [p for s, ts, prices in stream[:half] for p in service.on_bar(s, ts, *prices)]

    registry.tracker.set_alias(NAME, "champion", 2)
    assert not service.reload_if_promoted()  # too soon after the last registry check
    clock.now += 61
    assert service.reload_if_promoted() and service.version == 2
    clock.now += 61
    assert not service.reload_if_promoted()  # already serving it

    after = [p for s, ts, prices in stream[half:] for p in service.on_bar(s, ts, *prices)]
    assert {p.version for p in before} == {1} and {p.version for p in after} == {2}
    # Same feature set: the streaming state carried over, so v2 still equals batch exactly.
    values = np.array([p.value for p in after])
    np.testing.assert_allclose(values, _expected(registry, 2, after), rtol=0, atol=1e-9)
    assert not np.allclose(values, _expected(registry, 1, after))
    stored = service.store.read(NAME, "NSE:AAA")
    assert stored["model_version"].iloc[0] == 1 and stored["model_version"].iloc[-1] == 2


def test_a_new_feature_set_is_replayed_and_predicts_per_symbol(
    registry: Registry, bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    registry.tracker.set_alias(NAME, "champion", 1)
    clock = Clock()
    service = _service(registry, tmp_path, clock)
    service.load()
    stream = _bar_stream(bars)
    half = len(stream) // 2
    for s, ts, prices in stream[:half]:
        service.on_bar(s, ts, *prices)

    registry.tracker.set_alias(NAME, "champion", 3)
    clock.now += 61
    assert service.reload_if_promoted()
    assert not service.bundle.cross_sectional
    symbol, ts, prices = stream[half]
    (first,) = service.on_bar(symbol, ts, *prices)  # per symbol: no waiting for the others
    assert first.symbol == symbol and first.version == 3
    after = [first] + [p for s, t, pr in stream[half + 1 :] for p in service.on_bar(s, t, *pr)]
    # The kept history reached back to the first bar: the new features equal batch.
    values = np.array([p.value for p in after])
    np.testing.assert_allclose(values, _expected(registry, 3, after), rtol=0, atol=1e-9)
    served = {(pd.Timestamp(t), s) for s, t, _ in stream[half:]}
    complete = registry.panels[3][registry.columns[3]].dropna().index
    assert len(after) == sum(key in served for key in complete)


def test_warm_up_primes_features_without_predicting(
    registry: Registry, bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    registry.tracker.set_alias(NAME, "champion", 3)
    service = _service(registry, tmp_path, Clock())
    service.load()
    cut = 250
    for symbol, frame in bars.items():
        service.warm_up(symbol, frame.iloc[:cut])
    assert service.store.models() == []
    stream = [row for row in _bar_stream(bars) if row[1] >= bars[SYMBOLS[0]].index[cut]]
    symbol, ts, prices = stream[0]
    (p,) = service.on_bar(symbol, ts, *prices)
    np.testing.assert_allclose(p.value, _expected(registry, 3, [p]), rtol=0, atol=1e-9)


def _rally(frame: pd.DataFrame, days: int) -> pd.DataFrame:
    """``days`` more daily bars rising 3% a day: a regime the model never saw."""
    close = float(frame["close"].iloc[-1]) * 1.03 ** np.arange(1, days + 1)
    opens = np.r_[frame["close"].iloc[-1], close[:-1]]
    index = frame.index[-1] + pd.to_timedelta(np.arange(1, days + 1), unit="D")
    volume = float(frame["volume"].median())
    return pd.DataFrame(
        {"open": opens, "high": close * 1.001, "low": opens * 0.999, "close": close},
        index=index,
    ).assign(volume=volume)


def test_drift_in_served_features_alerts_once_per_feature(
    registry: Registry, bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    registry.tracker.set_alias(NAME, "champion", 3)
    calls: list[str] = []
    service = _service(
        registry,
        tmp_path,
        Clock(),
        drift=DriftThresholds(min_samples=100, window=150),
        alert=lambda kind, title, body, key: calls.append(key),
        check_every=30,
    )
    service.load()
    for symbol, frame in bars.items():
        service.warm_up(symbol, frame)  # history: primes features, feeds no drift
    rally = {s: _rally(frame, 100) for s, frame in bars.items()}
    reports = []
    for symbol, ts, prices in _bar_stream(rally):
        if service.on_bar(symbol, ts, *prices):
            reports.append(service.last_report)
    report = service.last_report
    assert report is not None and report.version == 3 and report.samples == 150
    assert set(report.features) == set(registry.columns[3]) == {"ret_5", "rsi_14", "vol_20"}
    assert sorted(calls) == [f"model_drift:{NAME} v3:{c}" for c in ("ret_5", "rsi_14", "vol_20")]


def test_a_directory_without_a_bundle_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"bundle\.json"):
        Bundle.read(tmp_path, 1)


def test_live_outcomes_are_scored_against_the_labels_horizon_and_alert_when_degraded(
    registry: Registry, bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    # Random labels, a claimed validation AUC of 0.9: live AUC near 0.5 is a degradation.
    version = registry.publish(bars, PER_SYMBOL, seed=4, label="forward:3", validation=0.9)
    registry.tracker.set_alias(NAME, "champion", version)
    calls: list[str] = []
    service = _service(
        registry,
        tmp_path,
        Clock(),
        drift=DriftThresholds(min_samples=100, window=5000),
        alert=lambda kind, title, body, key: calls.append(key),
        check_every=0,
    )
    service.load()
    assert service.bundle.horizon == 3
    out = [
        p for symbol, ts, prices in _bar_stream(bars) for p in service.on_bar(symbol, ts, *prices)
    ]
    report = service.monitor.check()
    # Each prediction's outcome is the close 3 bars later over the close it was made at;
    # the last 3 of each symbol are still waiting.
    expected_values, expected_returns = [], []
    for symbol in SYMBOLS:
        close = bars[symbol]["close"]
        mine = [p for p in out if p.symbol == symbol]
        for p in mine[:-3]:
            at = close.index.get_loc(pd.Timestamp(p.time))
            expected_values.append(p.value)
            expected_returns.append(float(close.iloc[at + 3]) / float(close.iloc[at]) - 1.0)
    assert report.outcomes == len(expected_values) == len(out) - 3 * len(SYMBOLS) > 500
    from quantdesk.ml.evaluation import classification_metrics

    auc = classification_metrics(np.array(expected_returns), np.array(expected_values))["auc"]
    assert report.live["auc"] == pytest.approx(auc, abs=1e-12)
    assert report.validation == 0.9 and report.degraded
    assert calls == [f"model_drift:{NAME} v{version}:performance"]


def test_an_lstm_is_served_bar_by_bar_on_each_symbols_window(
    registry: Registry, bars: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    version = registry.publish(bars, PER_SYMBOL, seed=5, kind="lstm")
    registry.tracker.set_alias(NAME, "champion", version)
    service = _service(registry, tmp_path, Clock())
    service.load()
    assert service.bundle.model.needs_history and not service.bundle.cross_sectional
    cut = 200  # history primes the features and fills the windows
    for symbol, frame in bars.items():
        service.warm_up(symbol, frame.iloc[:cut])
    stream = [row for row in _bar_stream(bars) if row[1] >= bars[SYMBOLS[0]].index[cut]]
    out = [p for symbol, ts, prices in stream for p in service.on_bar(symbol, ts, *prices)]
    assert len(out) == len(stream)
    # Batch: the model over each symbol's ready rows (its sequences), read at the served rows.
    panel = registry.panels[version][registry.columns[version]].dropna()
    model = registry.models[version]
    batch = pd.Series(model.predict(panel), index=panel.index)
    expected = [batch.loc[(pd.Timestamp(p.time), p.symbol)] for p in out]
    np.testing.assert_allclose([p.value for p in out], expected, rtol=0, atol=1e-6)
