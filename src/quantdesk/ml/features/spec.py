"""Feature definitions: what each feature kind computes, its parameters and its warm-up, and the
versioned, hashable :class:`FeatureSet` that batch, streaming and the stores all run from."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

if TYPE_CHECKING:
    from quantdesk.ml.features.stream import StreamingFeatures

__all__ = ["KINDS", "Feature", "FeatureSet", "default_feature_set"]

Param: TypeAlias = int | float | str
CustomFn: TypeAlias = Callable[[pd.DataFrame], Any]
ProgressFn: TypeAlias = Callable[[int, int], None]

_REQUIRED = object()
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True, slots=True)
class _Kind:
    """One feature kind: its parameters (type, default, minimum) and its warm-up."""

    doc: str
    params: Mapping[str, tuple[type, object, float]]
    lookback: Callable[[Mapping[str, Any]], int]
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _p(kind: type, default: object = _REQUIRED, minimum: float = 1) -> tuple[type, object, float]:
    return kind, default, minimum


KINDS: Mapping[str, _Kind] = {
    "return": _Kind(
        "close[t] / close[t-horizon] - 1", {"horizon": _p(int)}, lambda p: p["horizon"]
    ),
    "log_return": _Kind(
        "ln(close[t] / close[t-horizon])", {"horizon": _p(int, 1)}, lambda p: p["horizon"]
    ),
    "volatility": _Kind(
        "population std-dev of the last `window` one-bar log returns",
        {"window": _p(int, 20, 2)},
        lambda p: p["window"],
    ),
    "rsi": _Kind(
        "Wilder's RSI (TA-Lib), 0..100", {"period": _p(int, 14, 2)}, lambda p: p["period"]
    ),
    "macd": _Kind(
        "MACD line, signal or histogram (TA-Lib) divided by close; all three from bar "
        "slow + signal - 2, TA-Lib's first output",
        {
            "fast": _p(int, 12, 2),
            "slow": _p(int, 26, 2),
            "signal": _p(int, 9),
            "output": _p(str, "line"),
        },
        lambda p: p["slow"] + p["signal"] - 2,
        {"output": ("line", "signal", "hist")},
    ),
    "atr": _Kind("ATR (TA-Lib, Wilder) / close", {"period": _p(int, 14)}, lambda p: p["period"]),
    "bollinger_b": _Kind(
        "Bollinger %B: (close - lower) / (upper - lower) of SMA +/- k population std-devs; "
        "0.5 when the bands coincide (a flat window)",
        {"period": _p(int, 20, 2), "k": _p(float, 2.0, 0)},
        lambda p: p["period"] - 1,
    ),
    "volume_z": _Kind(
        "(volume - mean) / std-dev over the last `window` bars (population); 0 when the window "
        "is flat (zero volume included)",
        {"window": _p(int, 20, 2)},
        lambda p: p["window"] - 1,
    ),
    "vwap_distance": _Kind(
        "close / VWAP - 1, VWAP = sum(typical * volume) / sum(volume) over `window` bars, "
        "typical = (high + low + close) / 3; a window without volume (indexes) falls back to the "
        "mean typical price",
        {"window": _p(int, 20, 2)},
        lambda p: p["window"] - 1,
    ),
    "gap": _Kind("open[t] / close[t-1] - 1", {}, lambda p: 1),
    "time_of_day": _Kind(
        "minutes from the session open to the bar's timestamp (its label: start or end), "
        "exchange wall-clock time; negative before the open",
        {},
        lambda p: 0,
    ),
    "day_of_week": _Kind("weekday in exchange time, Monday = 0", {}, lambda p: 0),
    "xs_rank": _Kind(
        "percentile rank (pandas rank(pct=True), ties averaged) of feature `of` across the "
        "symbols that have a value at the same timestamp; panel and streaming only",
        {"of": _p(str)},
        lambda p: 0,  # the source feature's, resolved by FeatureSet
    ),
}


def _coerce(kind: str, key: str, value: object) -> Param:
    typ, _default, minimum = KINDS[kind].params[key]
    where = f"{kind}.{key}"
    if typ is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {value!r}")
        choices = KINDS[kind].choices.get(key)
        if choices and value not in choices:
            raise ValueError(f"{where} must be one of {choices}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{where} must be finite, got {value!r}")
    if typ is int and value != int(value):
        raise ValueError(f"{where} must be an integer, got {value!r}")
    number: int | float = int(value) if typ is int else float(value)
    if number < minimum or (minimum == 0 and number <= 0):
        bound = "> 0" if minimum == 0 else f">= {minimum:g}"
        raise ValueError(f"{where} must be {bound}, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class Feature:
    """One output column: ``name``, ``kind`` (a key of :data:`KINDS`, or ``custom``), its
    parameters (sorted ``(key, value)`` pairs) and ``lookback``, the index of its first value:
    the number of earlier bars it needs. Build with :meth:`make`, :meth:`rank` or
    :meth:`custom`."""

    name: str
    kind: str
    params: tuple[tuple[str, Param], ...] = ()
    lookback: int = 0
    fn: CustomFn | None = field(default=None, compare=False, repr=False)

    @classmethod
    def make(cls, name: str, kind: str, **params: object) -> Feature:
        """A built-in feature; missing parameters take their defaults, unknown ones fail."""
        if kind == "custom":
            raise ValueError("custom features are built with Feature.custom(name, fn, lookback)")
        if kind not in KINDS:
            raise ValueError(f"unknown feature kind {kind!r}; known: {sorted(KINDS)}")
        spec = KINDS[kind]
        unknown = set(params) - set(spec.params)
        if unknown:
            raise ValueError(
                f"{kind} has no parameter(s) {sorted(unknown)}; has {list(spec.params)}"
            )
        values: dict[str, Param] = {}
        for key, (_typ, default, _min) in spec.params.items():
            if key not in params and default is _REQUIRED:
                raise ValueError(f"{kind} needs the parameter {key!r}")
            values[key] = _coerce(kind, key, params.get(key, default))
        if kind == "macd" and values["fast"] >= values["slow"]:  # type: ignore[operator]
            raise ValueError(f"macd: fast ({values['fast']}) must be < slow ({values['slow']})")
        return cls(_check_name(name), kind, tuple(sorted(values.items())), spec.lookback(values))

    @classmethod
    def rank(cls, name: str, of: str) -> Feature:
        """The cross-sectional percentile rank of feature ``of`` (panel and streaming only)."""
        return cls.make(name, "xs_rank", of=of)

    @classmethod
    def custom(cls, name: str, fn: CustomFn, lookback: int) -> Feature:
        """A feature computed by ``fn(bars) -> Series | array`` (same length as ``bars``).

        Batch only: it has no streaming form (StreamingFeatures refuses a set holding one) and
        no YAML form (it is code); the hash names it by ``module:qualname``, not its code.
        """
        if not callable(fn):
            raise ValueError(f"custom feature {name!r}: fn must be callable")
        if isinstance(lookback, bool) or not isinstance(lookback, int) or lookback < 0:
            raise ValueError(f"custom feature {name!r}: lookback must be an int >= 0")
        ref = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"
        return cls(_check_name(name), "custom", (("function", ref),), lookback, fn)

    def param(self, key: str) -> Param:
        return dict(self.params)[key]

    @property
    def is_rank(self) -> bool:
        return self.kind == "xs_rank"

    def definition(self) -> dict[str, Param]:
        """The feature as a flat mapping: ``name``, ``kind`` and its parameters."""
        out: dict[str, Param] = {"name": self.name, "kind": self.kind, **dict(self.params)}
        if self.kind == "custom":
            out["lookback"] = self.lookback
        return out


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"feature name must match {_NAME.pattern}, got {name!r}")
    return name


def _parse_time(value: object) -> str:
    # Unquoted 9:15 in YAML 1.1 is the base-60 integer 555: only strings are accepted.
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"session_open must be a quoted 'HH:MM', got {value!r}")
    return f"{int(match[1]):02d}:{match[2]}"


@dataclass(frozen=True)
class FeatureSet:
    """A named, versioned list of features; ``hash`` identifies its exact content.

    ``timezone`` and ``session_open`` fix the calendar features (exchange time). Naive
    timestamps are taken as UTC, as everywhere in QuantDesk.
    """

    name: str
    version: int
    features: tuple[Feature, ...]
    timezone: str = "Asia/Kolkata"
    session_open: str = "09:15"

    def __post_init__(self) -> None:
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise ValueError(f"version must be an int >= 1, got {self.version!r}")
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a feature set needs a name")
        object.__setattr__(self, "session_open", _parse_time(self.session_open))
        try:  # an unknown zone fails here, not in the middle of a build
            ZoneInfo(self.timezone)
        except (ValueError, TypeError, ZoneInfoNotFoundError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        seen: dict[str, Feature] = {}
        resolved = []
        for f in self.features:
            if f.name in seen:
                raise ValueError(f"duplicate feature name {f.name!r}")
            if f.is_rank:
                source = seen.get(str(f.param("of")))
                if source is None or source.is_rank:
                    raise ValueError(
                        f"{f.name}: xs_rank of {f.param('of')!r} needs an earlier non-rank feature"
                    )
                f = replace(f, lookback=source.lookback)
            seen[f.name] = f
            resolved.append(f)
        if not resolved:
            raise ValueError("a feature set needs at least one feature")
        object.__setattr__(self, "features", tuple(resolved))

    # -- shape -------------------------------------------------------------------------------

    @property
    def columns(self) -> list[str]:
        """Every output column, in definition order (what :meth:`compute_panel` returns)."""
        return [f.name for f in self.features]

    @property
    def series_columns(self) -> list[str]:
        """The per-symbol columns (no cross-sectional ranks): what :meth:`compute_batch`
        and ``StreamingFeatures.update`` return."""
        return [f.name for f in self.features if not f.is_rank]

    @property
    def lookback(self) -> int:
        """Bars needed before every feature has a value."""
        return max(f.lookback for f in self.features)

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    # -- identity ----------------------------------------------------------------------------

    def definition(self) -> dict[str, Any]:
        """The definition as plain data (what YAML holds and the hash covers)."""
        return {
            "name": self.name,
            "version": self.version,
            "timezone": self.timezone,
            "session_open": self.session_open,
            "features": [f.definition() for f in self.features],
        }

    def canonical_json(self) -> str:
        return json.dumps(self.definition(), sort_keys=True, separators=(",", ":"))

    @cached_property
    def hash(self) -> str:
        """sha256 (hex) of :meth:`canonical_json`: the same in every process and run."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    # -- YAML --------------------------------------------------------------------------------

    def to_yaml(self) -> str:
        custom = [f.name for f in self.features if f.kind == "custom"]
        if custom:
            raise ValueError(f"custom features {custom} are code and have no YAML form")
        import yaml

        return str(yaml.safe_dump(self.definition(), sort_keys=False))

    @classmethod
    def from_yaml(cls, text: str) -> FeatureSet:
        import yaml

        data = yaml.safe_load(text)
        if not isinstance(data, dict):
            raise ValueError("feature set YAML must be a mapping")
        return cls.from_definition(data)

    @classmethod
    def from_definition(cls, data: Mapping[str, Any]) -> FeatureSet:
        known = {"name", "version", "timezone", "session_open", "features"}
        if set(data) - known:
            raise ValueError(f"unknown feature set key(s) {sorted(set(data) - known)}")
        raw = data.get("features")
        if not isinstance(raw, list):
            raise ValueError("features must be a list")
        features = []
        for item in raw:
            if not isinstance(item, dict) or "name" not in item or "kind" not in item:
                raise ValueError(f"each feature needs a name and a kind, got {item!r}")
            params = {k: v for k, v in item.items() if k not in ("name", "kind")}
            features.append(Feature.make(item["name"], item["kind"], **params))
        extra = {k: data[k] for k in ("timezone", "session_open") if k in data}
        return cls(str(data.get("name", "")), data.get("version", 0), tuple(features), **extra)

    # -- computation -------------------------------------------------------------------------

    def compute_batch(self, bars: pd.DataFrame, *, symbol: str | None = None) -> pd.DataFrame:
        """Per-symbol features of one symbol's bars: same index, one float64 column per
        :attr:`series_columns` entry, NaN during each feature's warm-up (see ``batch``)."""
        from quantdesk.ml.features.batch import compute_batch

        return compute_batch(self, bars, symbol=symbol)

    def compute_panel(
        self, bars_by_symbol: Mapping[str, pd.DataFrame], *, progress: ProgressFn | None = None
    ) -> pd.DataFrame:
        """Every column over many symbols, cross-sectional ranks included; index
        ``(timestamp, symbol)``, sorted. ``progress(done, total)`` is called per symbol."""
        from quantdesk.ml.features.batch import compute_panel

        return compute_panel(self, bars_by_symbol, progress=progress)

    def streaming(self, symbols: Iterable[str]) -> StreamingFeatures:
        """A :class:`StreamingFeatures` for ``symbols``."""
        from quantdesk.ml.features.stream import StreamingFeatures

        return StreamingFeatures(self, symbols)


def default_feature_set() -> FeatureSet:
    """The platform's default features (version 1)."""
    m = Feature.make
    return FeatureSet(
        "default",
        1,
        (
            m("ret_1", "return", horizon=1),
            m("ret_5", "return", horizon=5),
            m("ret_20", "return", horizon=20),
            m("logret_1", "log_return", horizon=1),
            m("vol_20", "volatility", window=20),
            m("rsi_14", "rsi", period=14),
            m("macd_line", "macd", output="line"),
            m("macd_signal", "macd", output="signal"),
            m("macd_hist", "macd", output="hist"),
            m("atr_14", "atr", period=14),
            m("bb_pctb_20", "bollinger_b", period=20, k=2.0),
            m("volume_z_20", "volume_z", window=20),
            m("vwap_dist_20", "vwap_distance", window=20),
            m("gap", "gap"),
            m("time_of_day", "time_of_day"),
            m("day_of_week", "day_of_week"),
            Feature.rank("xs_rank_ret_5", of="ret_5"),
            Feature.rank("xs_rank_ret_20", of="ret_20"),
            Feature.rank("xs_rank_vol_20", of="vol_20"),
        ),
    )
