"""The instruments master: import a broker's instrument list, look instruments up, search them,
and seed the demo universe (NIFTY 50 and two indices).

Imports are all-or-nothing by default: every row is validated first and any bad row rejects the
whole file with its row numbers, writing nothing. Rows of kinds the platform does not trade yet
(futures, options, ...) are skipped and counted, not errors.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import IO, Any, Final

import anyio
from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from quantdesk.core.instruments import (
    InstrumentRef,
    InstrumentSpec,
    InvalidInstrumentRef,
    is_valid_isin,
)
from quantdesk.errors import NotFound, ValidationFailed
from quantdesk.market.models import Instrument
from quantdesk.observability import audit

__all__ = [
    "KITE_COLUMNS",
    "ImportReport",
    "InstrumentRow",
    "RowIssue",
    "SeedReport",
    "get",
    "import_kite_csv",
    "parse_kite_csv",
    "search",
    "seed_demo_universe",
]

KITE_COLUMNS: Final = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)
SUPPORTED_TYPES: Final = frozenset({"EQ", "INDEX"})
DEFAULT_EQUITY_BAND_PCT: Final = Decimal(20)
# Kite lists indices as instrument_type EQ in segment INDICES, with tick and lot size 0 (they
# cannot be traded). We store them as INDEX with a 0.01 tick (index values have two decimals)
# and a lot of 1, so every row satisfies the same rules.
_INDEX_SEGMENT: Final = "INDICES"
_INDEX_TICK: Final = Decimal("0.01")
_MAX_ISSUES_KEPT: Final = 100
_DEMO_FILE: Final = "nifty50.csv"

Source = str | os.PathLike[str] | IO[str] | IO[bytes] | bytes


@dataclass(frozen=True, slots=True)
class RowIssue:
    """A problem with one row (``row`` is the 1-based data row, header not counted; ``line`` the
    line in the file) or, when ``row`` is None, with the file itself."""

    code: str
    message: str
    row: int | None = None
    line: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = f"row {self.row} (line {self.line}): " if self.row is not None else ""
        return f"{where}{self.message}"


@dataclass(frozen=True, slots=True)
class InstrumentRow:
    """A validated instrument from an import file. ``None`` for a field the file did not give
    (an upsert then keeps the stored value)."""

    ref: InstrumentRef
    name: str
    segment: str
    instrument_type: str
    spec: InstrumentSpec
    isin: str | None = None
    last_price: Decimal | None = None
    kite_instrument_token: int | None = None
    kite_exchange_token: int | None = None


@dataclass(slots=True)
class ImportReport:
    """What an import read, skipped, rejected and wrote."""

    rows_read: int = 0
    valid: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    issues: list[RowIssue] = field(default_factory=list)
    issue_count: int = 0
    bad_rows: int = 0
    accepted: bool = False

    def summary(self) -> str:
        verdict = "accepted" if self.accepted else "REJECTED, nothing written"
        skipped = ", ".join(f"{k}={n}" for k, n in sorted(self.skipped.items()))
        return (
            f"{verdict}: {self.rows_read} rows read, {self.valid} valid, {self.bad_rows} bad, "
            f"{sum(self.skipped.values())} skipped"
            + (f" ({skipped})" if skipped else "")
            + f"; {self.inserted} inserted, {self.updated} updated, {self.unchanged} unchanged"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rows_read": self.rows_read,
            "valid": self.valid,
            "bad_rows": self.bad_rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": dict(sorted(self.skipped.items())),
            "issue_count": self.issue_count,
            "issues": [
                {
                    "row": i.row,
                    "line": i.line,
                    "column": i.column,
                    "code": i.code,
                    "message": i.message,
                }
                for i in self.issues
            ],
        }


@dataclass(frozen=True, slots=True)
class SeedReport:
    inserted: int
    existing: int


# --- parsing ----------------------------------------------------------------------------------


class _Issues:
    def __init__(self, report: ImportReport) -> None:
        self.report = report
        self.rows: set[int] = set()

    def add(self, issue: RowIssue) -> None:
        self.report.issue_count += 1
        if issue.row is not None:
            self.rows.add(issue.row)
        if len(self.report.issues) < _MAX_ISSUES_KEPT:
            self.report.issues.append(issue)


def _read_text(source: Source) -> str:
    if isinstance(source, bytes):
        raw: str | bytes = source
    elif isinstance(source, str | os.PathLike):
        with open(source, "rb") as fh:
            raw = fh.read()
    else:
        raw = source.read()
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8-sig")  # Excel writes a BOM
    return raw.removeprefix("\ufeff")


def _decimal(text: str) -> Decimal:
    value = Decimal(text)  # raises InvalidOperation
    if not value.is_finite():
        raise InvalidOperation(text)
    return value


def _int(text: str) -> int:
    # Kite writes integers plainly; "1.0" is accepted since spreadsheets re-save that way.
    value = _decimal(text)
    if value != value.to_integral_value():
        raise InvalidOperation(text)
    return int(value)


class _RowReader:
    """Validates one Kite row, collecting every problem rather than stopping at the first."""

    def __init__(self, record: dict[str, str], row: int, line: int, issues: _Issues) -> None:
        self.record = record
        self.row = row
        self.line = line
        self.issues = issues
        self.ok = True

    def cell(self, column: str) -> str:
        return (self.record.get(column) or "").strip()

    def bad(self, column: str, code: str, message: str) -> None:
        self.ok = False
        self.issues.add(RowIssue(code, f"{column}: {message}", self.row, self.line, column))

    def number(self, column: str, *, integer: bool, optional: bool) -> Any:
        text = self.cell(column)
        if not text:
            if not optional:
                self.bad(column, "MISSING_VALUE", "is empty")
            return None
        try:
            return _int(text) if integer else _decimal(text)
        except InvalidOperation:
            kind = "a whole number" if integer else "a decimal number"
            self.bad(column, "NOT_A_NUMBER", f"{text!r} is not {kind}")
            return None


def _instrument_type(reader: _RowReader) -> str:
    kind = reader.cell("instrument_type").upper()
    if reader.cell("segment").upper() == _INDEX_SEGMENT and kind in {"EQ", "INDEX", ""}:
        return "INDEX"
    return kind


def _parse_row(reader: _RowReader, kind: str, default_band: Decimal | None) -> InstrumentRow | None:
    try:
        ref = InstrumentRef.of(reader.cell("exchange"), reader.cell("tradingsymbol"))
    except InvalidInstrumentRef as exc:
        reader.bad("tradingsymbol", "BAD_SYMBOL", str(exc))
        ref = None
    token = reader.number("instrument_token", integer=True, optional=True)
    exchange_token = reader.number("exchange_token", integer=True, optional=True)
    tick = reader.number("tick_size", integer=False, optional=kind == "INDEX")
    lot = reader.number("lot_size", integer=True, optional=kind == "INDEX")
    last = reader.number("last_price", integer=False, optional=True)
    if kind == "INDEX":
        tick = tick if tick else _INDEX_TICK
        lot = lot if lot else 1
    for column, value in (("instrument_token", token), ("exchange_token", exchange_token)):
        if value is not None and value <= 0:
            reader.bad(column, "NOT_POSITIVE", f"{value} must be positive")
    if last is not None and last < 0:
        reader.bad("last_price", "NEGATIVE", f"{last} must not be negative")
    spec = None
    if tick is not None and lot is not None:
        try:
            spec = InstrumentSpec(tick, lot, None if kind == "INDEX" else default_band)
        except ValueError as exc:
            column = "tick_size" if "tick" in str(exc) else "lot_size"
            reader.bad(column, "BAD_RULE", str(exc))
    name = reader.cell("name")
    if len(name) > 128:
        reader.bad("name", "TOO_LONG", f"{len(name)} characters, at most 128")
    if not reader.ok or ref is None or spec is None:
        return None
    return InstrumentRow(
        ref=ref,
        name=name or ref.symbol,
        segment=reader.cell("segment").upper()[:16] or ref.exchange,
        instrument_type=kind,
        spec=spec,
        # Kite's dump usually carries last_price 0: "no price", not a price of zero.
        last_price=last if last else None,
        kite_instrument_token=token,
        kite_exchange_token=exchange_token,
    )


def parse_kite_csv(
    source: Source, *, default_price_band_pct: Decimal | None = DEFAULT_EQUITY_BAND_PCT
) -> tuple[list[InstrumentRow], ImportReport]:
    """Read and validate a Kite instruments CSV (``GET /instruments``). Pure: no database.

    Rows whose type the platform does not support yet are counted in ``report.skipped`` by type.
    New equities get ``default_price_band_pct`` (the file has no band); indices get none.
    """
    report = ImportReport()
    issues = _Issues(report)
    try:
        text = _read_text(source)
    except (OSError, UnicodeDecodeError) as exc:
        issues.add(RowIssue("UNREADABLE_FILE", f"cannot read the file: {exc}"))
        return [], report
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in KITE_COLUMNS if c not in header]
    if missing:
        issues.add(
            RowIssue(
                "MISSING_COLUMNS", f"not a Kite instruments file: missing {', '.join(missing)}"
            )
        )
        return [], report
    reader.fieldnames = header
    rows: list[InstrumentRow] = []
    seen: dict[InstrumentRef, int] = {}
    tokens: dict[int, int] = {}
    skipped: Counter[str] = Counter()
    try:
        for number, record in enumerate(reader, start=1):
            report.rows_read += 1
            row_reader = _RowReader(record, number, reader.line_num, issues)
            cells = sum(v is not None for k, v in record.items() if k is not None)
            cells += len(record.get(None) or ())
            if cells != len(header):
                message = f"{cells} cells, the header has {len(header)} columns"
                issues.add(RowIssue("WRONG_CELL_COUNT", message, number, reader.line_num))
                continue
            kind = _instrument_type(row_reader)
            if not kind:
                row_reader.bad("instrument_type", "MISSING_VALUE", "is empty")
                continue
            if kind not in SUPPORTED_TYPES:
                skipped[kind] += 1
                continue
            parsed = _parse_row(row_reader, kind, default_price_band_pct)
            if parsed is None:
                continue
            if parsed.ref in seen:
                row_reader.bad(
                    "tradingsymbol",
                    "DUPLICATE",
                    f"{parsed.ref} already given on row {seen[parsed.ref]}",
                )
                continue
            token = parsed.kite_instrument_token
            if token is not None and token in tokens:
                row_reader.bad(
                    "instrument_token",
                    "DUPLICATE",
                    f"{token} already given on row {tokens[token]}",
                )
                continue
            seen[parsed.ref] = number
            if token is not None:
                tokens[token] = number
            rows.append(parsed)
    except csv.Error as exc:
        issues.add(RowIssue("MALFORMED_CSV", f"line {reader.line_num}: {exc}"))
    report.skipped = dict(skipped)
    report.valid = len(rows)
    report.bad_rows = len(issues.rows)
    report.accepted = report.issue_count == 0
    return rows, report


# --- writing ----------------------------------------------------------------------------------


def _apply(instrument: Instrument, row: InstrumentRow) -> bool:
    """Copy what the row gives onto ``instrument``; True if anything changed."""
    values: dict[str, Any] = {
        "name": row.name,
        "segment": row.segment,
        "instrument_type": row.instrument_type,
        "tick_size": row.spec.tick_size,
        "lot_size": row.spec.lot_size,
        "is_active": True,
    }
    optional = {
        "isin": row.isin,
        "last_price": row.last_price,
        "kite_instrument_token": row.kite_instrument_token,
        "kite_exchange_token": row.kite_exchange_token,
    }
    values.update({k: v for k, v in optional.items() if v is not None})
    changed = False
    for key, value in values.items():
        if getattr(instrument, key) != value:
            setattr(instrument, key, value)
            changed = True
    return changed


def _new(row: InstrumentRow, now: datetime) -> Instrument:
    return Instrument(
        exchange=row.ref.exchange,
        symbol=row.ref.symbol,
        name=row.name,
        isin=row.isin,
        segment=row.segment,
        instrument_type=row.instrument_type,
        tick_size=row.spec.tick_size,
        lot_size=row.spec.lot_size,
        currency=row.spec.currency,
        price_band_pct=row.spec.price_band_pct,
        kite_instrument_token=row.kite_instrument_token,
        kite_exchange_token=row.kite_exchange_token,
        last_price=row.last_price,
        is_active=True,
        created_at=now,
        updated_at=now,
    )


async def _existing(
    db: AsyncSession, refs: Iterable[InstrumentRef]
) -> dict[InstrumentRef, Instrument]:
    by_exchange: dict[str, set[str]] = {}
    for ref in refs:
        by_exchange.setdefault(ref.exchange, set()).add(ref.symbol)
    found: dict[InstrumentRef, Instrument] = {}
    for exchange, symbols in by_exchange.items():
        ordered = sorted(symbols)
        for start in range(0, len(ordered), 500):  # stay under bind-parameter limits
            chunk = ordered[start : start + 500]
            stmt = select(Instrument).where(
                Instrument.exchange == exchange, Instrument.symbol.in_(chunk)
            )
            for inst in (await db.execute(stmt)).scalars():
                found[inst.ref] = inst
    return found


async def upsert_rows(
    db: AsyncSession,
    rows: Sequence[InstrumentRow],
    report: ImportReport,
    *,
    insert_only: bool = False,
) -> None:
    """Insert new instruments and update existing ones (by exchange and symbol) in the caller's
    transaction. A broker token now given to one symbol is taken off any other row that had it
    (a renamed symbol keeps its token), so a token always resolves to one instrument."""
    now = datetime.now(UTC)
    existing = await _existing(db, (r.ref for r in rows))
    for row in rows:
        inst = existing.get(row.ref)
        if inst is None:
            db.add(_new(row, now))
            report.inserted += 1
        elif insert_only:
            report.unchanged += 1
        elif _apply(inst, row):
            inst.updated_at = now
            report.updated += 1
        else:
            report.unchanged += 1
    await db.flush()
    claimed = [(r.ref, r.kite_instrument_token) for r in rows if r.kite_instrument_token]
    for start in range(0, len(claimed), 500):
        chunk = dict((token, ref) for ref, token in claimed[start : start + 500])
        stale = select(Instrument).where(Instrument.kite_instrument_token.in_(list(chunk)))
        for inst in (await db.execute(stale)).scalars():
            assert inst.kite_instrument_token is not None
            if inst.ref != chunk[inst.kite_instrument_token]:
                inst.kite_instrument_token = None
                inst.kite_exchange_token = None
                inst.updated_at = now
    await db.flush()


async def import_kite_csv(
    db: AsyncSession,
    source: Source,
    *,
    actor: audit.Actor | None = None,
    drop_bad: bool = False,
    default_price_band_pct: Decimal | None = DEFAULT_EQUITY_BAND_PCT,
    filename: str | None = None,
) -> ImportReport:
    """Import a Kite instruments CSV: upsert by (exchange, symbol) and commit.

    Any bad row rejects the whole file and nothing is written, unless ``drop_bad`` (then the
    good rows are written and the report still lists the bad ones). Fields the file does not
    carry (ISIN, price band, currency) keep their stored values; a ``last_price`` of 0 means
    "not given". With an ``actor`` the import is audited in the same transaction.
    """
    rows, report = await anyio.to_thread.run_sync(
        lambda: parse_kite_csv(source, default_price_band_pct=default_price_band_pct)
    )
    file_level = any(i.row is None for i in report.issues)
    if file_level or (report.issue_count and not drop_bad):
        report.accepted = False
        return report
    await upsert_rows(db, rows, report)
    report.accepted = True
    if actor is not None:
        audit.record(
            db,
            actor,
            "instruments.import",
            target_type="instruments",
            target_id=filename,
            changes={
                "format": "kite",
                "inserted": report.inserted,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "bad_rows": report.bad_rows,
                "skipped": report.skipped,
            },
        )
    await db.commit()
    return report


# --- the demo universe ------------------------------------------------------------------------


def demo_universe() -> list[InstrumentRow]:
    """The shipped demo universe (``market/data/nifty50.csv``), validated."""
    text = resources.files("quantdesk.market").joinpath("data", _DEMO_FILE).read_text("utf-8")
    lines = (line for line in text.splitlines() if line.strip() and not line.startswith("#"))
    out = []
    for record in csv.DictReader(lines):
        band = record["price_band_pct"]
        isin = record["isin"] or None
        if isin is not None and not is_valid_isin(isin):
            raise ValueError(f"demo universe: bad ISIN {isin} for {record['symbol']}")
        price = record["last_price"]
        out.append(
            InstrumentRow(
                ref=InstrumentRef.of(record["exchange"], record["symbol"]),
                name=record["name"],
                segment=record["segment"],
                instrument_type=record["instrument_type"],
                spec=InstrumentSpec(
                    Decimal(record["tick_size"]),
                    int(record["lot_size"]),
                    Decimal(band) if band else None,
                    record["currency"],
                ),
                isin=isin,
                last_price=Decimal(price) if price else None,
            )
        )
    return out


async def seed_demo_universe(db: AsyncSession, actor: audit.Actor | None = None) -> SeedReport:
    """Add the demo universe's instruments that are missing; existing rows (perhaps refreshed by
    a broker import since) are left as they are. Idempotent."""
    rows = demo_universe()
    report = ImportReport()
    await upsert_rows(db, rows, report, insert_only=True)
    if actor is not None and report.inserted:
        audit.record(
            db,
            actor,
            "instruments.seed_demo",
            target_type="instruments",
            changes={"inserted": report.inserted},
        )
    await db.commit()
    return SeedReport(inserted=report.inserted, existing=report.unchanged)


# --- queries ----------------------------------------------------------------------------------


async def get(db: AsyncSession, ref: InstrumentRef | str) -> Instrument:
    """The instrument named ``ref`` (``"NSE:INFY"``); NotFound if there is none."""
    if isinstance(ref, str):
        try:
            ref = InstrumentRef.parse(ref)
        except InvalidInstrumentRef as exc:
            raise ValidationFailed(str(exc), code="INSTRUMENT_BAD_REF") from exc
    stmt = select(Instrument).where(
        Instrument.exchange == ref.exchange, Instrument.symbol == ref.symbol
    )
    inst = (await db.execute(stmt)).scalar_one_or_none()
    if inst is None:
        raise NotFound(
            f"No instrument {ref}.", code="INSTRUMENT_NOT_FOUND", details={"ref": str(ref)}
        )
    return inst


async def search(
    db: AsyncSession,
    q: str = "",
    limit: int = 20,
    *,
    exchange: str | None = None,
    include_inactive: bool = False,
) -> list[Instrument]:
    """Instruments whose symbol starts with ``q`` or whose name contains it (case-insensitive),
    or whose ISIN is ``q``. Ranked: exact symbol, then symbol prefix, then name match; then by
    symbol. ``q`` may carry an exchange (``NSE:INF``). An empty ``q`` lists everything."""
    q = q.strip()
    if ":" in q:
        prefix, _, q = q.partition(":")
        exchange = exchange or prefix
        q = q.strip()
    stmt = select(Instrument)
    if exchange:
        stmt = stmt.where(Instrument.exchange == exchange.strip().upper())
    if not include_inactive:
        stmt = stmt.where(Instrument.is_active.is_(True))
    if q:
        upper = q.upper()
        stmt = stmt.where(
            or_(
                Instrument.symbol.startswith(upper, autoescape=True),
                func.lower(Instrument.name).contains(q.lower(), autoescape=True),
                Instrument.isin == upper,
            )
        ).order_by(
            case(
                (Instrument.symbol == upper, 0),
                (Instrument.symbol.startswith(upper, autoescape=True), 1),
                else_=2,
            )
        )
    stmt = stmt.order_by(Instrument.symbol, Instrument.exchange).limit(limit)
    return list((await db.execute(stmt)).scalars())
