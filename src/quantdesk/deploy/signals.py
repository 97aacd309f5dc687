"""Model signals for deployed strategies: inference on the deployments' own closed bars.

A deployment of a strategy that trades a model (``ml_signal``, parameter ``model``) gets an
:class:`~quantdesk.ml.inference.InferenceService` for that model at the deployment's interval,
shared by every deployment of the same model and interval. Each closed bar reaches the service
before the strategies run (features at the bar's start time, as in training; the prediction
stored at the bar's close), so ``ctx.signal(model, symbol)`` on that bar reads the prediction
made from it, exactly as the pipeline's backtest and a backtest over the stored signals do. The
service follows the ``champion`` alias: a promotion is picked up at the next bar (checked at
most once a minute), no restart. Drift reports (feature PSI, and live performance: each
prediction scored against the return over the label's horizon once those bars have closed) go
to the alerts (``MODEL_DRIFT``) and to where ``GET /api/v1/ml/drift`` reads them.

The ML packages are imported only when such a deployment starts; without them it fails with
``ML_EXTRA_MISSING`` and the command to install them.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import structlog

from quantdesk.errors import AppError
from quantdesk.market.store import BarStore
from quantdesk.settings import Settings

from .live import LiveBar

__all__ = ["ModelSignals", "model_of"]

log = structlog.get_logger(__name__)

WARM_UP_BARS = 400
FLUSH_SECONDS = 5.0  # stored signals lag the predictions by at most this (flushed at stop)


def model_of(strategy: str, params: dict[str, Any]) -> str | None:
    """The registered model a deployment trades, if any."""
    model = params.get("model") if strategy == "ml_signal" else None
    return str(model) if model else None


class _Served:
    def __init__(self, service: Any, interval: str) -> None:
        self.service = service
        self.interval = interval
        self.fed: dict[str, datetime] = {}  # symbol -> last bar start fed
        self.latest: dict[str, tuple[datetime, float]] = {}  # symbol -> (close time, value)
        self.reported: Any = None  # the last drift report written


class ModelSignals:
    def __init__(self, settings: Settings, store: BarStore, alerts: Any = None) -> None:
        self.settings = settings
        self.store = store
        self.alerts = alerts
        self.served: dict[tuple[str, str], _Served] = {}
        self._lock = threading.Lock()

    def attach(self, model: str, interval: str, user_id: int) -> None:
        """Load (once) the model's champion. Blocking (the registry, the download): call it
        from a worker thread. Features warm up on a symbol's first bar (:meth:`feed`), from the
        stored bars before it: on a replay the replayed day is in the store too, and only what
        came before it may count as history."""
        with self._lock:
            if (model, interval) not in self.served:
                self.served[(model, interval)] = _Served(self._service(model, user_id), interval)

    def _service(self, model: str, user_id: int) -> Any:
        try:
            from quantdesk.ml.drift import alert_sink
            from quantdesk.ml.inference import InferenceService
            from quantdesk.ml.signals import SignalStore
            from quantdesk.ml.tracking import Tracker
        except ImportError as exc:
            raise AppError(
                f"{exc.name} is not installed: pip install 'quantdesk[ml]'",
                code="ML_EXTRA_MISSING",
                status_code=503,
            ) from exc
        data = self.settings.data_dir
        service = InferenceService(
            Tracker.from_settings(self.settings),
            model,
            SignalStore(data / "signals"),
            download_dir=Path(data) / "ml" / "serving",
            flush_every=FLUSH_SECONDS,
            alert=alert_sink(self.alerts, user_id) if self.alerts is not None else None,
        )
        service.load()
        return service

    def _warm_up(self, served: _Served, symbol: str, before: datetime) -> None:
        from quantdesk.ml.dataset import load_bars

        served.fed[symbol] = _epoch()
        try:
            bars, _ = load_bars(self.store, [symbol], served.interval, date(1990, 1, 1), _today())
        except AppError:
            return  # no history: the features warm up on the live bars
        history = bars[symbol]
        frame = history[history.index < pd.Timestamp(before)].iloc[-WARM_UP_BARS:]
        served.service.warm_up(symbol, frame[["open", "high", "low", "close", "volume"]])

    def feed(self, model: str, interval: str, bars: Sequence[LiveBar]) -> None:
        """Closed bars of one deployment (in time order) to its model, each bar once."""
        served = self.served.get((model, interval))
        if served is None:
            return
        served.service.reload_if_promoted()
        for bar in sorted(bars, key=lambda b: b.time):
            if bar.symbol not in served.fed:
                self._warm_up(served, bar.symbol, bar.time)
            if bar.time <= served.fed[bar.symbol]:
                continue  # another deployment of the model fed it already
            served.fed[bar.symbol] = bar.time
            predictions = served.service.on_bar(
                bar.symbol,
                bar.time,
                bar.open,
                bar.high,
                bar.low,
                bar.close,
                bar.volume,
                known_at=bar.end,
            )
            for p in predictions:
                served.latest[p.symbol] = (p.time, p.value)
        report = served.service.last_report
        if report is not None and report is not served.reported:
            served.reported = report
            self._write_drift(model, report)

    def _write_drift(self, model: str, report: Any) -> None:
        """The latest drift check where ``GET /api/v1/ml/drift`` reads it."""
        doc = {**dataclasses.asdict(report), "checked_at": datetime.now(UTC).isoformat()}
        from quantdesk.ml.registry import drift_report_path

        path = drift_report_path(self.settings, model)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, default=str))
            tmp.replace(path)
        except OSError as exc:  # monitoring must not stop trading
            log.warning("drift_report_not_written", model=model, error=repr(exc))

    def close(self) -> None:
        """Write every buffered signal (at shutdown)."""
        for served in self.served.values():
            served.service.flush()

    def reader(self, model: str, interval: str) -> Any:
        """``ctx.signal`` for a deployment: the model's latest value known at the time."""

        def read(name: str, symbol: str, at: datetime) -> float | None:
            served = self.served.get((name, interval))
            if served is None:
                return None
            got = served.latest.get(symbol)
            if got is None or got[0] > at:
                return None
            return got[1]

        return read


def _epoch() -> datetime:
    return pd.Timestamp(0, tz="UTC").to_pydatetime()


def _today() -> Any:
    return (pd.Timestamp.now("UTC") + timedelta(days=1)).date()
