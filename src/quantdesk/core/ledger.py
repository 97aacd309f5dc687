"""Double-entry journal: postings, balanced entries (DESIGN invariant 2) and the builders for the
wallet flows (deposit, withdrawal, hold, release, trade settlement, charges).

Accounts are colon-separated names, owner first::

    user:{id}:cash            the user's available cash
    user:{id}:held            cash reserved for the user's live orders
    user:{id}:margin          cash blocked as margin for open intraday (MIS) positions
    external:deposits         money brought in from outside (goes negative by what came in)
    external:withdrawals      money paid out
    venue:{name}:settlement   the trade counterparty of a broker or the paper venue
    fees:{component}          brokerage, exchange_charge, sebi_fee, dp_charge (core.charges)
    taxes:{component}         stt, ctt, stamp_duty, gst

Charges are posted per fill (:func:`charges`); an ``ADJUSTMENT`` entry
(:func:`charges_adjustment`) later corrects them in one entry, e.g. when a CNC buy sold the
same day turns out to be intraday.

Signs: a positive amount increases the account's balance as its owner sees it (a user's cash,
fees collected); each entry's amounts sum to zero per currency. So the wallet reads directly off
the balances: ``available = balance(user:cash)``, ``held = balance(user:held)``, ``total =
available + held`` (the brief's "available = cash - held", with cash meaning the total).

Cash-only ledger: securities are not in it. Shares are accounted by positions (the fold of
fills). A delivery (CNC) trade entry moves the trade's value between the user's cash and the
venue's settlement account; settlement is immediate (T+1 is not modelled). An intraday (MIS)
trade moves no notional: opening a position blocks margin (cash -> margin, value / leverage),
closing it unblocks its share of the margin and settles the realised P&L with the venue
(:func:`settle_intraday`). ``total = available + held + margin``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final

from quantdesk.core.errors import ErrorCode, InvalidInput, InvalidState
from quantdesk.core.orders import Side

__all__ = [
    "EXTERNAL_DEPOSITS",
    "EXTERNAL_WITHDRAWALS",
    "EntryKind",
    "JournalEntry",
    "Posting",
    "WalletBalance",
    "balances",
    "charge_account",
    "charges",
    "charges_adjustment",
    "deposit",
    "hold",
    "release",
    "release_for_fill",
    "settle_fill",
    "settle_intraday",
    "user_cash",
    "user_held",
    "user_margin",
    "venue_settlement",
    "wallet",
    "withdrawal",
]

EXTERNAL_DEPOSITS: Final = "external:deposits"
EXTERNAL_WITHDRAWALS: Final = "external:withdrawals"
TAX_COMPONENTS: Final = frozenset({"stt", "ctt", "stamp_duty", "gst"})

_ACCOUNT = re.compile(r"[a-z]+(?::[A-Za-z0-9_.@-]+)+")
_CURRENCY = re.compile(r"[A-Z]{3}")
_COMPONENT = re.compile(r"[a-z][a-z0-9_]*")
_ZERO: Final = Decimal(0)


def user_cash(user_id: object) -> str:
    return f"user:{user_id}:cash"


def user_held(user_id: object) -> str:
    return f"user:{user_id}:held"


def user_margin(user_id: object) -> str:
    return f"user:{user_id}:margin"


def venue_settlement(venue: str) -> str:
    return f"venue:{venue}:settlement"


def charge_account(component: str) -> str:
    """``taxes:stt`` for a tax component, ``fees:brokerage`` for any other charge."""
    if not _COMPONENT.fullmatch(component):
        raise InvalidInput(
            ErrorCode.LEDGER_BAD_POSTING,
            f"charge component must be lower_snake_case, got {component!r}",
        )
    return f"{'taxes' if component in TAX_COMPONENTS else 'fees'}:{component}"


class EntryKind(StrEnum):
    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"
    HOLD = "HOLD"
    RELEASE = "RELEASE"
    TRADE = "TRADE"
    FEE = "FEE"
    TAX = "TAX"
    ADJUSTMENT = "ADJUSTMENT"


@dataclass(frozen=True, slots=True)
class Posting:
    """One line of an entry: ``amount`` (non-zero) added to ``account`` in ``currency``."""

    account: str
    currency: str
    amount: Decimal

    def __post_init__(self) -> None:
        if not _ACCOUNT.fullmatch(self.account):
            raise InvalidInput(ErrorCode.LEDGER_BAD_POSTING, f"bad account name {self.account!r}")
        if not _CURRENCY.fullmatch(self.currency):
            raise InvalidInput(ErrorCode.LEDGER_BAD_POSTING, f"bad currency {self.currency!r}")
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite() or self.amount == 0:
            raise InvalidInput(
                ErrorCode.LEDGER_BAD_POSTING,
                f"posting amount must be a non-zero finite decimal, got {self.amount!r}",
            )


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A balanced set of postings; refuses to exist unless they sum to zero per currency.

    ``ref`` ties the entry to what caused it (an order id, a trade id, a deposit request).
    """

    kind: EntryKind
    postings: tuple[Posting, ...]
    memo: str = ""
    ref: str = ""

    def __post_init__(self) -> None:
        if len(self.postings) < 2:
            raise InvalidInput(ErrorCode.LEDGER_UNBALANCED, "an entry needs at least two postings")
        sums: dict[str, Decimal] = defaultdict(Decimal)
        for p in self.postings:
            sums[p.currency] += p.amount
        off = {c: str(s) for c, s in sums.items() if s != 0}
        if off:
            raise InvalidInput(
                ErrorCode.LEDGER_UNBALANCED,
                f"postings of a {self.kind} entry do not sum to zero",
                {"imbalance": off},
            )


