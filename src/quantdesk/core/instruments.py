"""Instrument identity and trading rules: ``EXCHANGE:SYMBOL`` references, ISIN check digits, and
the tick, lot and price-band checks every order must pass.

Pure and stdlib-only: the API, the paper broker and the backtester apply the same rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from quantdesk.core.market import TickRounding, is_on_tick, round_to_tick

__all__ = [
    "InstrumentRef",
    "InstrumentSpec",
    "InvalidInstrumentRef",
    "is_valid_isin",
]

MAX_SYMBOL_LENGTH: Final = 48
_EXCHANGE = re.compile(r"[A-Z][A-Z0-9_]{1,15}")
# Letters, digits and & . _ - (NSE:M&M, NSE:BAJAJ-AUTO), with single inner spaces because index
# names are symbols too (Kite's ``NSE:NIFTY 50``).
_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9&._-]*(?: [A-Z0-9&._-]+)*")
_ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")
_HUNDRED: Final = Decimal(100)


class InvalidInstrumentRef(ValueError):
    """Text that is not a valid ``EXCHANGE:SYMBOL``."""


@dataclass(frozen=True, slots=True, order=True)
class InstrumentRef:
    """An instrument's name across the platform: ``NSE:INFY`` (exchange, then trading symbol).

    Both parts are upper case; construct with :meth:`parse` or :meth:`of` to normalise input.
    """

    exchange: str
    symbol: str

    def __post_init__(self) -> None:
        if not _EXCHANGE.fullmatch(self.exchange):
            raise InvalidInstrumentRef(
                f"exchange must be 2-16 upper-case letters, digits or '_', got {self.exchange!r}"
            )
        if len(self.symbol) > MAX_SYMBOL_LENGTH or not _SYMBOL.fullmatch(self.symbol):
            raise InvalidInstrumentRef(
                f"symbol must be 1-{MAX_SYMBOL_LENGTH} upper-case letters, digits, '&', '.', "
                f"'_', '-' or single inner spaces, got {self.symbol!r}"
            )

    @classmethod
    def of(cls, exchange: str, symbol: str) -> InstrumentRef:
        """Build from parts, trimming them and folding them to upper case."""
        return cls(exchange.strip().upper(), symbol.strip().upper())

    @classmethod
    def parse(cls, text: str) -> InstrumentRef:
        """Parse ``EXCHANGE:SYMBOL`` (case-insensitive, surrounding spaces ignored)."""
        exchange, sep, symbol = text.strip().partition(":")
        if not sep:
            raise InvalidInstrumentRef(f"expected EXCHANGE:SYMBOL, e.g. NSE:INFY, got {text!r}")
        return cls.of(exchange, symbol)

    def __str__(self) -> str:
        return f"{self.exchange}:{self.symbol}"


def is_valid_isin(isin: str) -> bool:
    """True if ``isin`` has the ISO 6166 shape and its check digit (Luhn over the digits that
    letters expand to, A=10 ... Z=35) is right: catches nearly every single-character typo."""
    if not _ISIN.fullmatch(isin):
        return False
    digits = "".join(str(int(c, 36)) for c in isin[:-1])
    total = 0
    # Double every second digit from the right of the payload (the check digit is excluded).
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
        total += d // 10 + d % 10
    return (10 - total % 10) % 10 == int(isin[-1])


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """The rules an order on one instrument must follow.

    ``price_band_pct`` is the exchange's band around the reference price (the previous close):
    ``Decimal(20)`` allows prices within +/-20%; ``None`` means no band.
    """

    tick_size: Decimal
    lot_size: int = 1
    price_band_pct: Decimal | None = None
    currency: str = "INR"

    def __post_init__(self) -> None:
        if not isinstance(self.tick_size, Decimal) or not self.tick_size.is_finite():
            raise ValueError(f"tick_size must be a finite Decimal, got {self.tick_size!r}")
        if self.tick_size <= 0:
            raise ValueError(f"tick_size must be positive, got {self.tick_size}")
        if isinstance(self.lot_size, bool) or not isinstance(self.lot_size, int):
            raise ValueError(f"lot_size must be an int, got {self.lot_size!r}")
        if self.lot_size < 1:
            raise ValueError(f"lot_size must be at least 1, got {self.lot_size}")
        band = self.price_band_pct
        if band is not None and (
            not isinstance(band, Decimal) or not band.is_finite() or not 0 < band <= _HUNDRED
        ):
            raise ValueError(f"price_band_pct must be in (0, 100] or None, got {band!r}")
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ValueError(f"currency must be an ISO 4217 code, got {self.currency!r}")

    def is_on_tick(self, price: Decimal) -> bool:
        """True if ``price`` is a whole multiple of the tick size."""
        return is_on_tick(price, self.tick_size)

    def round_to_tick(self, price: Decimal, mode: TickRounding = "nearest") -> Decimal:
        """``price`` moved to a multiple of the tick: ``nearest`` (half up), ``down`` or ``up``."""
        return round_to_tick(price, self.tick_size, mode)

    def is_valid_quantity(self, quantity: int) -> bool:
        """True for a positive whole number of lots."""
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            return False
        return quantity > 0 and quantity % self.lot_size == 0

    def price_band(self, reference: Decimal) -> tuple[Decimal, Decimal] | None:
        """The lowest and highest prices allowed around ``reference`` (the previous close, taken
        to the nearest tick), on the tick and inside the band (limits round inwards); None when
        the instrument has no band."""
        if self.price_band_pct is None:
            return None
        if not reference.is_finite() or reference <= 0:
            raise ValueError(f"reference price must be positive, got {reference!r}")
        # On the tick first, so the band always contains the reference itself.
        ref = max(self.round_to_tick(reference), self.tick_size)
        width = ref * self.price_band_pct / _HUNDRED
        low = max(self.round_to_tick(ref - width, "up"), self.tick_size)
        high = self.round_to_tick(ref + width, "down")
        return low, high

    def is_within_band(self, price: Decimal, reference: Decimal) -> bool:
        """True if ``price`` is inside the band around ``reference`` (always, with no band)."""
        band = self.price_band(reference)
        if band is None:
            return True
        return band[0] <= price <= band[1]
