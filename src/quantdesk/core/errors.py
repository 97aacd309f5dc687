"""Domain errors of the pure core: an exception with a stable, machine-readable code.

The API maps them to its error envelope (``{"error": {"code", "message", "details"}}``); the
subclass says which kind of 4xx fits: the request can never be valid (422) or the object is in
the wrong state for it (409).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class ErrorCode(StrEnum):
    """Stable codes; clients match on them, so a code is never renamed or reused."""

    ORDER_BAD_QUANTITY = "ORDER_BAD_QUANTITY"
    ORDER_BAD_PRICE = "ORDER_BAD_PRICE"
    ORDER_PRICE_MISSING = "ORDER_PRICE_MISSING"
    ORDER_PRICE_NOT_ALLOWED = "ORDER_PRICE_NOT_ALLOWED"
    ORDER_PRICE_OFF_TICK = "ORDER_PRICE_OFF_TICK"
    ORDER_OUTSIDE_BAND = "ORDER_OUTSIDE_BAND"
    ORDER_STOP_LIMIT_MISMATCH = "ORDER_STOP_LIMIT_MISMATCH"
    ORDER_INSUFFICIENT_HOLDINGS = "ORDER_INSUFFICIENT_HOLDINGS"
    ORDER_NOT_LIVE = "ORDER_NOT_LIVE"
    ORDER_BAD_TRANSITION = "ORDER_BAD_TRANSITION"
    ORDER_OVERFILL = "ORDER_OVERFILL"
    ORDER_MODIFY_BELOW_FILLED = "ORDER_MODIFY_BELOW_FILLED"
    ORDER_NOT_TRIGGERABLE = "ORDER_NOT_TRIGGERABLE"
    ORDER_BAD_TIME = "ORDER_BAD_TIME"
    FILL_BAD_QUANTITY = "FILL_BAD_QUANTITY"
    FILL_BAD_PRICE = "FILL_BAD_PRICE"
    POSITION_SYMBOL_MISMATCH = "POSITION_SYMBOL_MISMATCH"
    LEDGER_BAD_POSTING = "LEDGER_BAD_POSTING"
    LEDGER_UNBALANCED = "LEDGER_UNBALANCED"
    LEDGER_BAD_AMOUNT = "LEDGER_BAD_AMOUNT"
    WALLET_INSUFFICIENT_FUNDS = "WALLET_INSUFFICIENT_FUNDS"


class DomainError(Exception):
    """A broken domain rule. ``details`` holds JSON-ready values (strings, ints) for clients."""

    def __init__(
        self, code: ErrorCode, message: str, details: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details: Mapping[str, object] = MappingProxyType(dict(details or {}))


class InvalidInput(DomainError):
    """The request can never succeed as given (bad quantity, off-tick price, ...)."""


class InvalidState(DomainError):
    """The request does not fit the object's current state (cancel a filled order, overfill,
    spend more than is available)."""