def _transfer(source: str, target: str, currency: str, amount: Decimal) -> tuple[Posting, ...]:
    """``amount`` moved from ``source`` to ``target``; nothing for a zero amount."""
    if amount == 0:
        return ()
    return (Posting(source, currency, -amount), Posting(target, currency, amount))


def _positive(amount: Decimal, what: str) -> None:
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise InvalidInput(
            ErrorCode.LEDGER_BAD_AMOUNT,
            f"{what} must be a positive decimal",
            {"amount": str(amount)},
        )


def _covered(amount: Decimal, available: Decimal, what: str) -> None:
    if amount > available:
        raise InvalidState(
            ErrorCode.WALLET_INSUFFICIENT_FUNDS,
            f"{what} of {amount} exceeds the {available} available",
            {"amount": str(amount), "available": str(available)},
        )


# --- builders for the wallet flows ----------------------------------------------------------


def deposit(
    user_id: object, amount: Decimal, currency: str, *, ref: str, memo: str = ""
) -> JournalEntry:
    """Funds brought in from outside: external -> user cash."""
    _positive(amount, "a deposit")
    postings = _transfer(EXTERNAL_DEPOSITS, user_cash(user_id), currency, amount)
    return JournalEntry(EntryKind.DEPOSIT, postings, memo, ref)


def withdrawal(
    user_id: object,
    amount: Decimal,
    currency: str,
    *,
    available: Decimal,
    ref: str,
    memo: str = "",
) -> JournalEntry:
    """Funds paid out: user cash -> external; never more than ``available`` (read under lock)."""
    _positive(amount, "a withdrawal")
    _covered(amount, available, "a withdrawal")
    postings = _transfer(user_cash(user_id), EXTERNAL_WITHDRAWALS, currency, amount)
    return JournalEntry(EntryKind.WITHDRAWAL, postings, memo, ref)


def hold(
    user_id: object,
    amount: Decimal,
    currency: str,
    *,
    available: Decimal,
    ref: str,
    memo: str = "",
) -> JournalEntry:
    """Reserve an order's worst-case cost plus estimated charges: cash -> held.

    Refuses (WALLET_INSUFFICIENT_FUNDS) to reserve more than ``available``, which the OMS reads
    under the account's row lock (DESIGN invariant 3).
    """
    _positive(amount, "a hold")
    _covered(amount, available, "a hold")
    postings = _transfer(user_cash(user_id), user_held(user_id), currency, amount)
    return JournalEntry(EntryKind.HOLD, postings, memo, ref)


def release(
    user_id: object, amount: Decimal, currency: str, *, ref: str, memo: str = ""
) -> JournalEntry:
    """Give back what an order no longer needs (cancel, expiry, rejection): held -> cash."""
    _positive(amount, "a release")
    postings = _transfer(user_held(user_id), user_cash(user_id), currency, amount)
    return JournalEntry(EntryKind.RELEASE, postings, memo, ref)


def release_for_fill(order_held: Decimal, spent: Decimal, *, last: bool) -> Decimal:
    """How much of an order's remaining hold (``order_held``) a fill releases.

    A fill releases what it spends (its value for a buy, plus its charges), capped at what is
    still held for the order; the order's last fill releases the rest. Released == spent keeps
    available cash unchanged by a fill that the hold covered, so it cannot go negative.
    """
    if last:
        return order_held
    return max(_ZERO, min(order_held, spent))


def settle_fill(
    user_id: object,
    side: Side,
    quantity: int,
    price: Decimal,
    currency: str,
    *,
    venue: str,
    released: Decimal = _ZERO,
    ref: str,
    memo: str = "",
) -> JournalEntry:
    """The trade entry of one fill: release ``released`` from the order's hold, then pay the
    trade's value to the venue (buy) or receive it from the venue (sell)."""
    if released < 0:
        raise InvalidInput(ErrorCode.LEDGER_BAD_AMOUNT, "a release cannot be negative")
    value = price * quantity
    _positive(value, "a trade's value")
    cash, settlement = user_cash(user_id), venue_settlement(venue)
    trade = (
        _transfer(cash, settlement, currency, value)
        if side is Side.BUY
        else _transfer(settlement, cash, currency, value)
    )
    postings = _transfer(user_held(user_id), cash, currency, released) + trade
    return JournalEntry(EntryKind.TRADE, postings, memo, ref)


