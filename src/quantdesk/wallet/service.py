"""Wallet use cases over the stored ledger: post balanced entries, read wallets and the ledger,
verify the whole ledger, and the admin's deposits and withdrawals.

Every write happens in the CALLER'S transaction (the caller commits): the OMS posts hold,
release, trade and fee entries together with its order and trade rows, in one transaction.

Concurrency (DESIGN invariant 3, available cash never negative): :func:`post` first makes sure a
cached-balance row exists for every account it touches, then reads those rows -- on PostgreSQL
with ``SELECT ... FOR UPDATE`` in (account, currency) order, so two posts never wait on each
other in opposite orders -- and re-checks under that lock that no user's cash or held balance
would go below zero. On SQLite the first statement is the row-creating ``INSERT``; the driver
opens its (deferred) transaction right before it, so the write lock is taken before anything is
read, which serialises posts like ``BEGIN IMMEDIATE`` would (a read first would pin a snapshot
that a concurrent writer could make stale).
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, cast

from sqlalchemy import Select, Table, bindparam, literal, null, select, tuple_, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession

from quantdesk.core import ledger as core
from quantdesk.core.errors import DomainError, InvalidInput
from quantdesk.db.types import Money, UTCDateTime
from quantdesk.errors import AppError, Conflict, ValidationFailed
from quantdesk.observability import audit
from quantdesk.timeutil import require_aware
from quantdesk.wallet.models import AccountBalance, JournalEntryRow, PostingRow

DEFAULT_CURRENCY: Final = "INR"
# One deposit or withdrawal: at most one lakh crore (10^12) of the currency.
MAX_MOVEMENT: Final = Decimal(10) ** 12
# The Money column is NUMERIC(28, 8): more places would be rounded by PostgreSQL (and kept by
# SQLite), so they are refused rather than stored differently per backend.
MONEY_PLACES: Final = 8
MONEY_LIMIT: Final = Decimal(10) ** 20
# ISO 4217 minor units where they are not 2.
_MINOR_UNITS: Final = {"JPY": 0, "KRW": 0, "BHD": 3, "JOD": 3, "KWD": 3, "OMR": 3, "TND": 3}
_ZERO: Final = Decimal(0)


def minor_units(currency: str) -> int:
    """Decimal places of ``currency`` (2 for INR)."""
    return _MINOR_UNITS.get(currency, 2)


def money_str(amount: Decimal, currency: str) -> str:
    """JSON text of an amount: no trailing zeros beyond the currency's minor units, never an
    exponent, the same on both backends (PostgreSQL returns NUMERIC(28, 8) padded to 8)."""
    places = minor_units(currency)
    value = amount.normalize()
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -places:
        value = value.quantize(Decimal(1).scaleb(-places))
    text = format(value, "f")
    return "0" if places == 0 and text in ("-0", "0") else text


# --- errors ---------------------------------------------------------------------------------


def app_error(exc: DomainError) -> AppError:
    """The HTTP-mapped error for a core domain error: bad input 422, wrong state 409."""
    cls = ValidationFailed if isinstance(exc, InvalidInput) else Conflict
    return cls(exc.message, code=str(exc.code), details=dict(exc.details))


class InsufficientFunds(Conflict):
    code = "WALLET_INSUFFICIENT_FUNDS"


class InsufficientHeld(Conflict):
    code = "WALLET_INSUFFICIENT_HELD"


def _bad_amount(message: str, raw: object, currency: str) -> ValidationFailed:
    return ValidationFailed(
        message,
        code="WALLET_BAD_AMOUNT",
        details={"parameter": "amount", "amount": str(raw)[:64], "currency": currency},
    )


def parse_amount(raw: str | Decimal, currency: str) -> Decimal:
    """A deposit or withdrawal amount from decimal text: positive, finite, at most the
    currency's minor units of decimals (2 for INR), at most :data:`MAX_MOVEMENT`."""
    if isinstance(raw, str):
        text = raw.strip()
        # Only plain decimals: no sign, exponent, NaN, Infinity, underscores or spaces inside.
        if not text or any(c not in "0123456789." for c in text) or text.count(".") > 1:
            raise _bad_amount("amount must be a plain decimal string, e.g. 1000.50", raw, currency)
        try:
            amount = Decimal(text)
        except InvalidOperation as exc:
            raise _bad_amount("amount is not a decimal number", raw, currency) from exc
    else:
        amount = raw
    if not amount.is_finite() or amount <= 0:
        raise _bad_amount("amount must be greater than zero", raw, currency)
    places = minor_units(currency)
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise _bad_amount(f"{currency} amounts have at most {places} decimal places", raw, currency)
    if amount > MAX_MOVEMENT:
        raise _bad_amount(f"amount must be at most {MAX_MOVEMENT}", raw, currency)
    return amount


