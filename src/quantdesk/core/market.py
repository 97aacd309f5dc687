"""Market data values: quotes, bars, tick rounding and the quote path inside a bar.

Pure and stdlib-only, so the backtester, the replay feed and the paper broker derive exactly the
same quotes from the same bars.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final, Literal

QUOTES_CHANNEL_PREFIX: Final = "quotes:"
"""Bus channel prefix for quotes; a symbol's channel is ``quotes:NSE:INFY``."""

TickRounding = Literal["nearest", "down", "up"]

_ROUNDING: Final[Mapping[str, str]] = {
    # Half-up rather than banker's rounding: traders expect 100.025 -> 100.05 on a 0.05 tick.
    "nearest": ROUND_HALF_UP,
    "down": ROUND_FLOOR,
    "up": ROUND_CEILING,
}


def quote_channel(symbol: str) -> str:
    """The bus channel carrying ``symbol``'s quotes."""
    return QUOTES_CHANNEL_PREFIX + symbol


def validate_symbol(symbol: str) -> str:
    """Return ``symbol`` if it has the ``EXCHANGE:SYMBOL`` form, else raise ``ValueError``."""
    exchange, sep, name = symbol.partition(":")
    if not sep or not exchange or not name or symbol != symbol.strip():
        raise ValueError(f"symbol must look like EXCHANGE:SYMBOL, got {symbol!r}")
    return symbol


def _check_tick(tick: Decimal) -> None:
    if not tick.is_finite() or tick <= 0:
        raise ValueError(f"tick size must be a positive finite Decimal, got {tick!r}")


def round_to_tick(price: Decimal, tick: Decimal, rounding: TickRounding = "nearest") -> Decimal:
    """Round ``price`` to a whole multiple of ``tick``.

    The result carries the tick's exponent (``round_to_tick(Decimal("101"), Decimal("0.05"))``
    is ``Decimal("101.00")``), so prices print with the instrument's precision.
    """
    _check_tick(tick)
    if not price.is_finite():
        raise ValueError(f"price must be finite, got {price!r}")
    return _rounded(price, tick, rounding)


@functools.lru_cache(maxsize=1 << 16)
def _rounded(price: Decimal, tick: Decimal, rounding: TickRounding) -> Decimal:
    """Memoised: fills, marks and holds round the same few prices over and over."""
    steps = (price / tick).to_integral_value(rounding=_ROUNDING[rounding])
    exponent = tick.as_tuple().exponent
    assert isinstance(exponent, int)  # finite decimals have an int exponent
    return (steps * tick).quantize(Decimal(1).scaleb(min(exponent, 0)))


def is_on_tick(price: Decimal, tick: Decimal) -> bool:
    """True if ``price`` is a whole multiple of ``tick``."""
    _check_tick(tick)
    try:
        return price.is_finite() and price % tick == 0
    except InvalidOperation:  # quotient too large for the context precision
        return False


def _utc(ts: datetime, field: str) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{field} must be timezone-aware, got {ts!r}")
    return ts.astimezone(UTC)


def _price(value: Any, field: str) -> Decimal:
    # Floats are refused on purpose: money never passes through binary floating point.
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        raise TypeError(f"{field} must be a Decimal or a decimal string, got {value!r}")
    try:
        result = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"{field} is not a decimal: {value!r}") from exc
    if not result.is_finite() or result < 0:
        raise ValueError(f"{field} must be a finite, non-negative decimal, got {value!r}")
    return result


def _volume(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{field} must be a non-negative int, got {value!r}")
    return value


def _decimal_str(value: Decimal) -> str:
    # Fixed-point text ("1500.05", never "1.50005E+3") is what a UI or a spreadsheet expects.
    return format(value, "f")


@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book and last trade for one instrument at one instant.

    ``volume`` is the cumulative traded volume of the session, as exchanges report it; the
    paper broker caps partial fills by its increase between quotes.
    """

    symbol: str
    last: Decimal
    bid: Decimal
    ask: Decimal
    volume: int
    ts: datetime

    def __post_init__(self) -> None:
        validate_symbol(self.symbol)
        for name in ("last", "bid", "ask"):
            object.__setattr__(self, name, _price(getattr(self, name), name))
        _volume(self.volume, "volume")
        object.__setattr__(self, "ts", _utc(self.ts, "ts"))

    @property
    def mid(self) -> Decimal:
        """Midpoint of bid and ask (not tick-rounded)."""
        return (self.bid + self.ask) / 2

    def to_json(self) -> dict[str, str | int]:
        """A JSON-ready dict: decimals as strings, time as ISO 8601 UTC."""
        return {
            "symbol": self.symbol,
            "last": _decimal_str(self.last),
            "bid": _decimal_str(self.bid),
            "ask": _decimal_str(self.ask),
            "volume": self.volume,
            "ts": self.ts.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Quote:
        """Inverse of :meth:`to_json`; raises ``ValueError``/``TypeError``/``KeyError``."""
        ts, symbol = data["ts"], data["symbol"]
        if not isinstance(ts, str) or not isinstance(symbol, str):
            raise TypeError(f"symbol and ts must be strings, got {symbol!r}, {ts!r}")
        return cls(
            symbol=symbol,
            last=_price(data["last"], "last"),
            bid=_price(data["bid"], "bid"),
            ask=_price(data["ask"], "ask"),
            volume=_volume(data["volume"], "volume"),
            ts=datetime.fromisoformat(ts),
        )


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar; ``ts`` is the bar's open time (UTC), ``volume`` the bar's own volume."""

    ts: datetime
    symbol: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int

    def __post_init__(self) -> None:
        validate_symbol(self.symbol)
        for name in ("open", "high", "low", "close"):
            object.__setattr__(self, name, _price(getattr(self, name), name))
        _volume(self.volume, "volume")
        object.__setattr__(self, "ts", _utc(self.ts, "ts"))
        if not self.low <= min(self.open, self.close) <= max(self.open, self.close) <= self.high:
            raise ValueError(f"bar prices are inconsistent: {self!r}")


BAR_PATH_POINTS: Final = 4


def bar_path(bar: Bar) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """The prices a bar is assumed to trade through, in order.

    Up bars visit the low before the high and down bars the high before the low: the usual
    conservative assumption, which makes stop and limit fills inside a bar deterministic.
    """
    if bar.close >= bar.open:
        return (bar.open, bar.low, bar.high, bar.close)
    return (bar.open, bar.high, bar.low, bar.close)


def quotes_from_bar(
    bar: Bar,
    *,
    tick: Decimal,
    interval: timedelta,
    session_volume: int = 0,
    half_spread_ticks: int = 1,
) -> list[Quote]:
    """Quotes along :func:`bar_path`, spread evenly over ``interval`` from the bar's open time.

    ``session_volume`` is the cumulative volume before this bar; the bar's volume is added in
    four steps so the last quote carries ``session_volume + bar.volume``. Bid and ask sit
    ``half_spread_ticks`` ticks either side of the last price (the bid never below zero).
    """
    if interval < timedelta(0):
        raise ValueError(f"interval must not be negative, got {interval!r}")
    half_spread = tick * half_spread_ticks
    quotes = []
    for i, raw in enumerate(bar_path(bar)):
        last = round_to_tick(raw, tick)
        quotes.append(
            Quote(
                symbol=bar.symbol,
                last=last,
                bid=max(last - half_spread, Decimal(0) * tick),
                ask=last + half_spread,
                volume=session_volume + bar.volume * (i + 1) // BAR_PATH_POINTS,
                ts=bar.ts + interval * i / BAR_PATH_POINTS,
            )
        )
    return quotes