def settle_intraday(
    user_id: object,
    currency: str,
    *,
    venue: str,
    released: Decimal = _ZERO,
    margin_in: Decimal = _ZERO,
    margin_out: Decimal = _ZERO,
    realised: Decimal = _ZERO,
    ref: str,
    memo: str = "",
) -> JournalEntry | None:
    """The trade entry of one intraday (MIS) fill: release ``released`` from the order's hold,
    block ``margin_in`` for what the fill opens, unblock ``margin_out`` for what it closes, and
    settle the gross ``realised`` P&L of the closed part with the venue (a loss, negative, is
    paid to it). None when the fill moves no cash at all."""
    for amount, what in ((released, "a release"), (margin_in, "margin"), (margin_out, "margin")):
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount < 0:
            raise InvalidInput(ErrorCode.LEDGER_BAD_AMOUNT, f"{what} cannot be negative")
    if not isinstance(realised, Decimal) or not realised.is_finite():
        raise InvalidInput(ErrorCode.LEDGER_BAD_AMOUNT, "realised P&L must be a finite decimal")
    cash, margin = user_cash(user_id), user_margin(user_id)
    settlement = venue_settlement(venue)
    postings = (
        _transfer(user_held(user_id), cash, currency, released)
        + _transfer(cash, margin, currency, margin_in)
        + _transfer(margin, cash, currency, margin_out)
        + (
            _transfer(settlement, cash, currency, realised)
            if realised > 0
            else _transfer(cash, settlement, currency, -realised)
        )
    )
    if not postings:
        return None
    return JournalEntry(EntryKind.TRADE, postings, memo, ref)


def charges(
    user_id: object, components: Mapping[str, Decimal], currency: str, *, ref: str
) -> list[JournalEntry]:
    """One entry per non-zero charge component (cash -> ``fees:x`` or ``taxes:x``), in the
    order given; ``components`` is e.g. ``Charges.as_dict()`` of :mod:`quantdesk.core.charges`.

    A negative component is a refund (a recomputed same-day CNC square-off gives delivery STT
    and stamp duty back) and flows the other way.
    """
    entries = []
    for component, amount in components.items():
        account = charge_account(component)
        if not isinstance(amount, Decimal) or not amount.is_finite():
            raise InvalidInput(
                ErrorCode.LEDGER_BAD_AMOUNT,
                f"charge {component} must be a finite decimal",
                {"component": component, "amount": str(amount)},
            )
        if amount == 0:
            continue
        kind = EntryKind.TAX if account.startswith("taxes:") else EntryKind.FEE
        memo = component if amount > 0 else f"{component} refund"
        postings = _transfer(user_cash(user_id), account, currency, amount)
        entries.append(JournalEntry(kind, postings, memo, ref))
    return entries


def charges_adjustment(
    user_id: object,
    components: Mapping[str, Decimal],
    currency: str,
    *,
    ref: str,
    memo: str = "",
) -> JournalEntry | None:
    """ONE entry correcting charges already posted (a CNC same-day square-off recharged as
    intraday): each non-zero component moves between its ``fees:x`` / ``taxes:x`` account and
    the user's cash (positive: charged more; negative: refunded), the cash taking the net.
    None when every component is zero."""
    postings: list[Posting] = []
    net = _ZERO
    for component, amount in components.items():
        account = charge_account(component)
        if not isinstance(amount, Decimal) or not amount.is_finite():
            raise InvalidInput(
                ErrorCode.LEDGER_BAD_AMOUNT,
                f"charge {component} must be a finite decimal",
                {"component": component, "amount": str(amount)},
            )
        if amount != 0:
            postings.append(Posting(account, currency, amount))
            net += amount
    if not postings:
        return None
    if net != 0:
        postings.insert(0, Posting(user_cash(user_id), currency, -net))
    return JournalEntry(EntryKind.ADJUSTMENT, tuple(postings), memo, ref)


# --- balances -------------------------------------------------------------------------------


def balances(
    entries: Iterable[JournalEntry], start: Mapping[tuple[str, str], Decimal] | None = None
) -> dict[tuple[str, str], Decimal]:
    """Sum of postings per ``(account, currency)``, folded over ``start`` (empty by default)."""
    out: dict[tuple[str, str], Decimal] = dict(start or {})
    for entry in entries:
        for p in entry.postings:
            key = (p.account, p.currency)
            out[key] = out.get(key, _ZERO) + p.amount
    return out


@dataclass(frozen=True, slots=True)
class WalletBalance:
    available: Decimal
    held: Decimal
    margin: Decimal = _ZERO

    @property
    def total(self) -> Decimal:
        return self.available + self.held + self.margin


def wallet(
    balances: Mapping[tuple[str, str], Decimal], user_id: object, currency: str
) -> WalletBalance:
    """A user's wallet in one currency, read off the ledger balances."""
    return WalletBalance(
        available=balances.get((user_cash(user_id), currency), _ZERO),
        held=balances.get((user_held(user_id), currency), _ZERO),
        margin=balances.get((user_margin(user_id), currency), _ZERO),
    )