# --- posting --------------------------------------------------------------------------------


def _dialect(db: AsyncSession) -> str:
    return db.get_bind().dialect.name


def _storable(entry: core.JournalEntry, key: str | None) -> None:
    for p in entry.postings:
        exponent = p.amount.as_tuple().exponent
        if (isinstance(exponent, int) and -exponent > MONEY_PLACES) or abs(p.amount) >= MONEY_LIMIT:
            raise ValidationFailed(
                f"posting amount {p.amount} does not fit NUMERIC(28, {MONEY_PLACES})",
                code="LEDGER_BAD_AMOUNT",
                details={"account": p.account, "amount": str(p.amount)},
            )
        if len(p.account) > 128:
            raise ValidationFailed("account name too long", code="LEDGER_BAD_POSTING")
    if len(entry.ref) > 128 or (key is not None and not 0 < len(key) <= 128):
        raise ValidationFailed(
            "ref and idempotency key are at most 128 characters", code="LEDGER_BAD_REF"
        )


def _is_user_account(account: str, suffix: str) -> bool:
    return account.startswith("user:") and account.endswith(suffix)


def _check_non_negative(
    entry: core.JournalEntry, before: Mapping[tuple[str, str], Decimal]
) -> dict[tuple[str, str], Decimal]:
    """The balances after ``entry``; refuses if a user's cash or held would go below zero."""
    after = core.balances([entry], before)
    for key, value in after.items():
        account, currency = key
        if value >= 0 or value >= before.get(key, _ZERO):
            continue  # only a decrease can break the rule
        if _is_user_account(account, ":cash"):
            available = before.get(key, _ZERO)
            raise InsufficientFunds(
                f"{entry.kind.lower()} of {money_str(available - value, currency)} {currency} "
                f"exceeds the {money_str(available, currency)} available",
                details={
                    "account": account,
                    "currency": currency,
                    "available": money_str(available, currency),
                    "required": money_str(available - value, currency),
                },
            )
        if _is_user_account(account, ":held"):
            raise InsufficientHeld(
                f"{entry.kind.lower()} would take {account} below zero",
                details={"account": account, "currency": currency},
            )
    return after


# Balance rows known to exist (committed before) per database: rows are never deleted, so
# PostgreSQL need not be asked again (on SQLite the INSERT stays: it takes the write lock).
_EXISTING: weakref.WeakKeyDictionary[Engine, set[tuple[str, str]]] = weakref.WeakKeyDictionary()


async def _ensure_rows(db: AsyncSession, keys: Sequence[tuple[str, str]], now: datetime) -> None:
    """Create the missing cached-balance rows (zero). A write statement, deliberately first:
    on SQLite it takes the write lock before anything is read (see the module docstring)."""
    if _dialect(db) != "postgresql":
        rows = [{"account": a, "currency": c, "balance": _ZERO, "updated_at": now} for a, c in keys]
        await db.execute(sqlite_insert(AccountBalance).values(rows).on_conflict_do_nothing())
        return
    engine = db.get_bind()
    assert isinstance(engine, Engine)
    known = _EXISTING.setdefault(engine, set())
    missing = [k for k in keys if k not in known]
    if not missing:
        return
    rows = [{"account": a, "currency": c, "balance": _ZERO, "updated_at": now} for a, c in missing]
    stmt = (
        pg_insert(AccountBalance)
        .values(rows)
        .on_conflict_do_nothing()
        .returning(AccountBalance.account, AccountBalance.currency)
    )
    created = {(a, c) for a, c in (await db.execute(stmt)).all()}
    # Not created here: the row was committed before (a conflicting insert in flight would
    # have been waited for), so it exists for good. Rows created here may still roll back.
    known.update(k for k in missing if k not in created)


async def _read_balances(
    db: AsyncSession, keys: Sequence[tuple[str, str]], *, lock: bool
) -> dict[tuple[str, str], Decimal]:
    q = (
        select(AccountBalance.account, AccountBalance.currency, AccountBalance.balance)
        .where(tuple_(AccountBalance.account, AccountBalance.currency).in_(keys))
        .order_by(AccountBalance.account, AccountBalance.currency)
    )
    if lock:
        q = q.with_for_update()  # rendered on PostgreSQL only; locks in the ORDER BY order
    return {(a, c): b for a, c, b in (await db.execute(q)).all()}


