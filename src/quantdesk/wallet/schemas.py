"""Request and response shapes of the wallet API. Money is a decimal string."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from quantdesk.api.types import NO_NUL
from quantdesk.core.ledger import WalletBalance
from quantdesk.wallet.service import (
    DEFAULT_CURRENCY,
    MAX_MOVEMENT,
    Movement,
    StoredEntry,
    money_str,
)

# The schema documents the format; the service enforces it (positive, the currency's decimal
# places, the maximum), so every bad amount answers WALLET_BAD_AMOUNT with details.parameter.
_AMOUNT_SCHEMA = {"pattern": r"^[0-9]{1,13}(\.[0-9]{1,8})?$", "maxLength": 32}


class MovementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Annotated[
        str,
        Field(
            description=(
                "A plain decimal string greater than 0 and at most "
                f"{MAX_MOVEMENT:f}, with at most the currency's decimal places (2 for INR); no "
                "sign, exponent, NaN or Infinity. Errors: WALLET_BAD_AMOUNT."
            ),
            examples=["10000.00"],
            json_schema_extra=_AMOUNT_SCHEMA,
        ),
    ]
    currency: Annotated[
        str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, upper case")
    ] = DEFAULT_CURRENCY
    note: Annotated[str, Field(max_length=256, pattern=NO_NUL)] = ""


class BalanceOut(BaseModel):
    available: str
    held: str
    margin: str
    total: str

    @classmethod
    def of(cls, b: WalletBalance, currency: str) -> BalanceOut:
        return cls(
            available=money_str(b.available, currency),
            held=money_str(b.held, currency),
            margin=money_str(b.margin, currency),
            total=money_str(b.total, currency),
        )


class WalletOut(BaseModel):
    user_id: int
    balances: dict[str, BalanceOut] = Field(
        description="Per currency (INR always present): available = cash free to use, held = "
        "reserved for live orders, margin = blocked for open intraday (MIS) positions, total = "
        "available + held + margin."
    )

    @classmethod
    def of(cls, user_id: int, wallet: dict[str, WalletBalance]) -> WalletOut:
        return cls(user_id=user_id, balances={c: BalanceOut.of(b, c) for c, b in wallet.items()})


class PostingOut(BaseModel):
    account: str
    currency: str
    amount: str


class EntryOut(BaseModel):
    id: int
    kind: str
    memo: str
    ref: str
    created_at: datetime
    created_by: int | None
    postings: list[PostingOut]

    @classmethod
    def of(cls, e: StoredEntry) -> EntryOut:
        return cls(
            id=e.id,
            kind=e.kind,
            memo=e.memo,
            ref=e.ref,
            created_at=e.created_at,
            created_by=e.created_by,
            postings=[
                PostingOut(
                    account=p.account, currency=p.currency, amount=money_str(p.amount, p.currency)
                )
                for p in e.postings
            ],
        )


class LedgerPageOut(BaseModel):
    items: list[EntryOut]
    next_cursor: int | None


class MovementOut(BaseModel):
    entry_id: int
    wallet: WalletOut

    @classmethod
    def of(cls, m: Movement) -> MovementOut:
        return cls(entry_id=m.entry_id, wallet=WalletOut.of(m.user_id, m.wallet))