async def lock_balances(
    db: AsyncSession, keys: Iterable[tuple[str, str]], *, at: datetime | None = None
) -> dict[tuple[str, str], Decimal]:
    """Lock (creating if missing) the cached balances of ``keys`` and return them; they stay
    locked until the caller's transaction ends."""
    ordered = sorted(set(keys))
    await _ensure_rows(db, ordered, at or datetime.now(UTC))
    return await _read_balances(db, ordered, lock=True)


async def lock_wallet(
    db: AsyncSession, user_id: int, currency: str = DEFAULT_CURRENCY
) -> core.WalletBalance:
    """A user's wallet in one currency, read under lock: what the OMS passes as ``available``
    to :func:`quantdesk.core.ledger.hold` before posting the hold in the same transaction."""
    return core.wallet(await lock_wallet_rows(db, user_id, currency), user_id, currency)


async def lock_wallet_rows(
    db: AsyncSession, user_id: int, currency: str = DEFAULT_CURRENCY
) -> dict[tuple[str, str], Decimal]:
    """:func:`lock_wallet`'s locked rows (cash and held), for :func:`post`'s ``known``."""
    keys = [(core.user_cash(user_id), currency), (core.user_held(user_id), currency)]
    return await lock_balances(db, keys)


async def post(
    db: AsyncSession,
    entry: core.JournalEntry,
    *,
    lock: bool = True,
    idempotency_key: str | None = None,
    created_by: int | None = None,
    at: datetime | None = None,
    known: dict[tuple[str, str], Decimal] | None = None,
) -> int:
    """Store ``entry`` and update the cached balances in the caller's transaction; its id.

    With ``lock`` the touched balance rows are locked first (PostgreSQL); ``lock=False`` is for
    a caller that already holds them (:func:`lock_wallet`, :func:`lock_balances`). Either way the
    no-overdraft rule is checked on the balances read here (409 WALLET_INSUFFICIENT_FUNDS /
    WALLET_INSUFFICIENT_HELD). An ``idempotency_key`` already stored returns that entry's id and
    posts nothing. ``known``: with ``lock=False``, the balances the caller read under lock in
    this transaction (:func:`lock_wallet_rows`); not read again, and updated in place with
    the balances after the entry (so the caller's next post can pass them again)."""
    (entry_id,) = await post_many(
        db,
        [entry],
        lock=lock,
        idempotency_keys=[idempotency_key],
        created_by=created_by,
        at=at,
        known=known,
    )
    return entry_id


async def post_many(
    db: AsyncSession,
    entries: Sequence[core.JournalEntry],
    *,
    lock: bool = True,
    idempotency_keys: Sequence[str | None] | None = None,
    created_by: int | None = None,
    at: datetime | None = None,
    known: dict[tuple[str, str], Decimal] | None = None,
) -> list[int]:
    """:func:`post` for several entries (a fill's trade entry and its fee and tax entries):
    every touched row is locked at once, in one order, so transactions posting overlapping
    accounts cannot deadlock; the rule is checked after each entry in turn."""
    keys_in = list(idempotency_keys) if idempotency_keys is not None else [None] * len(entries)
    if len(keys_in) != len(entries):
        raise ValueError("one idempotency key (or None) per entry")
    for entry, key in zip(entries, keys_in, strict=True):
        _storable(entry, key)
    now = at or datetime.now(UTC)
    accounts = sorted({(p.account, p.currency) for e in entries for p in e.postings})
    if known is not None and not lock and all(k in known for k in accounts):
        balances = dict(known)  # read under lock by the caller, in this transaction
    else:
        await _ensure_rows(db, accounts, now)
        balances = await _read_balances(db, accounts, lock=lock)

    existing: dict[str, int] = {}
    wanted = [k for k in keys_in if k is not None]
    if wanted:
        # After the lock: a concurrent post of the same key has committed (or rolled back).
        q = select(JournalEntryRow.idempotency_key, JournalEntryRow.id).where(
            JournalEntryRow.idempotency_key.in_(wanted)
        )
        existing = {k: i for k, i in (await db.execute(q)).all() if k is not None}

    # Per entry: (True, index into the new rows) or (False, the id stored before).
    refs: list[tuple[bool, int]] = []
    pending: dict[str, int] = {}  # a key repeated within this call posts once
    changed: set[tuple[str, str]] = set()
    new_rows: list[dict[str, Any]] = []
    postings: list[tuple[int, core.Posting]] = []
    for entry, key in zip(entries, keys_in, strict=True):
        if key is not None and key in existing:
            refs.append((False, existing[key]))
            continue
        if key is not None and key in pending:
            refs.append((True, pending[key]))
            continue
        balances = _check_non_negative(entry, balances)
        n = len(new_rows)
        new_rows.append(
            {
                "kind": str(entry.kind),
                "memo": entry.memo,
                "ref": entry.ref,
                "idempotency_key": key,
                "created_at": now,
                "created_by": created_by,
            }
        )
        postings += [(n, p) for p in entry.postings]
        changed.update((p.account, p.currency) for p in entry.postings)
        if key is not None:
            pending[key] = n
        refs.append((True, n))
    conn = await db.connection()
    new_ids: list[int] = []
    if new_rows:
        # One INSERT for the entries (ids back in parameter order), one for their postings.
        entries_table = cast(Table, JournalEntryRow.__table__)
        insert_entries = entries_table.insert().returning(
            entries_table.c.id, sort_by_parameter_order=True
        )
        new_ids = list((await conn.execute(insert_entries, new_rows)).scalars())
        await conn.execute(
            cast(Table, PostingRow.__table__).insert(),
            [
                {
                    "entry_id": new_ids[n],
                    "account": p.account,
                    "currency": p.currency,
                    "amount": p.amount,
                }
                for n, p in postings
            ],
        )
    if changed:
        table = cast(Table, AccountBalance.__table__)
        stmt = (
            update(table)
            .where(table.c.account == bindparam("k_account"))
            .where(table.c.currency == bindparam("k_currency"))
            .values(
                balance=bindparam("k_balance", type_=Money()),
                updated_at=bindparam("k_at", type_=UTCDateTime()),
            )
        )
        params = [
            {"k_account": a, "k_currency": c, "k_balance": balances[(a, c)], "k_at": now}
            for a, c in sorted(changed)
        ]
        await conn.execute(stmt, params)
    if known is not None:
        known.update((k, v) for k, v in balances.items() if k in known)
    return [new_ids[x] if is_new else x for is_new, x in refs]


# --- reading --------------------------------------------------------------------------------


async def wallet(db: AsyncSession, user_id: int) -> dict[str, core.WalletBalance]:
    """A user's wallet per currency (the default currency always present)."""
    accounts = [core.user_cash(user_id), core.user_held(user_id), core.user_margin(user_id)]
    q = select(AccountBalance.account, AccountBalance.currency, AccountBalance.balance).where(
        AccountBalance.account.in_(accounts)
    )
    rows = (await db.execute(q)).all()
    balances = {(a, c): b for a, c, b in rows}
    currencies = sorted({c for _, c, _ in rows} | {DEFAULT_CURRENCY})
    return {c: core.wallet(balances, user_id, c) for c in currencies}


@dataclass(frozen=True, slots=True)
class StoredPosting:
    account: str
    currency: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class StoredEntry:
    id: int
    kind: str
    memo: str
    ref: str
    created_at: datetime
    created_by: int | None
    postings: tuple[StoredPosting, ...]


@dataclass(frozen=True, slots=True)
class LedgerPage:
    items: list[StoredEntry]
    next_cursor: int | None


async def ledger(
    db: AsyncSession,
    user_id: int,
    *,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: int | None = None,
    limit: int = 50,
) -> LedgerPage:
    """The entries touching a user's cash, held or margin accounts, newest first, with all their
    postings. Keyset pagination: pass the previous page's ``next_cursor``; ``since`` is
    inclusive, ``until`` exclusive."""
    touching = select(PostingRow.entry_id).where(
        PostingRow.account.in_(
            [core.user_cash(user_id), core.user_held(user_id), core.user_margin(user_id)]
        )
    )
    q = select(JournalEntryRow).where(JournalEntryRow.id.in_(touching))
    if kind:
        q = q.where(JournalEntryRow.kind == kind)
    if (s := require_aware(since, "since")) is not None:
        q = q.where(JournalEntryRow.created_at >= s)
    if (u := require_aware(until, "until")) is not None:
        q = q.where(JournalEntryRow.created_at < u)
    if cursor is not None:
        q = q.where(JournalEntryRow.id < cursor)
    rows = (await db.execute(q.order_by(JournalEntryRow.id.desc()).limit(limit + 1))).scalars()
    entries = rows.all()
    page = entries[:limit]
    lines: dict[int, list[StoredPosting]] = {e.id: [] for e in page}
    if page:
        pq = (
            select(PostingRow)
            .where(PostingRow.entry_id.in_(list(lines)))
            .order_by(PostingRow.entry_id, PostingRow.id)
        )
        for p in (await db.execute(pq)).scalars():
            lines[p.entry_id].append(StoredPosting(p.account, p.currency, p.amount))
    items = [
        StoredEntry(e.id, e.kind, e.memo, e.ref, e.created_at, e.created_by, tuple(lines[e.id]))
        for e in page
    ]
    return LedgerPage(items, items[-1].id if len(entries) > limit else None)


# --- verify ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Discrepancy:
    kind: str  # UNBALANCED_ENTRY | SHORT_ENTRY | BALANCE_MISMATCH | NEGATIVE_BALANCE
    message: str
    entry_id: int | None = None
    account: str | None = None
    currency: str | None = None
    expected: str | None = None
    actual: str | None = None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    entries: int
    postings: int
    accounts: int
    seconds: float
    discrepancy: Discrepancy | None = None
    discrepancies: int = 0

    @property
    def ok(self) -> bool:
        return self.discrepancy is None


@dataclass
class _Verifier:
    entries: int = 0
    postings: int = 0
    found: list[Discrepancy] = field(default_factory=list)
    sums: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    _entry: int | None = None
    _entry_lines: int = 0
    _entry_sums: dict[str, Decimal] = field(default_factory=dict)

    def entry(self, entry_id: int) -> None:
        self._close_entry()
        self.entries += 1
        self._entry, self._entry_lines, self._entry_sums = entry_id, 0, {}

    def posting(self, entry_id: int, account: str, currency: str, amount: Decimal) -> None:
        self.postings += 1
        self._entry_lines += 1
        self._entry_sums[currency] = self._entry_sums.get(currency, _ZERO) + amount
        key = (account, currency)
        self.sums[key] = self.sums.get(key, _ZERO) + amount

    def _close_entry(self) -> None:
        if self._entry is None:
            return
        eid = self._entry
        self._entry = None
        if self._entry_lines < 2:
            self.found.append(
                Discrepancy(
                    "SHORT_ENTRY",
                    f"entry {eid} has {self._entry_lines} posting(s); a balanced entry has 2+",
                    entry_id=eid,
                )
            )
        for currency, total in sorted(self._entry_sums.items()):
            if total != 0:
                self.found.append(
                    Discrepancy(
                        "UNBALANCED_ENTRY",
                        f"entry {eid}: postings in {currency} sum to {_plain(total)}, not 0",
                        entry_id=eid,
                        currency=currency,
                        expected="0",
                        actual=_plain(total),
                    )
                )

    def balances(self, cached: dict[tuple[str, str], Decimal]) -> int:
        self._close_entry()
        keys = sorted(set(cached) | set(self.sums))
        for account, currency in keys:
            want = self.sums.get((account, currency), _ZERO)
            have = cached.get((account, currency))
            if have is None or have != want:
                self.found.append(
                    Discrepancy(
                        "BALANCE_MISMATCH",
                        f"{account} {currency}: cached balance "
                        f"{'missing' if have is None else _plain(have)} != sum of postings "
                        f"{_plain(want)}",
                        account=account,
                        currency=currency,
                        expected=_plain(want),
                        actual=None if have is None else _plain(have),
                    )
                )
            elif want < 0 and account.startswith("user:"):
                self.found.append(
                    Discrepancy(
                        "NEGATIVE_BALANCE",
                        f"{account} {currency} is {_plain(want)}: a user's cash or held never goes "
                        "below zero",
                        account=account,
                        currency=currency,
                        actual=_plain(want),
                    )
                )
        return len(keys)


def _verify_query() -> Select[Any]:
    """Entries, postings and cached balances in ONE statement: one snapshot on both backends
    (a post committed between two queries would look like a mismatch)."""
    postings = select(
        literal(0).label("grp"),
        PostingRow.entry_id.label("entry_id"),
        literal(1).label("src"),
        PostingRow.account.label("account"),
        PostingRow.currency.label("currency"),
        PostingRow.amount.label("amount"),
    )
    entries = select(literal(0), JournalEntryRow.id, literal(0), null(), null(), null())
    cached = select(
        literal(1),
        literal(0),
        literal(2),
        AccountBalance.account,
        AccountBalance.currency,
        AccountBalance.balance,
    )
    # Postings first: the UNION's column names and types (Money) are the first SELECT's.
    u = union_all(postings, entries, cached).subquery()
    return select(u).order_by(u.c.grp, u.c.entry_id, u.c.src)


async def verify(db: AsyncSession) -> VerifyReport:
    """Check the whole ledger: every entry has 2+ postings summing to zero per currency, every
    cached balance equals the sum of its account's postings, no user balance is negative.
    The report names the first discrepancy (lowest entry id, then account order)."""
    started = time.perf_counter()
    v = _Verifier()
    cached: dict[tuple[str, str], Decimal] = {}
    result = await db.stream(_verify_query().execution_options(yield_per=2000))
    async for _grp, entry_id, src, account, currency, amount in result:
        if src == 0:
            v.entry(entry_id)
        elif src == 1:
            v.posting(entry_id, account, currency, _money(amount))
        else:
            cached[(account, currency)] = _money(amount)
    accounts = v.balances(cached)
    return VerifyReport(
        entries=v.entries,
        postings=v.postings,
        accounts=accounts,
        seconds=time.perf_counter() - started,
        discrepancy=v.found[0] if v.found else None,
        discrepancies=len(v.found),
    )


def _plain(value: Decimal) -> str:
    """A decimal as the shortest plain text (``300``, ``299.99``), the same on both backends."""
    text = format(value.normalize(), "f")
    return "0" if text == "-0" else text


def _money(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


# --- deposits and withdrawals (admin) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Movement:
    entry_id: int
    user_id: int
    wallet: dict[str, core.WalletBalance]


async def _user_exists(db: AsyncSession, user_id: int) -> None:
    from quantdesk.auth.users import get_user

    await get_user(db, user_id)  # USER_NOT_FOUND (404)


async def deposit(
    db: AsyncSession,
    actor: audit.Actor,
    user_id: int,
    amount: str | Decimal,
    currency: str = DEFAULT_CURRENCY,
    note: str = "",
) -> Movement:
    """Credit a user's cash from outside (external -> cash), audited; commits."""
    return await _move(db, actor, "deposit", user_id, amount, currency, note)


async def withdraw(
    db: AsyncSession,
    actor: audit.Actor,
    user_id: int,
    amount: str | Decimal,
    currency: str = DEFAULT_CURRENCY,
    note: str = "",
) -> Movement:
    """Pay out of a user's available cash (cash -> external), audited; commits. More than is
    available: 409 WALLET_INSUFFICIENT_FUNDS and nothing written."""
    return await _move(db, actor, "withdrawal", user_id, amount, currency, note)


async def _move(
    db: AsyncSession,
    actor: audit.Actor,
    what: str,
    user_id: int,
    amount: str | Decimal,
    currency: str,
    note: str,
) -> Movement:
    value = parse_amount(amount, currency)
    ref = f"{what}:{uuid.uuid4().hex}"
    try:
        await _user_exists(db, user_id)
        if what == "deposit":
            entry = core.deposit(user_id, value, currency, ref=ref, memo=note)
            entry_id = await post(db, entry, created_by=actor.user_id)
        else:
            available = (await lock_wallet(db, user_id, currency)).available
            if value > available:
                raise InsufficientFunds(
                    f"a withdrawal of {money_str(value, currency)} {currency} exceeds the "
                    f"{money_str(available, currency)} available",
                    details={
                        "currency": currency,
                        "available": money_str(available, currency),
                        "required": money_str(value, currency),
                    },
                )
            entry = core.withdrawal(
                user_id, value, currency, available=available, ref=ref, memo=note
            )
            entry_id = await post(db, entry, lock=False, created_by=actor.user_id)
        audit.record(
            db,
            actor,
            f"wallet.{what}",
            target_type="user",
            target_id=user_id,
            changes={
                "amount": money_str(value, currency),
                "currency": currency,
                "note": note,
                "entry_id": entry_id,
                "ref": ref,
            },
        )
        await db.commit()
    except DomainError as exc:
        await db.rollback()
        raise app_error(exc) from exc
    except Exception:
        await db.rollback()
        raise
    return Movement(entry_id, user_id, await wallet(db, user_id))
